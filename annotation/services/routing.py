"""Decision-aware routing and stopping for campaigns that compare generators.

``annotation.agreement.campaign_ranking`` says whether the ranking of a campaign's generation
runs is settled. ``routing_refresh`` stores each pool item's routing priority
(``CampaignItem.priority``) from the ranking, records when the ranking was first settled and
closes a campaign that asked for it (``close_when_settled``). It runs as the task
``annotation.routing_refresh``, enqueued after every ``REFRESH_EVERY``-th submitted assignment,
at most once every ``REFRESH_SECONDS``. A routed claim (``services.assignments``) takes its item
among those of the highest priority.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotation.agreement import campaign_ranking
from annotation.models import Assignment, Campaign, CampaignItem
from annotation.study.stats.ranking import Ranking, priorities

# A routed campaign's priorities are recomputed after every this many submitted assignments,
# and at most once in this many seconds (bench_annotate: 6.5 s for 300,000 ratings on 2 cores).
REFRESH_EVERY = 20
REFRESH_SECONDS = 30


def routing_refresh(*, campaign: Campaign) -> Ranking | None:
    """Recompute the ranking; store the pool's routing priorities (routed campaigns), the time
    it was first settled, and close the campaign if it is settled and asked to close then."""
    ranking = campaign_ranking(campaign)
    if ranking is None:
        return None
    if campaign.routing == Campaign.Routing.UNCERTAINTY:
        _priorities_store(campaign, ranking)
    if ranking.settled and campaign.settled_at is None:
        campaign.settled_at = timezone.now()
        campaign.save(update_fields=["settled_at"])
    if ranking.settled and campaign.close_when_settled and campaign.is_open:
        campaign.close()
    return ranking


def _priorities_store(campaign: Campaign, ranking: Ranking) -> None:
    pool = (
        CampaignItem.objects.filter(campaign=campaign, kind=CampaignItem.Kind.REGULAR)
        .annotate(
            answered=Count(
                "assignments",
                filter=Q(assignments__status=Assignment.Status.SUBMITTED, assignments__participant__excluded=False),
            )
        )
        .values_list("pk", "recommendation_id", "explanation__generation_run_id", "explanation_b__generation_run_id",
                     "answered", "priority")
    )  # fmt: skip
    rows = list(pool)
    shown = [(r, frozenset(run for run in (a, b) if run is not None)) for _, r, a, b, _, _ in rows]
    wanted = priorities(ranking, shown, [answered for *_, answered, _ in rows])
    changed: dict[int, list[int]] = defaultdict(list)
    for (pk, *_, current), level in zip(rows, wanted, strict=True):
        if level != current:
            changed[level].append(pk)
    with transaction.atomic():
        for level, pks in changed.items():
            for start in range(0, len(pks), 2000):
                CampaignItem.objects.filter(pk__in=pks[start : start + 2000]).update(priority=level)
