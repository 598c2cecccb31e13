"""Named reads for annotation: who may see which campaigns and assignments."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from annotation.models import Assignment, Campaign  # noqa: F401 - named in quoted base classes


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
        return self.select_related(
            "campaign",
            "participant",
            "item__explanation__generation_run",
            "item__explanation_b",
            "item__recommendation__item",
            "item__recommendation__user",
            "item__recommendation__run",
            "item__shown_user",
        )


_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An|Les|La|Le|Il|Das|Der|Die|El)$")


def title_variants(title: str) -> list[str]:
    """The forms in which a text may name ``title``: as stored, without a trailing year,
    and with a MovieLens-style trailing article moved to the front ("Usual Suspects, The")."""
    variants = [title.strip()]
    bare = _YEAR.sub("", title).strip()
    variants.append(bare)
    if match := _TRAILING_ARTICLE.match(bare):
        variants.append(f"{match['article']} {match['rest']}")
        variants.append(match["rest"])
    return [variant for variant in dict.fromkeys(variants) if len(variant) >= 3]


def mentioned_spans(text: str, titles: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of ``text`` that name one of ``titles``, longest first."""
    spans: list[tuple[int, int]] = []
    lowered = text.lower()
    variants = sorted({v.lower() for title in titles for v in title_variants(title)}, key=len, reverse=True)
    for variant in variants:
        for match in re.finditer(rf"(?<!\w){re.escape(variant)}(?!\w)", lowered):
            if all(match.end() <= start or match.start() >= end for start, end in spans):
                spans.append(match.span())
    return sorted(spans)


def highlighted(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` cut into (segment, is_mention) pieces; the template escapes each piece."""
    pieces, cursor = [], 0
    for start, end in spans:
        if start > cursor:
            pieces.append((text[cursor:start], False))
        pieces.append((text[start:end], True))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], False))
    return pieces


def task_context(assignment: Assignment) -> dict[str, Any]:
    """What the rating page shows beside the explanation(s): the shown user's recent
    train-side history (newest first, as long as the prompt's), the item's attributes, and
    which history titles each explanation names. Constant query count in the data size."""
    from recommendations.models import Interaction

    item = assignment.item
    recommendation = item.recommendation
    shown_user = item.shown_user or recommendation.user
    run = recommendation.run
    explanations = assignment.shown_explanations()
    history_qs = Interaction.objects.history_of(shown_user)
    if run.split is not None:
        history_qs = history_qs.in_train_of(run.split)
    length = max(item.explanation.generation_run.history_length, 5)
    history = list(history_qs.order_by("-timestamp", "-id")[:length])
    titles = [row.item.title for row in history if row.item.title]
    shown = []
    mentioned: set[str] = set()
    for explanation in explanations:
        spans = mentioned_spans(explanation.text, titles)
        found = {explanation.text[start:end].lower() for start, end in spans}
        mentioned |= found
        shown.append(highlighted(explanation.text, spans))
    rows = [
        {
            "interaction": row,
            "mentioned": any(v.lower() in mentioned for v in title_variants(row.item.title)),
        }
        for row in history
    ]
    return {
        "explanations": shown,
        "history": rows,
        "shown_user": shown_user,
        "target": recommendation.item,
    }
