from django.contrib import admin
from django.http import HttpRequest

from recommendations.models import (
    Dataset,
    DatasetUser,
    ImportJob,
    Interaction,
    Item,
    Recommendation,
    RecommenderRun,
    Split,
)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin[Dataset]):
    list_display = ["name", "domain", "import_format", "n_users", "n_items", "n_interactions", "imported_at"]
    list_filter = ["domain", "import_format", "is_implicit"]
    search_fields = ["name", "source"]
    readonly_fields = [
        "import_format", "is_implicit", "rating_min", "rating_max", "n_users", "n_items",
        "n_interactions", "import_seconds", "imported_at", "imported_by",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Datasets come from importers (the Import page or `manage.py import_dataset`).
        return False


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin[Item]):
    list_display = ["title", "external_id", "dataset"]
    list_filter = ["dataset"]
    search_fields = ["title", "external_id"]
    list_select_related = ["dataset"]
    show_full_result_count = False


@admin.register(DatasetUser)
class DatasetUserAdmin(admin.ModelAdmin[DatasetUser]):
    list_display = ["external_id", "dataset", "profile"]
    list_filter = ["dataset"]
    search_fields = ["external_id"]
    list_select_related = ["dataset"]
    show_full_result_count = False


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin[Interaction]):
    list_display = ["user", "item", "rating", "timestamp", "dataset"]
    list_filter = ["dataset", "rating"]
    search_fields = ["user__external_id", "item__external_id", "item__title"]
    list_select_related = ["dataset", "user", "item"]
    raw_id_fields = ["user", "item"]
    show_full_result_count = False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin[ImportJob]):
    list_display = ["name", "format", "status", "phase", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "format"]
    search_fields = ["name", "error"]
    readonly_fields = [f.name for f in ImportJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Split)
class SplitAdmin(admin.ModelAdmin[Split]):
    list_display = [
        "id",
        "dataset",
        "mode",
        "seed",
        "min_interactions",
        "test_ratio",
        "n_train",
        "n_test",
        "created_at",
    ]
    list_filter = ["mode", "dataset"]
    readonly_fields = [f.name for f in Split._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # splits are computed by the training workflow, never typed in


@admin.register(RecommenderRun)
class RecommenderRunAdmin(admin.ModelAdmin[RecommenderRun]):
    list_display = ["id", "dataset", "algorithm", "status", "k", "fit_seconds", "created_by", "created_at"]
    list_filter = ["status", "algorithm", "dataset"]
    search_fields = ["algorithm", "error"]
    list_select_related = ["dataset", "created_by"]
    readonly_fields = [f.name for f in RecommenderRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started from the Runs page or `manage.py train_recommender`


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin[Recommendation]):
    list_display = ["run", "user", "rank", "item", "score"]
    list_filter = ["run"]
    search_fields = ["user__external_id", "item__title"]
    list_select_related = ["run", "user", "item"]
    raw_id_fields = ["user", "item"]
    show_full_result_count = False
