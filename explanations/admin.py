from django.contrib import admin
from django.http import HttpRequest

from explanations.models import AdapterTraining, Explanation, GenerationRun, Generator, PromptTemplate


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin[Generator]):
    list_display = ["name", "backend", "model", "quantization", "adapter_path", "temperature", "max_new_tokens"]
    list_filter = ["backend", "quantization"]
    search_fields = ["name", "model"]


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin[PromptTemplate]):
    list_display = ["name", "version", "builtin", "sha256", "created_at"]
    list_filter = ["builtin", "name"]
    search_fields = ["name", "description", "user_text"]
    readonly_fields = [f.name for f in PromptTemplate._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions are made by prompt_template_revise, never edited in place

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin[GenerationRun]):
    list_display = [
        "id",
        "recommender_run",
        "generator",
        "template",
        "status",
        "n_total",
        "progress_done",
        "created_at",
    ]
    list_filter = ["status", "generator"]
    readonly_fields = [f.name for f in GenerationRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin[Explanation]):
    list_display = ["id", "generation_run", "recommendation", "status", "completion_tokens", "finish_reason"]
    list_filter = ["status", "finish_reason", "generation_run"]
    search_fields = ["text", "error"]
    raw_id_fields = ["recommendation"]
    readonly_fields = [f.name for f in Explanation._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AdapterTraining)
class AdapterTrainingAdmin(admin.ModelAdmin[AdapterTraining]):
    list_display = ["id", "base_generator", "source", "status", "n_train", "epochs", "created_at"]
    list_filter = ["status", "source"]
    readonly_fields = [f.name for f in AdapterTraining._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
