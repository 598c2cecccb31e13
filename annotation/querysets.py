"""Named reads for annotation: who may see which campaigns and assignments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models

from explanations.models import Explanation
from explanations.textmetrics import mentioned_spans, title_variants
from recommendations.models import DatasetUser, Interaction

if TYPE_CHECKING:
    from annotation.models import Assignment, Campaign  # noqa: F401 - named in quoted base classes

T = TypeVar("T")


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def visible_to(self, user: Any) -> CampaignQuerySet:
        """Campaigns a researcher or admin may monitor; nothing for anyone else."""
        if user.has_perm("annotation.view_campaign"):
            return self
        return self.none()

    def open(self) -> CampaignQuerySet:
        return self.filter(status="open")


class AssignmentQuerySet(models.QuerySet["Assignment"]):
    def of_user(self, user: Any) -> AssignmentQuerySet:
        """Only the signed-in account's own assignments: anyone else's id is a 404."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(participant__user=user)

    def with_page_data(self) -> AssignmentQuerySet:
        """What every rating page needs first; ``task_context`` reads the rest in two more
        small queries (one twelve-table join costs more to plan than to run)."""
        return self.select_related("campaign", "participant", "item")


def _cut(text: str, spans: Iterable[tuple[int, int, T]], between: T) -> list[tuple[str, T]]:
    """``text`` cut into (segment, tag) pieces: each span's segment with its tag, the text
    between spans with ``between``; the template escapes each piece."""
    pieces, cursor = [], 0
    for start, end, tag in spans:
        if start > cursor:
            pieces.append((text[cursor:start], between))
        pieces.append((text[start:end], tag))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], between))
    return pieces


def highlighted(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` cut into (segment, is_mention) pieces."""
    return _cut(text, ((start, end, True) for start, end in spans), False)


def claim_pieces(text: str, claims: list[Any]) -> list[tuple[str, int | None]]:
    """``text`` cut into (segment, claim number) pieces, None between claims."""
    spans = sorted((claim.start, claim.end, claim.position + 1) for claim in claims)
    return _cut(text, spans, None)


def shown_history(user: DatasetUser, split_id: int | None, length: int) -> list[Interaction]:
    """The ``length`` newest train-side interactions of ``user`` (with their items), as a rating
    page shows them beside an explanation."""
    rows = Interaction.objects.history_of(user)
    if split_id is not None:
        rows = rows.outside_test_of(split_id)
    return list(rows.order_by("-timestamp", "-id")[:length])


# What ``task_context`` reads of an explanation and the rows around it.
PAGE_EXPLANATION_FIELDS = (
    "text",
    "generation_run__history_length",
    "recommendation__item__title",
    "recommendation__item__attributes",
    "recommendation__user__dataset",
    "recommendation__user__external_id",
    "recommendation__user__profile",
    "recommendation__run__split",
    # The foreign keys select_related follows.
    "generation_run",
    "recommendation",
    "recommendation__item",
    "recommendation__user",
    "recommendation__run",
)


def task_context(assignment: Assignment) -> dict[str, Any]:
    """What the rating page shows beside the explanation(s): the shown user's recent
    train-side history (newest first, as long as the campaign says), the profile fields the
    campaign shows, the item's attributes, and which history titles each explanation names. A
    fixed number of queries whatever the size of the data: explanations with their
    recommendation, history (and the other user, for an attention check)."""
    item = assignment.item
    # Only what the page shows (a narrow select compiles, travels and decodes in a fraction of
    # the time of six whole rows): the text, the history length the prompt used, the split the
    # history stays outside of, the item's title and details and the user's profile. The
    # explanations' recommendation is the item's, read with them in the same query.
    loaded = (
        Explanation.objects.select_related(
            "generation_run", "recommendation__item", "recommendation__user", "recommendation__run"
        )
        .only(*PAGE_EXPLANATION_FIELDS)
        .in_bulk([pk for pk in (item.explanation_id, item.explanation_b_id) if pk is not None])
    )
    item.explanation = loaded[item.explanation_id]
    if item.explanation_b_id is not None:
        item.explanation_b = loaded[item.explanation_b_id]
    recommendation = item.explanation.recommendation
    shown_user = DatasetUser.objects.get(pk=item.shown_user_id) if item.shown_user_id else recommendation.user
    length = assignment.campaign.shown_history_length(item.explanation.generation_run.history_length)
    history = shown_history(shown_user, recommendation.run.split_id, length)
    titles = [row.item.title for row in history if row.item.title]
    shown = []
    mentioned: set[str] = set()
    for explanation in assignment.shown_explanations():
        spans = mentioned_spans(explanation.text, titles)
        mentioned |= {explanation.text[start:end].lower() for start, end in spans}
        shown.append(highlighted(explanation.text, spans))
    rows = [
        {"interaction": row, "mentioned": any(v.lower() in mentioned for v in title_variants(row.item.title))}
        for row in history
    ]
    fields = assignment.campaign.profile_fields
    profile = [(key, value) for key, value in shown_user.profile_pairs if key in fields]
    return {
        "explanations": shown,
        "history": rows,
        "shown_user": shown_user,
        "profile": profile,
        "target": recommendation.item,
    }
