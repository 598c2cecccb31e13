"""Teacher data from what people rated best: a Likert campaign's explanations whose mean human
score passes a threshold tune a generator with LoRA, so a student learns from human-vetted text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Avg

from annotation.agreement import included_pool_ratings
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


def campaign_teacher_start(
    *,
    campaign: Campaign,
    created_by: Any,
    base_generator: Generator,
    criteria: Sequence[str],
    threshold: float,
    include_flagged: bool,
    options: dict[str, Any],
) -> AdapterTraining:
    """Record (and enqueue, after commit) the LoRA tuning of ``base_generator`` on the Likert
    campaign's best-rated explanations (``best_rated``). Raises GenerationError, storing
    nothing, when fewer than 2 pass or the base cannot be tuned."""
    chosen = best_rated(campaign, criteria=criteria, threshold=threshold, include_flagged=include_flagged)
    return rated_teacher_start(
        created_by=created_by,
        base_generator=base_generator,
        explanations=chosen,
        description=f"campaign #{campaign.pk} {campaign.name[:200]}: mean {', '.join(criteria)} ≥ {threshold:g}",
        options=options,
    )
