"""Tuning a pairwise LLM judge on a campaign's human preferences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotation.exports import campaign_preferences
from annotation.models import Campaign
from explanations.models import AdapterTraining, Generator
from explanations.services.adapters import judge_training_start


def campaign_judge_tuning_start(
    *,
    campaign: Campaign,
    created_by: Any,
    criteria: Sequence[str],
    base_generator: Generator,
    include_flagged: bool,
    options: dict[str, Any],
) -> AdapterTraining:
    """Record (and enqueue, after commit) the LoRA tuning of a judge on ``campaign``'s votes.

    Precondition: a pairwise campaign (a Likert one has no preferences to learn from; the view
    answers 404 for it). The judge learns the human winner of every rated pair over the answers to
    ``criteria`` (names of the campaign's criteria), from included annotators and, with
    ``include_flagged``, flagged ones; its rubric is those criteria in the campaign's order,
    so the tuned judge is prompted as it will be run. Raises ``GenerationError`` (nothing
    stored) when the preferences or the base generator cannot make a training.
    """
    rubric_criteria = campaign.criteria.filter(name__in=criteria)  # in the campaign's order
    return judge_training_start(
        created_by=created_by,
        base_generator=base_generator,
        preferences=campaign_preferences(campaign, criteria=criteria, include_flagged=include_flagged),
        rubric=[criterion.as_rubric() for criterion in rubric_criteria],
        description=f"campaign #{campaign.pk} {campaign.name[:200]}: {', '.join(criteria)}",
        options=options,
    )
