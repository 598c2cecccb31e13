"""The privacy check of a campaign: every text its annotators would see, scanned for personal
data, and how often the history shown beside an item would single its user out.

Read-only: it lists what it finds for the researcher (``annotation.privacy`` does the matching).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from annotation.models import Campaign, CampaignItem
from annotation.privacy import KINDS, Finding, longest_below, profile_echoes, reidentification, scan
from annotation.querysets import shown_history
from explanations.prompts import attributes_text
from recommendations.models import DatasetUser, Interaction

# A history shown beside more items than this share singles its users out too often.
DEFAULT_THRESHOLD = 0.05
MAX_FINDINGS = 500


def _add(
    found: dict[tuple[str, str, str], dict[str, Any]], source: str, text: str, finding: Finding, item: int | None
) -> None:
    """Record ``finding`` in ``text`` once per (source, kind, match), with the items that show it."""
    entry = found.setdefault(
        (source, finding.kind, finding.match),
        {
            "source": source,
            "kind": finding.kind,
            "kind_text": KINDS[finding.kind],
            "match": finding.match,
            "context": finding.context(text),
            "items": set(),
        },
    )
    if item is not None:
        entry["items"].add(item)


def campaign_privacy_check(campaign: Campaign, *, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """What the campaign's annotators would see that looks like personal data, and the
    re-identification curve of the history it shows.

    Scanned: every item's explanations (with the explanation's own user's profile values
    echoed), the recommended items' titles and attributes, the titles of the history rows each
    item shows, and the campaign's instructions and consent text. ``findings`` lists each
    distinct match once with the items that would show it; ``reidentification`` gives, per
    history length, the share of items whose shown titles match exactly one user of the
    dataset, and ``longest_safe_length`` the longest history that stays below ``threshold``.
    """
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for source, text in (("instructions", campaign.instructions), ("consent text", campaign.consent_text)):
        for finding in scan(text):
            _add(found, source, text, finding, None)
    items = list(
        CampaignItem.objects.filter(campaign=campaign).select_related(
            "explanation__generation_run", "explanation_b", "recommendation__item", "recommendation__user"
        )
    )
    users = DatasetUser.objects.in_bulk({item.shown_user_id or item.recommendation.user_id for item in items})
    histories: dict[tuple[int, int], list[str]] = {}
    shown_titles = []
    for item in items:
        recommendation = item.recommendation
        for explanation in filter(None, (item.explanation, item.explanation_b)):
            text = explanation.text
            for finding in scan(text) + profile_echoes(text, recommendation.user.profile):
                _add(found, "explanation", text, finding, item.pk)
        target = recommendation.item
        for source, text in (("item title", target.title), ("item details", attributes_text(target.attributes))):
            for finding in scan(text):
                _add(found, source, text, finding, item.pk)
        user = users[item.shown_user_id or recommendation.user_id]
        length = campaign.shown_history_length(item.explanation.generation_run.history_length)
        if (user.pk, length) not in histories:
            rows = shown_history(user, campaign.recommender_run.split_id, length)
            histories[(user.pk, length)] = [row.item.title or row.item.external_id for row in rows]
        titles = histories[(user.pk, length)]
        shown_titles.append(titles)
        for title in titles:
            for finding in scan(title):
                _add(found, "history title", title, finding, item.pk)
    owners: dict[str, set[int]] = defaultdict(set)
    interactions = Interaction.objects.filter(dataset_id=campaign.recommender_run.dataset_id)
    for title, external_id, user_id in interactions.values_list("item__title", "item__external_id", "user_id"):
        owners[title or external_id].add(user_id)
    longest = max((len(titles) for titles in shown_titles), default=0)
    curve = reidentification(shown_titles, owners, max_length=longest) if longest else []
    findings = sorted(found.values(), key=lambda entry: (entry["source"], entry["kind"], entry["match"]))
    for entry in findings:
        entry["items"] = sorted(entry["items"])
    return {
        "findings": findings[:MAX_FINDINGS],
        "n_findings": len(findings),
        "items": len(items),
        "reidentification": curve,
        "threshold": threshold,
        "longest_safe_length": longest_below(curve, threshold) if curve else None,
    }
