from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from explanations.models import AdapterTraining, Explanation, GenerationRun, Generator, PromptTemplate
from explanations.services.generators import GenerationError, generator_duplicate


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin[Generator]):
    """A generator that runs have used keeps its lineage fields (``Generator.LINEAGE_FIELDS``)
    read-only here; "Duplicate as new generator" gives an unused copy to change instead.
    ``Generator.clean`` refuses the same change from any form."""

    list_display = ["name", "backend", "model", "quantization", "adapter_path", "temperature", "max_new_tokens"]
    list_filter = ["backend", "quantization"]
    search_fields = ["name", "model"]
    actions = ["duplicate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Generator | None = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.usage_count():
            readonly += [name for name in Generator.LINEAGE_FIELDS if name not in readonly]
        return readonly

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        generator = self.get_object(request, object_id)
        if request.method == "GET" and generator is not None and (uses := generator.usage_count()):
            messages.info(
                request,
                f"Used by {uses} run{'s' if uses != 1 else ''}: its model, adapter and decoding settings are "
                "read-only. To change them, duplicate it as a new generator (the action on the list).",
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Duplicate as new generator", permissions=["add"])
    def duplicate(self, request: HttpRequest, queryset: QuerySet[Generator]) -> None:
        for generator in queryset:
            try:
                copy = generator_duplicate(generator=generator)
            except GenerationError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            url = reverse("admin:explanations_generator_change", args=[copy.pk])
            self.message_user(request, format_html('Made <a href="{}">{}</a>: change it there.', url, copy.name))


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
