"""Rating datasets: the people, things and interactions a recommender learns from.

Dataset users are the people inside a rating dataset; they are never site accounts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from recommendations.querysets import (
    DatasetQuerySet,
    InteractionQuerySet,
    ItemQuerySet,
    RecommendationQuerySet,
    RecommenderRunQuerySet,
)
from recommendations.shared.jobs import Job


def display_pairs(values: dict[str, Any]) -> list[tuple[str, str]]:
    """JSON attributes as (key, text) for pages: lists joined with commas."""
    return [
        (key, ", ".join(map(str, value)) if isinstance(value, list) else str(value)) for key, value in values.items()
    ]


class Dataset(models.Model):
    """One imported rating dataset. A row exists only once its import has committed."""

    class Domain(models.TextChoices):
        MOVIES = "movies", "Movies"
        GAMES = "games", "Games"
        PRODUCTS = "products", "Products"
        NEWS = "news", "News"
        BOOKS = "books", "Books"
        MUSIC = "music", "Music"
        OTHER = "other", "Other"

    name = models.CharField(max_length=100, unique=True)
    domain = models.CharField(max_length=20, choices=Domain.choices, default=Domain.OTHER)
    source = models.TextField(blank=True, help_text="Where the files came from.")
    licence_note = models.TextField(blank=True)
    import_format = models.CharField(max_length=40)
    is_implicit = models.BooleanField(default=False, help_text="No explicit ratings, only events.")
    rating_min = models.FloatField(null=True, blank=True)
    rating_max = models.FloatField(null=True, blank=True)
    n_users = models.PositiveIntegerField(default=0)
    n_items = models.PositiveIntegerField(default=0)
    n_interactions = models.PositiveIntegerField(default=0)
    import_seconds = models.FloatField(null=True, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects: ClassVar[DatasetQuerySet] = DatasetQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def density(self) -> float:
        cells = self.n_users * self.n_items
        return self.n_interactions / cells if cells else 0.0


class Item(models.Model):
    """A recommendable thing. ``attributes`` holds what the source has: genres, year, price…"""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=100)
    title = models.CharField(max_length=500, blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    objects: ClassVar[ItemQuerySet] = ItemQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["dataset", "id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "external_id"], name="item_unique_external_id")]

    def __str__(self) -> str:
        return self.title or self.external_id

    @property
    def attribute_pairs(self) -> list[tuple[str, str]]:
        return display_pairs(self.attributes)


class DatasetUser(models.Model):
    """A person inside a rating dataset; ``profile`` holds age, gender, occupation… if known."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="users")
    external_id = models.CharField(max_length=100)
    profile = models.JSONField(default=dict, blank=True)
    # db_default: imports COPY users with an explicit column list that leaves it out.
    elicited = models.BooleanField(
        default=False,
        db_default=False,
        help_text="A first-person participant's ratings (annotation's elicitation page): never in a split, a "
        "training set, popularity or any other dataset-wide figure (``InteractionQuerySet.observed``).",
    )

    class Meta:
        ordering = ["dataset", "id"]
        verbose_name = "dataset user"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="datasetuser_unique_external_id")
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"

    @property
    def profile_pairs(self) -> list[tuple[str, str]]:
        return display_pairs(self.profile)


class Interaction(models.Model):
    """A rating (explicit) or an event with ``rating`` null (implicit).

    ``timestamp`` is seconds since the Unix epoch (UTC), as every public dataset stores it.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="interactions")
    # No single-column indexes: the composite indexes below start with these columns and
    # serve the same lookups; two fewer indexes make a million-row import ~40% faster.
    user = models.ForeignKey(DatasetUser, on_delete=models.CASCADE, related_name="interactions", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="interactions", db_index=False)
    rating = models.FloatField(null=True, blank=True)
    timestamp = models.BigIntegerField(null=True, blank=True)

    objects: ClassVar[InteractionQuerySet] = InteractionQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["user", "timestamp", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "item", "timestamp"], name="interaction_unique_user_item_time")
        ]
        indexes = [
            # A user's history by time: prompts and the user browser read this.
            models.Index(fields=["user", "timestamp"], name="interaction_user_time"),
            # An item's interactions: popularity, item pages.
            models.Index(fields=["item", "timestamp"], name="interaction_item_time"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}→{self.item_id} ({self.rating})"

    @property
    def occurred_at(self) -> datetime | None:
        if self.timestamp is None:
            return None
        return datetime.fromtimestamp(self.timestamp, tz=UTC)


class ImportJob(Job):
    """An import started from the site and run by a worker, with its progress and outcome.

    The dataset appears only when the job succeeds; a failed job keeps its error and
    leaves every dataset as it was.
    """

    name = models.CharField(max_length=100, help_text="Name of the dataset to create.")
    format = models.CharField(max_length=40)
    domain = models.CharField(max_length=20, choices=Dataset.Domain.choices, default=Dataset.Domain.OTHER)
    path = models.TextField(blank=True, help_text="File or folder to read; empty for a bundled copy.")
    options = models.JSONField(default=dict, blank=True)
    replace = models.BooleanField(default=False)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs")

    class Meta(Job.Meta):
        pass

    def __str__(self) -> str:
        return f"import {self.name} ({self.format}, {self.status})"

    def mark_succeeded(self, dataset: Dataset) -> None:
        self.status, self.dataset, self.finished_at = self.Status.SUCCEEDED, dataset, timezone.now()
        self.phase = "done"
        self.save(update_fields=["status", "dataset", "finished_at", "phase"])


class Split(models.Model):
    """A stored division of a dataset's interactions into train and test.

    Only the test side is stored (``SplitTestInteraction``); train is every other
    interaction of the dataset. A split is computed once and read back, never recomputed,
    and the same parameters and seed always give the same split.
    """

    class Mode(models.TextChoices):
        LEAVE_LAST_OUT = "leave_last_out", "Temporal leave-last-out per user"
        GLOBAL_TIME = "global_time", "Temporal global cut-off"
        RANDOM = "random", "Seeded random ratio"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="splits")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.LEAVE_LAST_OUT)
    seed = models.IntegerField(default=0)
    min_interactions = models.PositiveIntegerField(
        default=5, help_text="Leave-last-out: users with fewer interactions stay in train only."
    )
    test_ratio = models.FloatField(default=0.2, help_text="Global cut-off and random: share of interactions in test.")
    cutoff_timestamp = models.BigIntegerField(
        null=True, blank=True, help_text="Global cut-off: interactions at or after this time are test."
    )
    used_cutoff_timestamp = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Global cut-off: the time actually used (computed from the ratio if not given).",
    )
    n_train = models.PositiveIntegerField(default=0)
    n_test = models.PositiveIntegerField(default=0)
    n_test_users = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "mode", "seed", "min_interactions", "test_ratio"],
                condition=models.Q(cutoff_timestamp__isnull=True),
                name="split_unique_parameters",
            ),
            models.UniqueConstraint(
                fields=["dataset", "mode", "seed", "min_interactions", "test_ratio", "cutoff_timestamp"],
                name="split_unique_parameters_with_cutoff",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} · {self.describe()}"

    def describe(self) -> str:
        if self.mode == self.Mode.LEAVE_LAST_OUT:
            return f"leave-last-out (users with ≥{self.min_interactions})"
        if self.mode == self.Mode.GLOBAL_TIME:
            return f"global cut-off at {self.used_cutoff_timestamp} ({self.n_test / max(1, self.n_train + self.n_test):.0%} test)"
        return f"random {self.test_ratio:.0%} test, seed {self.seed}"


class SplitTestInteraction(models.Model):
    """One interaction that a split puts in test."""

    split = models.ForeignKey(Split, on_delete=models.CASCADE, related_name="test_rows")
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["split", "interaction"], name="split_test_unique_interaction")]

    def __str__(self) -> str:
        return f"split {self.split_id}: interaction {self.interaction_id}"


class RecommenderRun(Job):
    """Top-K recommendations for a dataset's users: from one model fitted here on a split's train
    side (a Surprise algorithm on ratings, or an implicit-feedback model) and evaluated on its
    test side, or (kind "external") lists computed elsewhere and imported, evaluated against a
    split when one is named.

    The fitted model is pickled under XREC_MODEL_DIR; ``model_sha256`` lets a reader check
    the file is the one this run wrote.
    """

    class Kind(models.TextChoices):
        TRAINED = "trained", "Trained here"
        EXTERNAL = "external", "Imported lists"
        FIRST_PERSON = "first_person", "One first-person participant folded into a trained run"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="recommender_runs")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.TRAINED)
    name = models.CharField(max_length=200, blank=True, help_text="A name to find the run by (imported lists).")
    source = models.JSONField(
        default=dict, blank=True, help_text="Imported lists: model label, file name, sha256, rows and layout."
    )
    split_options = models.JSONField(
        default=dict, blank=True, help_text="Parameters of the split; the worker computes or reuses it."
    )
    split = models.ForeignKey(Split, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="fold_ins",
        help_text="First-person runs: the trained run whose model the participant was folded into.",
    )
    algorithm = models.CharField(max_length=40)
    hyperparameters = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField(default=0)
    k = models.PositiveSmallIntegerField(default=10, help_text="Length of each user's recommendation list.")
    relevance_threshold = models.FloatField(
        default=4.0, help_text="A test rating at or above this is relevant for the top-K metrics."
    )
    positive_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Implicit models on rated data: train ratings at or above this are positives "
        "(empty: every interaction is).",
    )
    attempts = models.PositiveIntegerField(default=0)
    fit_seconds = models.FloatField(null=True, blank=True)
    evaluate_seconds = models.FloatField(null=True, blank=True)
    topk_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    model_path = models.CharField(max_length=500, blank=True)
    model_sha256 = models.CharField(max_length=64, blank=True)

    objects: ClassVar[RecommenderRunQuerySet] = RecommenderRunQuerySet.as_manager()  # type: ignore[assignment]

    class Meta(Job.Meta):
        # The site's training form checks this, not add_recommenderrun: a researcher may train
        # through the service (which validates and enqueues) but not write rows in the admin.
        permissions = [("train_recommender", "Can train recommenders from the site")]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.algorithm} on {self.dataset_id}"

    def mark_succeeded(self, *, metrics: dict[str, Any]) -> None:
        self.status, self.metrics, self.finished_at = self.Status.SUCCEEDED, metrics, timezone.now()
        self.phase = "done"
        self.save(update_fields=["status", "metrics", "finished_at", "phase"])


class Recommendation(models.Model):
    """Item ``item`` at position ``rank`` (1 = best) of ``user``'s list in ``run``."""

    run = models.ForeignKey(RecommenderRun, on_delete=models.CASCADE, related_name="recommendations")
    user = models.ForeignKey(DatasetUser, on_delete=models.CASCADE, related_name="recommendations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="recommendations")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()

    objects: ClassVar[RecommendationQuerySet] = RecommendationQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["run", "user", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["run", "user", "rank"], name="recommendation_unique_rank"),
            models.UniqueConstraint(fields=["run", "user", "item"], name="recommendation_unique_item"),
        ]
        indexes = [models.Index(fields=["run", "item"], name="recommendation_run_item")]

    def __str__(self) -> str:
        return f"{self.user_id} #{self.rank}: {self.item_id} ({self.score:.3f})"
