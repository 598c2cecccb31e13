"""The items of a campaign's pool, as both kinds of campaign build them: a third-person campaign
from its sample when it is created, a first-person one per participant (``first_person``)."""

from __future__ import annotations

import itertools

from annotation.models import Campaign, CampaignItem
from explanations.models import GenerationRun


def pool_items(
    campaign: Campaign, chosen: list[int], explained: dict[int, dict[int, int]], runs: list[GenerationRun]
) -> list[CampaignItem]:
    """Unsaved pool items: one per (recommendation, run) for Likert, one per (recommendation,
    pair of runs) for pairwise, the explanation of the earlier run being ``a``."""
    items = []
    for recommendation_id in chosen:
        by_run = explained[recommendation_id]
        if campaign.mode != Campaign.Mode.PAIRWISE:
            items += [
                CampaignItem(campaign=campaign, recommendation_id=recommendation_id, explanation_id=by_run[run.pk])
                for run in runs
            ]
        else:
            items += [
                CampaignItem(
                    campaign=campaign,
                    recommendation_id=recommendation_id,
                    explanation_id=by_run[first.pk],
                    explanation_b_id=by_run[second.pk],
                )
                for first, second in itertools.combinations(runs, 2)
            ]
    return items
