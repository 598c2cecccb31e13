"""Named reads for the recommendations app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Count, Q

if TYPE_CHECKING:
    from recommendations.models import (  # noqa: F401 - Item, Interaction: quoted base classes
        Dataset,
        DatasetUser,
        Interaction,
        Item,
    )


class DatasetQuerySet(models.QuerySet["Dataset"]):
    def visible_to(self, user: Any) -> DatasetQuerySet:
        """Datasets the site account may read: everything with the view permission, else none."""
        if user.has_perm("recommendations.view_dataset"):
            return self
        return self.none()


class ItemQuerySet(models.QuerySet["Item"]):
    def of_dataset(self, dataset: Dataset) -> ItemQuerySet:
        return self.filter(dataset=dataset)

    def search(self, text: str) -> ItemQuerySet:
        text = text.strip()
        if not text:
            return self
        return self.filter(Q(title__icontains=text) | Q(external_id=text))

    def most_interacted(self) -> ItemQuerySet:
        """Items by descending interaction count, annotated as ``n_interactions``."""
        return self.annotate(n_interactions=Count("interactions")).order_by("-n_interactions", "id")


class InteractionQuerySet(models.QuerySet["Interaction"]):
    def of_dataset(self, dataset: Dataset) -> InteractionQuerySet:
        return self.filter(dataset=dataset)

    def history_of(self, user: DatasetUser) -> InteractionQuerySet:
        """A dataset user's interactions, oldest first, with their items."""
        return self.filter(user=user).select_related("item").order_by("timestamp", "id")

    def rating_histogram(self) -> list[tuple[float | None, int]]:
        rows = self.values("rating").annotate(n=Count("id")).order_by("rating")
        return [(row["rating"], row["n"]) for row in rows]
