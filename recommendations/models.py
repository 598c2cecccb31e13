"""Rating datasets: the people, things and interactions a recommender learns from.

Dataset users are the people inside a rating dataset; they are never site accounts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from recommendations.querysets import DatasetQuerySet, InteractionQuerySet, ItemQuerySet


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


class ImportJob(models.Model):
    """An import started from the site and run by a worker, with its progress and outcome.

    The dataset appears only when the job succeeds; a failed job keeps its error and
    leaves every dataset as it was.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED})

    name = models.CharField(max_length=100, help_text="Name of the dataset to create.")
    format = models.CharField(max_length=40)
    domain = models.CharField(max_length=20, choices=Dataset.Domain.choices, default=Dataset.Domain.OTHER)
    path = models.TextField(blank=True, help_text="File or folder to read; empty for a bundled copy.")
    options = models.JSONField(default=dict, blank=True)
    replace = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    phase = models.CharField(max_length=200, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.name} ({self.format}, {self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(99, int(100 * self.progress_done / self.progress_total))

    def report_progress(self, phase: str, done: int, total: int) -> None:
        self.phase, self.progress_done, self.progress_total = phase, done, total
        self.save(update_fields=["phase", "progress_done", "progress_total"])

    def mark_succeeded(self, dataset: Dataset) -> None:
        self.status, self.dataset, self.finished_at = self.Status.SUCCEEDED, dataset, timezone.now()
        self.phase = "done"
        self.save(update_fields=["status", "dataset", "finished_at", "phase"])

    def mark_failed(self, error: str) -> None:
        self.status, self.error, self.finished_at = self.Status.FAILED, error, timezone.now()
        self.save(update_fields=["status", "error", "finished_at"])
