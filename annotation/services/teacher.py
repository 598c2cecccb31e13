"""Teacher data from what people rated best: a Likert campaign's explanations whose mean human
score passes a threshold, or a claims campaign's explanations whose claims annotators found
supported often enough, tune a generator with LoRA, so a student learns from human-vetted text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Avg, Count, Q

from annotation.agreement import included_claim_labels, included_pool_ratings
from annotation.models import Campaign
from explanations.models import AdapterTraining, Generator
from explanations.services.adapters import rated_teacher_start


def best_rated(
    campaign: Campaign, *, criteria: Sequence[str], threshold: float, include_flagged: bool = False
) -> dict[int, float]:
    """Explanation id → mean score, for the explanations whose mean over ``criteria`` and over
    the included annotators (excluded ones never, flagged ones only with ``include_flagged``)
    is at least ``threshold``."""
    means = (
        included_pool_ratings(campaign, include_flagged=include_flagged)
        .filter(criterion__name__in=list(criteria), value__isnull=False)
        .values("assignment__item__explanation_id")
        .annotate(mean=Avg("value"))
    )
    return {row["assignment__item__explanation_id"]: float(row["mean"]) for row in means if row["mean"] >= threshold}


def best_supported(campaign: Campaign, *, threshold: float, include_flagged: bool = False) -> dict[int, float]:
    """Explanation id → share of its claim labels saying "supported" (over its claims and the
    included annotators), for the claims campaign's explanations whose share is at least ``threshold``."""
    shares = (
        included_claim_labels(campaign, include_flagged=include_flagged)
        .values("assignment__item__explanation_id")
        .annotate(n=Count("id"), supported=Count("id", filter=Q(label="supported")))
    )
    return {
        row["assignment__item__explanation_id"]: row["supported"] / row["n"]
        for row in shares
        if row["supported"] / row["n"] >= threshold
    }


def campaign_teacher_start(
    *,
    campaign: Campaign,
    created_by: Any,
    base_generator: Generator,
    threshold: float,
    include_flagged: bool,
    options: dict[str, Any],
    criteria: Sequence[str] = (),
) -> AdapterTraining:
    """Record (and enqueue, after commit) the LoRA tuning of ``base_generator`` on the
    campaign's best explanations: a Likert campaign's best-rated (``best_rated`` over
    ``criteria``), a claims campaign's best-supported (``best_supported``). Raises
    GenerationError, storing nothing, when fewer than 2 pass or the base cannot be tuned."""
    if campaign.mode == Campaign.Mode.CLAIMS:
        chosen = best_supported(campaign, threshold=threshold, include_flagged=include_flagged)
        rule = f"share of claims found supported ≥ {threshold:g}"
    else:
        chosen = best_rated(campaign, criteria=criteria, threshold=threshold, include_flagged=include_flagged)
        rule = f"mean {', '.join(criteria)} ≥ {threshold:g}"
    return rated_teacher_start(
        created_by=created_by,
        base_generator=base_generator,
        explanations=chosen,
        description=f"campaign #{campaign.pk} {campaign.name[:200]}: {rule}",
        options=options,
    )
