"""Claims campaigns: each explanation cut into claims that annotators label one by one.

A claims item's claims (``ItemClaim``) are written with the item, from the default split
(``explanations.claims.split_claims``). While the campaign is in review the researcher may
re-split a pool item (``item_claims_set``); once it is open, what annotators label is fixed.
Gold and training items take the split of the pool item that shows the same explanation, so
their accepted labels name the claims annotators see; an accepted answer is stored under the
claim's form name (``ItemClaim.field_name``), as ``rating_submit``'s answers are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from annotation.models import Campaign, CampaignItem, ClaimLabel, ItemClaim
from annotation.services.errors import CampaignError
from explanations.claims import Claim, SplitError, claims_from_pieces, split_claims
from explanations.models import ClaimCheck, Explanation, GenerationRun, Generator
from explanations.services.claims import claim_check_start


def _claim_rows(item: CampaignItem, claims: Sequence[Claim]) -> list[ItemClaim]:
    return [
        ItemClaim(item=item, position=position, start=claim.start, end=claim.end, text=claim.text)
        for position, claim in enumerate(claims)
    ]


def item_claims_create(items: Iterable[CampaignItem]) -> None:
    """Write the default split of every saved item's explanation (attention checks have none)."""
    items = [item for item in items if item.kind != CampaignItem.Kind.ATTENTION]
    texts = dict(Explanation.objects.filter(pk__in={item.explanation_id for item in items}).values_list("pk", "text"))
    rows = []
    for item in items:
        rows += _claim_rows(item, split_claims(texts[item.explanation_id]))
    ItemClaim.objects.bulk_create(rows, batch_size=2000)


def reference_claims_create(item: CampaignItem) -> list[ItemClaim]:
    """A gold or training item's claims: the split of the campaign's pool item with the same
    explanation if there is one (so a re-split carries over), else the default split."""
    pool = (
        CampaignItem.objects.filter(
            campaign_id=item.campaign_id, kind=CampaignItem.Kind.REGULAR, explanation_id=item.explanation_id
        )
        .order_by("pk")
        .first()
    )
    if pool is not None:
        claims = [Claim(c.text, c.start, c.end) for c in pool.claims.all()]
    else:
        claims = split_claims(item.explanation.text)
    return ItemClaim.objects.bulk_create(_claim_rows(item, claims))


def accepted_claim_labels(claims: Sequence[ItemClaim], accepted: dict[str, object]) -> dict[str, str]:
    """A reference item's accepted labels, given by claim number (1 = first) as the researcher
    wrote them, keyed by the claims' form names. CampaignError for a number that is not one of
    the item's claims, a label that is not a ``ClaimLabel.Label``, or nothing at all."""
    cleaned = {}
    for number, label in accepted.items():
        if not number.isdigit() or not 1 <= int(number) <= len(claims):
            raise CampaignError(f"This explanation has claims 1 to {len(claims)}; {number!r} is not one of them.")
        if label not in ClaimLabel.Label.values:
            raise CampaignError(f"Claim {number}: the label is one of {', '.join(ClaimLabel.Label.values)}.")
        cleaned[claims[int(number) - 1].field_name] = str(label)
    if not cleaned:
        raise CampaignError("Give the accepted label of at least one claim, e.g. 1=supported.")
    return cleaned


def item_claims_set(*, item: CampaignItem, pieces: list[str]) -> list[ItemClaim]:
    """Re-split a pool item of a claims campaign in review: ``pieces`` are the claims written
    out in order, each a part of the explanation (``claims_from_pieces``). Takes the campaign's
    row lock, as opening it does, so a split never changes under an annotator. Raises
    CampaignError (nothing changed) for another mode or kind, a campaign no longer in review,
    or pieces that are not parts of the text."""
    if item.kind != CampaignItem.Kind.REGULAR:
        raise CampaignError("Only pool items are re-split; remove and add a reference item again instead.")
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=item.campaign_id)
        if campaign.mode != Campaign.Mode.CLAIMS:
            raise CampaignError("Only a claims campaign has claims.")
        if campaign.status != Campaign.Status.REVIEW:
            raise CampaignError("The split is fixed once the campaign is open.")
        try:
            claims = claims_from_pieces(item.explanation.text, pieces)
        except SplitError as exc:
            raise CampaignError(str(exc)) from None
        item.claims.all().delete()
        return ItemClaim.objects.bulk_create(_claim_rows(item, claims))


def campaign_claim_checks_start(
    *, campaign: Campaign, checker: Generator, created_by: Any, answer_mode: str, enqueue: bool = True
) -> list[ClaimCheck]:
    """Check the claims of a claims campaign's pool items automatically, as annotators see them
    (the campaign's split, so the report can set checker and annotators side by side claim by
    claim): one claim check per generation run, all or none. Raises GenerationError, storing
    nothing, as ``claim_check_start`` does."""
    rows = (
        ItemClaim.objects.filter(item__campaign=campaign, item__kind=CampaignItem.Kind.REGULAR)
        .order_by("item__explanation_id", "start")
        .values_list("item__explanation__generation_run_id", "item__explanation_id", "start", "end", "text")
    )
    by_run: dict[int, dict[tuple[int, int, int], str]] = {}
    for run_id, explanation_id, start, end, text in rows:
        by_run.setdefault(run_id, {})[(explanation_id, start, end)] = text
    with transaction.atomic():
        return [
            claim_check_start(
                created_by=created_by,
                checker=checker,
                generation_run=run,
                answer_mode=answer_mode,
                enqueue=enqueue,
                claims=[(*key, text) for key, text in by_run.get(run.pk, {}).items()],
                claims_from=f"campaign #{campaign.pk}",
            )
            for run in GenerationRun.objects.filter(pk__in=sorted(by_run)).order_by("pk")
        ]
