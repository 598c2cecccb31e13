"""What the campaign page shows researchers: progress, annotators, checks and agreement.

Krippendorff's alpha comes from ``annotation.study.stats.agreement``: coders are participants,
units are pool items, and a missing answer is NaN. Ordinal alpha is given the rubric's
whole scale as its value domain, so unused scale points still count as distances.
Excluded participants are left out of every figure except their own row.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any, TypeVar

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from annotation.models import Assignment, Campaign, CampaignItem, ClaimLabel, Participant, Rating
from annotation.study.stats.agreement import alpha_of_answers
from annotation.study.stats.ranking import Ranking, likert_ranking, pairwise_ranking

CHOICE_CODES = {"a": 0.0, "tie": 1.0, "b": 2.0}
# How long the campaign page's ranking may be reused between polls.
RANKING_SECONDS = 15
M = TypeVar("M", Rating, ClaimLabel)


def _included(answers: QuerySet[M], campaign: Campaign, include_flagged: bool) -> QuerySet[M]:
    """The answers (rows with an ``assignment``) that agreement and results count: submitted,
    to pool items, excluded annotators never, flagged ones unless ``include_flagged`` is False."""
    answers = answers.filter(
        assignment__campaign=campaign,
        assignment__status=Assignment.Status.SUBMITTED,
        assignment__item__kind=CampaignItem.Kind.REGULAR,
        assignment__participant__excluded=False,
    )
    return answers if include_flagged else answers.filter(assignment__participant__flagged=False)


def included_pool_ratings(campaign: Campaign, *, include_flagged: bool = True) -> QuerySet[Rating]:
    """The submitted answers to pool items that agreement and results count (``_included``)."""
    return _included(Rating.objects.all(), campaign, include_flagged)


def included_claim_labels(campaign: Campaign, *, include_flagged: bool = True) -> QuerySet[ClaimLabel]:
    """A claims campaign's submitted labels of pool items, counted as ``included_pool_ratings``."""
    return _included(ClaimLabel.objects.all(), campaign, include_flagged)


Answers = tuple[np.ndarray, np.ndarray, np.ndarray]  # coders, units, values: parallel arrays
# A claim's label on its ordinal scale, from supported to contradicted.
CLAIM_CODES = {"supported": 0.0, "unsupported": 1.0, "contradicted": 2.0}


def claim_agreement(campaign: Campaign) -> list[dict[str, Any]]:
    """A claims campaign's agreement, claims being the units: on the three labels (nominal, and
    ordinal from supported to contradicted) and on supported or not (nominal)."""
    rows = np.asarray(
        [
            (participant, claim, CLAIM_CODES[label])
            for participant, claim, label in included_claim_labels(campaign).values_list(
                "assignment__participant_id", "claim_id", "label"
            )
        ],
        dtype=np.float64,
    ).reshape(-1, 3)
    coders, units, values = rows[:, 0], rows[:, 1], rows[:, 2]
    return [
        _agreement_row("claim label", coders, units, values, {"nominal": None, "ordinal": [0.0, 1.0, 2.0]}),
        _agreement_row("supported or not", coders, units, (values > 0).astype(np.float64), {"nominal": None}),
    ]


def _agreement_row(
    name: str, coders: np.ndarray, units: np.ndarray, values: np.ndarray, levels: dict[str, list[float] | None]
) -> dict[str, Any]:
    """One row of the campaign page's agreement table: answers, units with two or more, and
    alpha at each of ``levels`` (level → value domain), None without answers."""
    per_unit = np.unique(units, return_counts=True)[1] if units.size else np.empty(0)
    row: dict[str, Any] = {"criterion": name, "answers": int(values.size), "units_paired": int((per_unit >= 2).sum())}
    for level, domain in levels.items():
        row[level] = (
            alpha_of_answers(coders, units, values, level, domain, n_resamples=0).estimate  # type: ignore[arg-type]
            if values.size
            else None
        )
    return row


def campaign_answers(campaign: Campaign) -> dict[str, Answers]:
    """criterion name → the included participants' pool answers as (coder, unit, value)
    arrays; pairwise choices are coded a = 0 < tie = 1 < b = 2. One query."""
    rows = (
        included_pool_ratings(campaign)
        .values_list("assignment__participant_id", "assignment__item_id", "criterion__name", "value", "choice")
        .iterator(chunk_size=10000)
    )
    columns: dict[str, tuple[list[int], list[int], list[float]]] = defaultdict(lambda: ([], [], []))
    for participant_id, item_id, name, value, choice in rows:
        coders, units, values = columns[name]
        coders.append(participant_id)
        units.append(item_id)
        values.append(CHOICE_CODES[choice] if choice else float(value if value is not None else np.nan))
    return {
        name: (np.asarray(c), np.asarray(u), np.asarray(v, dtype=np.float64)) for name, (c, u, v) in columns.items()
    }


def reliability_matrices(campaign: Campaign) -> dict[str, np.ndarray]:
    """criterion name → coders x units matrix (NaN = missing) of ``campaign_answers``."""
    matrices = {}
    for name, (coders, units, values) in campaign_answers(campaign).items():
        coder_codes = np.unique(coders, return_inverse=True)[1].ravel()
        unit_codes = np.unique(units, return_inverse=True)[1].ravel()
        matrix = np.full((int(coder_codes.max()) + 1, int(unit_codes.max()) + 1), np.nan)
        matrix[coder_codes, unit_codes] = values
        matrices[name] = matrix
    return matrices


def campaign_agreement(campaign: Campaign) -> list[dict[str, Any]]:
    """Per criterion: answers, units with two or more answers, interval and ordinal alpha
    (Likert), or nominal and ordinal alpha on a < tie < b (pairwise). Computed from the
    answers themselves, never a coders x units matrix, so a large campaign stays cheap."""
    if campaign.mode == Campaign.Mode.CLAIMS:
        return claim_agreement(campaign)
    answers = campaign_answers(campaign)
    empty = (np.empty(0), np.empty(0), np.empty(0))
    result = []
    for criterion in campaign.criteria.all():
        coders, units, values = answers.get(criterion.name, empty)
        levels: dict[str, list[float] | None]
        if campaign.mode == Campaign.Mode.PAIRWISE:
            levels = {"nominal": None, "ordinal": [0.0, 1.0, 2.0]}
        else:
            scale = [float(v) for v in range(criterion.scale_min, criterion.scale_max + 1)]
            levels = {"interval": None, "ordinal": scale}
        result.append(_agreement_row(criterion.name, coders, units, values, levels))
    return result


def campaign_progress(campaign: Campaign) -> dict[str, Any]:
    pool = CampaignItem.objects.filter(campaign=campaign, kind=CampaignItem.Kind.REGULAR).annotate(
        answered=Count(
            "assignments",
            filter=Q(assignments__status=Assignment.Status.SUBMITTED, assignments__participant__excluded=False),
        )
    )
    answered = list(pool.values_list("answered", flat=True))
    items = len(answered)
    complete = sum(1 for n in answered if n >= campaign.overlap)
    submitted = sum(answered)
    needed = items * campaign.overlap
    return {
        "items": items,
        "complete": complete,
        "submitted": submitted,
        "needed": needed,
        "percent": int(100 * min(submitted, needed) / needed) if needed else 100,
        "active": Assignment.objects.filter(campaign=campaign, status=Assignment.Status.ACTIVE).count(),
    }


def participant_rows(campaign: Campaign) -> list[dict[str, Any]]:
    """Each participant's progress, checks, median time on task and flags."""
    times: dict[int, list[float]] = defaultdict(list)
    done: dict[int, int] = defaultdict(int)
    for participant_id, kind, seconds in Assignment.objects.filter(
        campaign=campaign, status=Assignment.Status.SUBMITTED
    ).values_list("participant_id", "item__kind", "seconds_on_task"):
        if kind == CampaignItem.Kind.REGULAR:
            done[participant_id] += 1
            if seconds is not None:
                times[participant_id].append(seconds)
    return [
        {
            "participant": participant,
            "done": done[participant.pk],
            "seconds": times[participant.pk],
            "median_seconds": statistics.median(times[participant.pk]) if times[participant.pk] else None,
        }
        for participant in Participant.objects.filter(campaign=campaign).order_by("joined_at", "id")
    ]


def check_results(campaign: Campaign) -> list[dict[str, Any]]:
    """Gold and attention items: how many answered, how many passed (included participants)."""
    rows = (
        CampaignItem.objects.filter(campaign=campaign, kind__in=CampaignItem.QUALITY_CONTROL)
        .annotate(
            answered=Count(
                "assignments",
                filter=Q(assignments__status=Assignment.Status.SUBMITTED, assignments__participant__excluded=False),
            ),
            passed=Count(
                "assignments",
                filter=Q(assignments__check_passed=True, assignments__participant__excluded=False),
            ),
        )
        .order_by("kind", "id")
        .values("id", "kind", "answered", "passed")
    )
    return [dict(row) for row in rows]


def run_lookup(campaign: Campaign, explanation: str = "explanation", *, start: str = "assignment__") -> str:
    """The lookup of the run an item's ``explanation`` (or ``explanation_b``) counts for: its own
    generation run, or in a first-person campaign the campaign run that its participant's run
    repeats (``GenerationRun.parent``), so that every participant's ratings count for it.
    ``start``: the path to the assignment (from a rating, the default) or "" from an assignment."""
    run = f"{start}item__{explanation}__generation_run"
    return f"{run}__parent_id" if campaign.is_first_person else f"{run}_id"


def ranks_generators(mode: str, n_runs: int) -> bool:
    """Whether a campaign of ``mode`` over ``n_runs`` generation runs ranks generators:
    pairwise, or Likert over two or more runs."""
    return mode == Campaign.Mode.PAIRWISE or (mode == Campaign.Mode.LIKERT and n_runs >= 2)


def campaign_ranking(campaign: Campaign) -> Ranking | None:
    """The ranking of the campaign's generation runs from its included answers (excluded
    annotators never count; ``annotation.study.stats.ranking``), or None for a campaign that
    does not compare generators. Each submitted assignment counts once: Likert, as the mean of
    its criteria, each rescaled to 0-1 on its own scale (a 1-5 and a 1-10 criterion weigh
    alike); pairwise, as the majority of its criteria's choices (a tie when none has more)."""
    if not ranks_generators(campaign.mode, campaign.generation_runs.count()):
        return None
    rows = included_pool_ratings(campaign).values_list(
        "assignment_id",
        "assignment__item__recommendation_id",
        run_lookup(campaign),
        run_lookup(campaign, "explanation_b"),
        "criterion__scale_min",
        "criterion__scale_max",
        "value",
        "choice",
    )
    if campaign.mode == Campaign.Mode.PAIRWISE:
        votes: dict[int, tuple[int, int, Counter[str]]] = {}
        for assignment, _, run_a, run_b, _, _, _, choice in rows.iterator(chunk_size=10000):
            votes.setdefault(assignment, (run_a, run_b, Counter()))[2][choice] += 1
        verdicts = []
        for run_a, run_b, counter in votes.values():
            ranked = counter.most_common()
            winner = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else "tie"
            verdicts.append((run_a, run_b, winner))
        return pairwise_ranking(verdicts)
    scores: dict[int, tuple[int, int, list[float]]] = {}
    for assignment, recommendation, run, _, low, high, value, _ in rows.iterator(chunk_size=10000):
        if value is not None and high > low:
            scores.setdefault(assignment, (recommendation, run, []))[2].append((value - low) / (high - low))
    return likert_ranking([(r, run, sum(v) / len(v)) for r, run, v in scores.values()])


def _ranking_of(campaign: Campaign) -> dict[str, Any] | None:
    ranking = campaign_ranking(campaign)
    return None if ranking is None else ranking_view(campaign, ranking)


def ranking_view(campaign: Campaign, ranking: Ranking, labels: dict[Any, str] | None = None) -> dict[str, Any]:
    """The ranking as the campaign page (and the study report, with its ``labels``) shows it:
    generation runs by label, each adjacent gap, whether it is settled and about how many more
    ratings would settle it."""
    if labels is None:
        labels = {
            run.pk: f"#{run.pk} {run.generator.name}" for run in campaign.generation_runs.select_related("generator")
        }
    units = ranking.units_needed()
    # A Likert unit is a recommendation rated for both generators of a pair: two ratings.
    per_unit = 1 if campaign.mode == Campaign.Mode.PAIRWISE else 2
    return {
        "order": [(labels.get(run, str(run)), ranking.estimates[run]) for run in ranking.order],
        "gaps": [
            gap.to_dict() | {"better": labels.get(gap.better), "worse": labels.get(gap.worse)} for gap in ranking.gaps
        ],
        "settled": ranking.settled,
        "ratings_needed": None if units is None else units * per_unit,
        "confidence": ranking.confidence,
        "scale": "net win share" if campaign.mode == Campaign.Mode.PAIRWISE else "mean, rescaled 0-1",
    }


def campaign_monitor(campaign: Campaign) -> dict[str, Any]:
    """Everything the polling monitor shows, computed fresh from the database."""
    participants = participant_rows(campaign)
    # Time on task over everyone not excluded: the per-annotator times already read above.
    medians = [seconds for row in participants if not row["participant"].excluded for seconds in row["seconds"]]
    return {
        # Read over every answer: on 300,000 ratings it costs about as much as the rest of the
        # monitor, so polls within RANKING_SECONDS share one computation.
        "ranking": cache.get_or_set(f"campaign-ranking:{campaign.pk}", lambda: _ranking_of(campaign), RANKING_SECONDS),
        "progress": campaign_progress(campaign),
        "participants": participants,
        "flagged": [row for row in participants if row["participant"].flagged],
        "agreement": campaign_agreement(campaign),
        "checks": check_results(campaign),
        "median_seconds": statistics.median(medians) if medians else None,
    }
