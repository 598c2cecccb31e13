"""What the campaign page shows researchers: progress, annotators, checks and agreement.

Krippendorff's alpha comes from the ``krippendorff`` package: coders are participants,
units are pool items, and a missing answer is NaN. Ordinal alpha is given the rubric's
whole scale as its value domain, so unused scale points still count as distances.
Excluded participants are left out of every figure except their own row.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Literal

import krippendorff
import numpy as np
from django.db.models import Count, Q

from annotation.models import Assignment, Campaign, CampaignItem, Participant, Rating

CHOICE_CODES = {"a": 0.0, "tie": 1.0, "b": 2.0}


def alpha(
    matrix: np.ndarray, level: Literal["nominal", "ordinal", "interval"], value_domain: list[float] | None = None
) -> float | None:
    """Krippendorff's alpha of a coders x units matrix (NaN = missing), or None where it is
    undefined (fewer than two pairable answers, or a single value in the data)."""
    pairable = (np.sum(~np.isnan(matrix), axis=0) >= 2).sum() if matrix.size else 0
    if pairable == 0:
        return None
    try:
        # No variation at all gives 0/0: that is "undefined", reported as None, not a warning.
        with np.errstate(invalid="ignore", divide="ignore"):
            value = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level, value_domain=value_domain)
    except (ValueError, ZeroDivisionError):
        return None
    return None if np.isnan(value) else float(value)


def reliability_matrices(campaign: Campaign) -> dict[str, np.ndarray]:
    """criterion name → coders x units matrix of the included participants' pool answers."""
    rows = (
        Rating.objects.filter(
            assignment__campaign=campaign,
            assignment__status=Assignment.Status.SUBMITTED,
            assignment__item__kind=CampaignItem.Kind.REGULAR,
            assignment__participant__excluded=False,
        )
        .values_list("assignment__participant_id", "assignment__item_id", "criterion__name", "value", "choice")
        .iterator(chunk_size=5000)
    )
    answers: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for participant_id, item_id, name, value, choice in rows:
        code = CHOICE_CODES[choice] if choice else float(value if value is not None else np.nan)
        answers[name].append((participant_id, item_id, code))
    matrices = {}
    for name, triples in answers.items():
        coders = {c: i for i, c in enumerate(sorted({t[0] for t in triples}))}
        units = {u: i for i, u in enumerate(sorted({t[1] for t in triples}))}
        matrix = np.full((len(coders), len(units)), np.nan)
        for coder, unit, code in triples:
            matrix[coders[coder], units[unit]] = code
        matrices[name] = matrix
    return matrices


def campaign_agreement(campaign: Campaign) -> list[dict[str, Any]]:
    """Per criterion: answers, units with two or more answers, interval and ordinal alpha
    (Likert), or nominal and ordinal alpha on a < tie < b (pairwise)."""
    matrices = reliability_matrices(campaign)
    result = []
    for criterion in campaign.criteria.all():
        matrix = matrices.get(criterion.name, np.empty((0, 0)))
        n_answers = int(np.sum(~np.isnan(matrix))) if matrix.size else 0
        units_paired = int((np.sum(~np.isnan(matrix), axis=0) >= 2).sum()) if matrix.size else 0
        row: dict[str, Any] = {"criterion": criterion.name, "answers": n_answers, "units_paired": units_paired}
        if campaign.mode == Campaign.Mode.PAIRWISE:
            row["nominal"] = alpha(matrix, "nominal")
            row["ordinal"] = alpha(matrix, "ordinal", value_domain=[0.0, 1.0, 2.0])
        else:
            domain = [float(v) for v in range(criterion.scale_min, criterion.scale_max + 1)]
            row["interval"] = alpha(matrix, "interval")
            row["ordinal"] = alpha(matrix, "ordinal", value_domain=domain)
        result.append(row)
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


def campaign_monitor(campaign: Campaign) -> dict[str, Any]:
    """Everything the polling monitor shows, computed fresh from the database."""
    participants = participant_rows(campaign)
    medians: list[float] = [
        seconds
        for seconds in Assignment.objects.filter(
            campaign=campaign,
            status=Assignment.Status.SUBMITTED,
            item__kind=CampaignItem.Kind.REGULAR,
            participant__excluded=False,
            seconds_on_task__isnull=False,
        ).values_list("seconds_on_task", flat=True)
        if seconds is not None
    ]
    return {
        "progress": campaign_progress(campaign),
        "participants": participants,
        "flagged": [row for row in participants if row["participant"].flagged],
        "agreement": campaign_agreement(campaign),
        "checks": check_results(campaign),
        "median_seconds": statistics.median(medians) if medians else None,
    }
