"""The privacy review of a campaign before it opens: every text its annotators would see,
scanned for personal data (``annotation.privacy`` does the matching) and stored as flags for the
researcher to exclude or accept, and how often the history shown beside an item would single
its user out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign, CampaignItem, PrivacyFlag
from annotation.privacy import KINDS, Finding, longest_below, profile_echoes, reidentification, scan
from annotation.querysets import shown_history
from annotation.services.errors import CampaignError
from explanations.prompts import attributes_text
from recommendations.models import DatasetUser, Interaction

# A history shown beside more items than this share singles its users out too often.
DEFAULT_THRESHOLD = 0.05


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


def _shown_histories(campaign: Campaign) -> Iterator[tuple[CampaignItem, list[str]]]:
    """Each item of the campaign (with its explanations, recommendation, item and user) and the
    history titles its page shows, newest first; one history query per shown user and length."""
    items = list(
        CampaignItem.objects.filter(campaign=campaign).select_related(
            "explanation__generation_run", "explanation_b", "recommendation__item", "recommendation__user"
        )
    )
    users = DatasetUser.objects.in_bulk({item.shown_user_id or item.recommendation.user_id for item in items})
    histories: dict[tuple[int, int], list[str]] = {}
    for item in items:
        user = users[item.shown_user_id or item.recommendation.user_id]
        length = campaign.shown_history_length(item.explanation.generation_run.history_length)
        if (user.pk, length) not in histories:
            rows = shown_history(user, campaign.recommender_run.split_id, length)
            histories[(user.pk, length)] = [row.item.title or row.item.external_id for row in rows]
        yield item, histories[(user.pk, length)]


def _scan(campaign: Campaign) -> list[dict[str, Any]]:
    """Every distinct finding in what the campaign's annotators would see, with the items that show it."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for source, text in (("instructions", campaign.instructions), ("consent text", campaign.consent_text)):
        for finding in scan(text):
            _add(found, source, text, finding, None)
    # Titles and item details recur across items (a user's history, a popular item): each
    # distinct text is scanned once.
    scanned: dict[str, list[Finding]] = {}
    for item, titles in _shown_histories(campaign):
        recommendation = item.recommendation
        target = recommendation.item
        for explanation in filter(None, (item.explanation, item.explanation_b)):
            named = [target.title, *titles]
            for finding in explanation_findings(explanation.text, recommendation.user.profile, named):
                _add(found, "explanation", explanation.text, finding, item.pk)
        shown = [("item title", target.title), ("item details", attributes_text(target.attributes))]
        for source, text in [*shown, *(("history title", title) for title in titles)]:
            if text not in scanned:
                scanned[text] = scan(text)
            for finding in scanned[text]:
                _add(found, source, text, finding, item.pk)
    return sorted(found.values(), key=lambda entry: (entry["source"], entry["kind"], entry["match"]))


def explanation_findings(text: str, profile: dict[str, Any], titles: Sequence[str] = ()) -> list[Finding]:
    """Personal-data shapes in an explanation and its own user's profile values echoed in it
    (outside the ``titles`` it names)."""
    return scan(text) + profile_echoes(text, profile, titles)


def campaign_privacy_flags_create(campaign: Campaign) -> int:
    """Store a pending PrivacyFlag per finding in what the campaign's annotators would see;
    return how many."""
    findings = _scan(campaign)
    for finding in findings:
        flag = PrivacyFlag.objects.create(
            campaign=campaign,
            source=finding["source"],
            kind=finding["kind"],
            match=finding["match"][:200],
            context=finding["context"][:300],
            n_items=len(finding["items"]),
        )
        flag.items.set(finding["items"])
    return len(findings)


def privacy_flag_decide(*, flag: PrivacyFlag, decision: str, decided_by: Any) -> None:
    """Exclude a flag's items from its campaign (they are deleted: nobody has seen them) or
    accept what it found. Only while the campaign is in review; CampaignError otherwise, or
    for excluding a finding in the instructions or consent text (no item shows it: accept it,
    or make the campaign anew with other text)."""
    if decision not in (PrivacyFlag.Decision.EXCLUDED, PrivacyFlag.Decision.ACCEPTED):
        raise CampaignError("Decide to exclude or to accept.")
    if decision == PrivacyFlag.Decision.EXCLUDED and not flag.n_items:
        raise CampaignError(
            f"No item shows this finding (it is in the {flag.source}): accept it or make the campaign anew."
        )
    with transaction.atomic():
        # The campaign's row lock orders this against ``campaign_open``: no item of an open
        # campaign is ever deleted.
        campaign = Campaign.objects.select_for_update().get(pk=flag.campaign_id)
        if campaign.status != Campaign.Status.REVIEW:
            raise CampaignError("Findings are decided before the campaign opens.")
        if decision == PrivacyFlag.Decision.EXCLUDED:
            CampaignItem.objects.filter(pk__in=flag.items.values("pk")).delete()
        flag.decision, flag.decided_by, flag.decided_at = decision, decided_by, timezone.now()
        flag.save(update_fields=["decision", "decided_by", "decided_at"])


def campaign_reidentification(campaign: Campaign, *, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Per history length, the share of the campaign's items whose shown history titles match
    exactly one user of the dataset, and ``longest_safe_length``: the longest history that
    keeps the share below ``threshold``."""
    shown_titles = [titles for _, titles in _shown_histories(campaign)]
    owners: dict[str, set[int]] = defaultdict(set)
    interactions = Interaction.objects.of_dataset(campaign.recommender_run.dataset_id)
    for title, external_id, user_id in interactions.values_list("item__title", "item__external_id", "user_id"):
        owners[title or external_id].add(user_id)
    longest = max((len(titles) for titles in shown_titles), default=0)
    curve = reidentification(shown_titles, owners, max_length=longest) if longest else []
    return {
        "items": len(shown_titles),
        "reidentification": curve,
        "threshold": threshold,
        "longest_safe_length": longest_below(curve, threshold) if curve else None,
    }
