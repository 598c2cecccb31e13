"""The human sections of the study report: Likert and pairwise campaigns over the study's runs."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from annotation.agreement import CHOICE_CODES, included_pool_ratings, run_lookup
from annotation.models import Campaign, Criterion
from annotation.study.sections import RESAMPLES
from annotation.study.stats.agreement import alpha_of_answers, alphas_of_answers
from annotation.study.stats.bootstrap import discrete_summary, majority_baseline
from annotation.study.stats.clustered import clustered_mean, holm, item_means, paired_comparison
from annotation.study.stats.pairwise import bradley_terry, win_tie_loss


def human_likert_section(
    campaign: Campaign, labels: dict[int, str], seed: int, *, include_flagged: bool
) -> dict[str, Any]:
    """A Likert campaign: per run and criterion the mean and median rating with intervals (the
    mean also with one that resamples items and annotators, ``mean_by_item``), paired comparisons
    of every two runs on the recommendations both explained, interval and ordinal alpha per
    criterion, and (for calibration) each explanation's mean.

    A first-person campaign's ratings count for the campaign runs their explanations' runs
    repeat, and ``mean_by_item`` resamples participants instead: each rated only their own
    recommendations, so items are nested in participants (``first_person``)."""
    ratings = (
        included_pool_ratings(campaign, include_flagged=include_flagged)
        .filter(value__isnull=False)  # Likert campaigns store values; a choice belongs to pairwise ones
        # Every figure here depends on which ratings there are, not on their order, so the
        # database is spared sorting them by the default ordering of four joined tables.
        .order_by()
        .values_list(
            "assignment__participant_id",
            "assignment__item_id",
            "assignment__item__explanation_id",
            run_lookup(campaign),
            "assignment__item__explanation__recommendation_id",
            "criterion_id",
            "value",
        )
    )
    columns = _columns(ratings.iterator(chunk_size=10000), 7)
    participants, items, explanations, run_ids, recommendations, criterion_ids, values = columns
    # Nested items (first person): the participant is the unit resampled.
    clusters = participants if campaign.is_first_person else items
    # Ids spare the query a join; their names (one small query) group the ratings, and the
    # campaign's criteria look their ratings up by name.
    names = dict(Criterion.objects.filter(pk__in=np.unique(criterion_ids).tolist()).values_list("pk", "name"))
    rated = {name: np.isin(criterion_ids, [pk for pk in names if names[pk] == name]) for name in set(names.values())}
    unrated = np.zeros(values.size, dtype=bool)
    criteria = list(campaign.criteria.all())
    runs = np.unique(run_ids).tolist()
    table = [
        {
            "run": labels[run_id],
            "criteria": {
                c.name: _likert_summary(
                    (run_ids == run_id) & rated.get(c.name, unrated), (values, clusters, participants), c, seed
                )
                for c in criteria
            },
        }
        for run_id in runs
    ]
    agreement = {}
    for c in criteria:
        mine = rated.get(c.name, unrated)
        coders, units, answers = participants[mine], items[mine], values[mine]
        domain = [float(v) for v in range(c.scale_min, c.scale_max + 1)]
        # Both levels from the same resampled units: one draw instead of two, same intervals.
        interval, ordinal = alphas_of_answers(
            coders, units, answers, [("interval", None), ("ordinal", domain)], n_resamples=RESAMPLES, seed=seed
        )
        agreement[c.name] = {"interval": interval.to_dict(), "ordinal": ordinal.to_dict()}
    per_explanation: dict[tuple[int, str], float] = {}
    for name, mine in rated.items():
        rated_explanations, which, counts = np.unique(explanations[mine], return_inverse=True, return_counts=True)
        # Sums of integer ratings are exact in float64, so each mean is sum / count rounded once.
        means = np.bincount(which.ravel(), weights=values[mine]) / counts
        per_explanation.update(zip([(e, name) for e in rated_explanations.tolist()], means.tolist(), strict=True))
    paired = _paired_runs(criteria, rated, runs, labels, (values, recommendations, run_ids), seed)
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "mode": campaign.mode,
        "audience": campaign.audience,
        "participants": int(np.unique(participants).size),
        "runs": table,
        "paired": paired,
        "n_comparisons": len(paired),
        "agreement": agreement,
        "scales": {c.name: [c.scale_min, c.scale_max] for c in criteria},
        "_per_explanation": per_explanation,
    }


def _likert_summary(
    mine: npt.NDArray[np.bool_], columns: tuple[npt.NDArray[np.int64], ...], criterion: Criterion, seed: int
) -> dict[str, Any]:
    """One run's ratings on one criterion: the rating-level summary, and the mean's interval
    from resampling items and annotators (ratings of one item or one person are not independent)."""
    values, items, participants = (column[mine] for column in columns)
    summary = discrete_summary(
        values, scale=range(criterion.scale_min, criterion.scale_max + 1), n_resamples=RESAMPLES, seed=seed
    ).to_dict()
    summary["mean_by_item"] = clustered_mean(values, items, participants, n_resamples=RESAMPLES).to_dict()
    return summary


def _paired_runs(
    criteria: list[Criterion],
    rated: dict[str, npt.NDArray[np.bool_]],
    runs: list[int],
    labels: dict[int, str],
    columns: tuple[npt.NDArray[np.int64], ...],
    seed: int,
) -> list[dict[str, Any]]:
    """Every two runs on every criterion, paired by recommendation (the same user and item,
    explained by both), with Holm-adjusted p-values over the whole family."""
    values, recommendations, run_ids = columns
    comparisons = []
    for c in criteria:
        mine = rated.get(c.name)
        if mine is None:
            continue
        means = {
            run: item_means(values[mine & (run_ids == run)], recommendations[mine & (run_ids == run)]) for run in runs
        }
        for a, b in itertools.combinations(runs, 2):
            result = paired_comparison(means[a], means[b], n_resamples=RESAMPLES, seed=seed).to_dict()
            comparisons.append({"criterion": c.name, "a": labels[a], "b": labels[b]} | result)
    for comparison, adjusted in zip(comparisons, holm([c["p_value"] for c in comparisons]), strict=True):
        comparison["p_holm"] = adjusted
    return comparisons


def _columns(rows: Iterable[tuple[int | None, ...]], width: int) -> list[npt.NDArray[np.int64]]:
    """Rows of ``width`` integers (no None) as ``width`` parallel arrays, e.g. coder, unit and
    value for ``alpha_of_answers``, without building a Python list per column."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64)
    return list(np.ascontiguousarray(flat.reshape(-1, width).T))


SCORE_OF_A = {"a": 1.0, "tie": 0.5, "b": 0.0}


def _win_rate(scored: list[tuple[float, int, int]]) -> dict[str, Any]:
    """A's win rate (ties count half) with an interval that resamples items and annotators."""
    if not scored:
        return clustered_mean([], []).to_dict()
    scores, items, annotators = zip(*scored, strict=True)
    return clustered_mean(scores, items, annotators, n_resamples=RESAMPLES).to_dict()


def human_pairwise_section(
    campaign: Campaign, labels: dict[int, str], seed: int, *, include_flagged: bool
) -> dict[str, Any]:
    """A pairwise campaign: win/tie/loss per pair of runs and criterion (and A's win rate with an
    interval that resamples items and annotators), Bradley-Terry per criterion, nominal alpha,
    and (for the judge's kappa) each item's majority choice."""
    ratings = included_pool_ratings(campaign, include_flagged=include_flagged)
    outcomes: dict[tuple[int, int, str], list[str]] = defaultdict(list)
    majority_votes: dict[tuple[int, int, int, str], list[str]] = defaultdict(list)
    matrix_rows: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    # Per pair of runs and criterion: A's score (win 1, tie 1/2, loss 0), its item and annotator.
    scored: dict[tuple[int, int, str], list[tuple[float, int, int]]] = defaultdict(list)
    # Unordered, as in _human_likert: every figure here counts the choices, whatever their order.
    rows = ratings.order_by().values_list(
        "assignment__participant_id",
        "assignment__item_id",
        "assignment__item__recommendation_id",
        run_lookup(campaign),
        run_lookup(campaign, "explanation_b"),
        "criterion__name",
        "choice",
    )
    participants = set()
    for participant, item, recommendation, a, b, name, choice in rows.iterator(chunk_size=10000):
        participants.add(participant)
        outcomes[(a, b, name)].append(choice)
        majority_votes[(recommendation, a, b, name)].append(choice)
        matrix_rows[name].append((participant, item, int(CHOICE_CODES[choice])))
        if choice in SCORE_OF_A:
            # First person: items are nested in participants, so the participant is the unit.
            cluster = participant if campaign.is_first_person else item
            scored[(a, b, name)].append((SCORE_OF_A[choice], cluster, participant))
    criteria = [c.name for c in campaign.criteria.all()]
    pairs = []
    for (a, b, name), choices in sorted(outcomes.items()):
        pairs.append(
            {
                "a": labels[a],
                "b": labels[b],
                "criterion": name,
                "win_tie_loss": win_tie_loss(choices, n_resamples=RESAMPLES, seed=seed).to_dict(),
                "win_rate_by_item": _win_rate(scored[(a, b, name)]),
            }
        )
    strengths = {}
    for name in criteria:
        comparisons = [
            (labels[a], labels[b], choice) for (a, b, crit), cs in outcomes.items() if crit == name for choice in cs
        ]
        systems = sorted({label for pair in comparisons for label in pair[:2]})
        if comparisons and len(systems) >= 2:
            strengths[name] = bradley_terry(comparisons, systems, n_resamples=RESAMPLES, seed=seed).to_dict()
    agreement = {}
    for name in criteria:
        coders, units, answers = _columns(matrix_rows[name], 3)
        agreement[name] = {
            "nominal": alpha_of_answers(coders, units, answers, "nominal", n_resamples=RESAMPLES, seed=seed).to_dict()
        }
    majority = {}
    for key, choices in majority_votes.items():
        label, share = majority_baseline(choices)
        if label is not None and share is not None and share > 0.5:
            majority[key] = label
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "mode": campaign.mode,
        "audience": campaign.audience,
        "participants": len(participants),
        "pairs": pairs,
        "bradley_terry": strengths,
        "agreement": agreement,
        "_majority": majority,
    }
