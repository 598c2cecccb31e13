"""Named reads for annotation: who may see which campaigns and assignments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models

from explanations.models import Explanation, GenerationRun
from explanations.textmetrics import mentioned_spans, title_variants
from recommendations.models import DatasetUser, Interaction, Item, Recommendation, RecommenderRun, SplitTestInteraction
from recommendations.shared.select import Layout, select_list, select_models, table

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


# The rating page's two reads are hand-written (``recommendations.shared.select``): they run on
# every submit, and compiling them through the ORM took longer than running them.
_HISTORY = (Layout(Interaction, "h"), Layout(Item, "it"))
_PAGE_ROWS = (
    Layout(Explanation, "e", ["id", "generation_run_id", "recommendation_id", "text"]),
    Layout(GenerationRun, "g", ["id", "history_length"]),
    Layout(Recommendation, "r", ["id", "run_id", "user_id", "item_id"]),
    Layout(Item, "it", ["id", "title", "attributes"]),
    Layout(DatasetUser, "u", ["id", "dataset_id", "external_id", "profile"]),
    Layout(RecommenderRun, "rr", ["id", "split_id"]),
)


def shown_history(user: DatasetUser, split_id: int | None, length: int) -> list[Interaction]:
    """The ``length`` newest train-side interactions of ``user`` (with their items), as a rating
    page shows them beside an explanation: newest first, those the split ``split_id`` puts in
    test left out (a NOT EXISTS per row, which stays on the split's index)."""
    outside_test = ""
    params: dict[str, Any] = {"user": user.pk, "length": length}
    if split_id is not None:
        outside_test = (
            f" AND NOT EXISTS (SELECT 1 FROM {table(SplitTestInteraction)} t"
            " WHERE t.split_id = %(split)s AND t.interaction_id = h.id)"
        )
        params["split"] = split_id
    sql = (
        f"SELECT {select_list(_HISTORY)}"
        f" FROM {table(Interaction)} h INNER JOIN {table(Item)} it ON it.id = h.item_id"
        f" WHERE h.user_id = %(user)s{outside_test} ORDER BY h.timestamp DESC, h.id DESC LIMIT %(length)s"
    )
    rows = []
    for interaction, item in select_models(sql, params, _HISTORY):
        interaction.item = item
        rows.append(interaction)
    return rows


def _page_explanations(pks: list[int]) -> dict[int, Explanation]:
    """The explanations a rating page shows, with what the page reads of their generation run,
    recommendation, recommended item, dataset user and recommender run."""
    sql = (
        f"SELECT {select_list(_PAGE_ROWS)}"
        f" FROM {table(Explanation)} e"
        f" INNER JOIN {table(GenerationRun)} g ON g.id = e.generation_run_id"
        f" INNER JOIN {table(Recommendation)} r ON r.id = e.recommendation_id"
        f" INNER JOIN {table(Item)} it ON it.id = r.item_id"
        f" INNER JOIN {table(DatasetUser)} u ON u.id = r.user_id"
        f" INNER JOIN {table(RecommenderRun)} rr ON rr.id = r.run_id"
        f" WHERE e.id IN ({', '.join(['%s'] * len(pks))})"
    )
    loaded = {}
    for explanation, run, recommendation, item, user, recommender_run in select_models(sql, pks, _PAGE_ROWS):
        recommendation.item, recommendation.user, recommendation.run = item, user, recommender_run
        explanation.generation_run, explanation.recommendation = run, recommendation
        loaded[explanation.pk] = explanation
    return loaded


def task_context(assignment: Assignment) -> dict[str, Any]:
    """What the rating page shows beside the explanation(s): the shown user's recent
    train-side history (newest first, as long as the campaign says), the profile fields the
    campaign shows, the item's attributes, and which history titles each explanation names. A
    fixed number of queries whatever the size of the data: explanations with their
    recommendation, history (and the other user, for an attention check)."""
    item = assignment.item
    # Only what the page shows (a narrow select travels and decodes in a fraction of the time
    # of six whole rows): the text, the history length the prompt used, the split the history
    # stays outside of, the item's title and details and the user's profile. The explanations'
    # recommendation is the item's, read with them in the same query.
    loaded = _page_explanations([pk for pk in (item.explanation_id, item.explanation_b_id) if pk is not None])
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
