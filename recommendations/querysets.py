"""Named reads for the recommendations app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q

if TYPE_CHECKING:
    from recommendations.models import (  # noqa: F401 - some are named only in quoted base classes
        Dataset,
        DatasetUser,
        Interaction,
        Item,
        Recommendation,
        RecommenderRun,
        Split,
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
        """Items by descending count of observed interactions (first-person participants' ratings
        left out), annotated as ``n_interactions``."""
        observed = Count("interactions", filter=Q(interactions__user__elicited=False))
        return self.annotate(n_interactions=observed).order_by("-n_interactions", "id")


class InteractionQuerySet(models.QuerySet["Interaction"]):
    def observed(self) -> InteractionQuerySet:
        """The interactions the dataset observed: without the ratings first-person participants
        gave on an elicitation page (``DatasetUser.elicited``). Every dataset-wide read (splits,
        training, popularity, re-identification, attribute truths, the dataset page) goes
        through this; only a user's own history reads their rows directly."""
        return self.filter(user__elicited=False)

    def of_dataset(self, dataset: Dataset | int) -> InteractionQuerySet:
        """The dataset's observed interactions (``observed``)."""
        return self.filter(dataset=dataset).observed()

    def history_of(self, user: DatasetUser) -> InteractionQuerySet:
        """A dataset user's interactions, oldest first, with their items."""
        return self.filter(user=user).select_related("item").order_by("timestamp", "id")

    def in_test_of(self, split: Split) -> InteractionQuerySet:
        return self.filter(pk__in=split.test_rows.values("interaction_id"))

    def in_train_of(self, split: Split) -> InteractionQuerySet:
        """The split's train side: the dataset's interactions that are not in its test set."""
        return self.filter(dataset_id=split.dataset_id).outside_test_of(split.pk)

    def outside_test_of(self, split_id: int) -> InteractionQuerySet:
        """Interactions that split ``split_id`` does not put in test. NOT EXISTS per row, not
        NOT IN over the split: PostgreSQL would hash every test row of the split each time."""
        # Through the app registry: models.py imports this module, so importing it back would
        # close a cycle.
        test_row = apps.get_model("recommendations", "SplitTestInteraction").objects.filter(
            split_id=split_id, interaction_id=OuterRef("pk")
        )
        return self.exclude(Exists(test_row))

    def rating_histogram(self) -> list[tuple[float | None, int]]:
        rows = self.values("rating").annotate(n=Count("id")).order_by("rating")
        return [(row["rating"], row["n"]) for row in rows]


class RecommenderRunQuerySet(models.QuerySet["RecommenderRun"]):
    def visible_to(self, user: Any) -> RecommenderRunQuerySet:
        if user.has_perm("recommendations.view_recommenderrun"):
            return self
        return self.none()

    def with_related(self) -> RecommenderRunQuerySet:
        return self.select_related("dataset", "split", "created_by")

    def listed(self) -> RecommenderRunQuerySet:
        """Runs a researcher picks from: not the one-participant runs of first-person campaigns,
        which live under their campaign."""
        return self.exclude(kind="first_person")


class RecommendationQuerySet(models.QuerySet["Recommendation"]):
    def for_run(self, run: RecommenderRun) -> RecommendationQuerySet:
        return self.filter(run=run)

    def for_user(self, user: DatasetUser) -> RecommendationQuerySet:
        return self.filter(user=user).select_related("item").order_by("rank")

    def counts_per_item(self) -> list[int]:
        """How many lists each recommended item appears in (items never recommended omitted)."""
        return list(self.values("item").annotate(n=Count("id")).values_list("n", flat=True))
