"""The judge sections of the study report: pairwise judge runs (both orders) and Likert ones."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
from django.db.models import TextField
from django.db.models.functions import Cast

from annotation.study.sections import RESAMPLES, decisiveness
from annotation.study.stats.bootstrap import discrete_summary
from annotation.study.stats.clustered import clustered_mean
from annotation.study.stats.pairwise import bradley_terry, position_bias, win_tie_loss
from explanations.models import JudgeRun, JudgeVerdict


def judge_pairwise_section(run: JudgeRun, labels: dict[int, str], seed: int) -> dict[str, Any]:
    """Both-order verdicts combined per (recommendation, pair): win/tie/loss per pair of
    runs, Bradley-Terry over all runs, and the judge's position bias."""
    verdict = _pairwise_verdicts(run)
    by_pair, items = _both_orders(verdict)
    pairs: list[dict[str, Any]] = []
    comparisons: list[tuple[str, str, str]] = []
    every_verdict: list[tuple[str | None, str | None]] = []
    outcome_of: dict[tuple[int, int, int], str] = {}
    for (a, b), verdicts in sorted(by_pair.items()):
        bias = position_bias(verdicts, n_resamples=RESAMPLES, seed=seed)
        pairs.append(
            {
                "a": labels[a],
                "b": labels[b],
                "win_tie_loss": win_tie_loss(bias.outcomes, n_resamples=RESAMPLES, seed=seed).to_dict(),
            }
        )
        comparisons += [(labels[a], labels[b], o) for o in bias.outcomes if o != "unparsed"]
        every_verdict += verdicts
        outcome_of.update({(rec, a, b): outcome for rec, outcome in zip(items[(a, b)], bias.outcomes, strict=True)})
    systems: list[str] = sorted({label for pair in pairs for label in (pair["a"], pair["b"])})
    strengths = (
        bradley_terry(comparisons, systems, n_resamples=RESAMPLES, seed=seed).to_dict()
        if comparisons and len(systems) >= 2
        else None
    )
    overall = None
    if every_verdict:
        # With one pair of runs the overall bias is that pair's: no need to bootstrap it twice.
        only = bias if len(by_pair) == 1 else position_bias(every_verdict, n_resamples=RESAMPLES, seed=seed)
        overall = only.to_dict()
    if overall is not None:
        overall.pop("outcomes")
    both = [(rec, a, b, outcome) for (rec, a, b), outcome in outcome_of.items()]
    # The study's protocol: one order only (here the lower run id shown first), so the judge's
    # slot preference goes straight into the win rates.
    single = [
        (rec, first, second, {"first": "a", "second": "b", "tie": "tie"}.get(winner or "", "unparsed"))
        for (rec, first, second), winner in verdict.items()
        if first < second
    ]
    scored = _scored_probabilities(run)
    parsed = [winner for winner in verdict.values() if winner is not None]
    return {
        "judge_run": run.pk,
        "judge": run.judge.name,
        "answer_mode": run.answer_mode,
        "fallback": run.fallback,
        "pairs": pairs,
        "bradley_terry": strengths,
        "position_bias": overall,
        "win_rates": {
            "both_orders": _win_rates(both, labels),
            "single_order": _win_rates(single, labels),
        },
        # The bias in probability: a judge can lean to the first slot without flipping argmaxes.
        "probability_bias": {
            "first_minus_second": sum(p["first"] - p["second"] for p in scored) / len(scored),
            "n": len(scored),
        }
        if scored
        else None,
        "decisiveness": decisiveness([list(p.values()) for p in scored], parsed, 3),
        "usable": len(parsed),
        "total": len(verdict),
        "_outcomes": outcome_of,
    }


def _win_rates(outcomes: list[tuple[int, int, int, str]], labels: dict[int, str]) -> dict[str, Any]:
    """Per run, the share of its comparisons it won (ties and unparsed verdicts count as not
    won), with an interval that resamples recommendations."""
    if not outcomes:
        return {}
    recommendations, a, b = (np.array(column) for column in list(zip(*outcomes, strict=True))[:3])
    winners = np.array([outcome for *_, outcome in outcomes])
    rates = {}
    for run_id in sorted(set(a.tolist()) | set(b.tolist())):
        first, second = a == run_id, b == run_id
        won = np.where(first, winners == "a", winners == "b")[first | second].astype(np.float64)
        interval = clustered_mean(won, recommendations[first | second], n_resamples=RESAMPLES)
        rates[labels[run_id]] = interval.to_dict()
    return rates


def _pairwise_verdicts(run: JudgeRun) -> dict[tuple[int, int, int], str | None]:
    """(recommendation, run shown first, run shown second) → the winner the judge named
    ("first", "second", "tie"), or None where its verdict did not parse or failed."""
    # ``parsed`` comes as text: a run has 30,000 verdicts but only a handful of distinct
    # parsed values, so each is decoded once instead of once per row by the JSONField.
    rows = (
        JudgeVerdict.objects.filter(judge_run=run, second__isnull=False)
        .order_by("pk")
        .values_list(
            "recommendation_id",
            "first__generation_run_id",
            "second__generation_run_id",
            Cast("parsed", TextField()),
            "status",
        )
    )
    winner_of: dict[str | None, str | None] = {}
    verdict: dict[tuple[int, int, int], str | None] = {}
    for recommendation, first_run, second_run, parsed, status in rows:
        if parsed not in winner_of:
            decoded = json.loads(parsed) if parsed is not None else None
            winner_of[parsed] = decoded.get("winner") if decoded else None
        verdict[(recommendation, first_run, second_run)] = (
            winner_of[parsed] if status == JudgeVerdict.Status.DONE else None
        )
    return verdict


def _both_orders(
    verdict: dict[tuple[int, int, int], str | None],
) -> tuple[dict[tuple[int, int], list[tuple[str | None, str | None]]], dict[tuple[int, int], list[int]]]:
    """Per pair of runs (lower id first): the (first order, second order) verdicts of every
    recommendation judged in both orders, and those recommendations in the same order."""
    by_pair: dict[tuple[int, int], list[tuple[str | None, str | None]]] = defaultdict(list)
    items: dict[tuple[int, int], list[int]] = defaultdict(list)
    for (recommendation, first_run, second_run), winner in verdict.items():
        if first_run < second_run and (recommendation, second_run, first_run) in verdict:
            by_pair[(first_run, second_run)].append((winner, verdict[(recommendation, second_run, first_run)]))
            items[(first_run, second_run)].append(recommendation)
    return by_pair, items


def _scored_probabilities(run: JudgeRun) -> list[dict[str, float]]:
    """The slot probabilities of the run's done pairwise verdicts scored by likelihood."""
    return [
        p
        for p in JudgeVerdict.objects.filter(
            judge_run=run, second__isnull=False, status=JudgeVerdict.Status.DONE, probabilities__isnull=False
        ).values_list("probabilities", flat=True)
        if p
    ]


def judge_likert_section(run: JudgeRun, labels: dict[int, str], seed: int) -> dict[str, Any]:
    """A Likert judge run on the study rubric: per run and criterion the mean and median of its
    scores with intervals, and G-Eval's probability-weighted score where answers were scored."""
    scores: dict[tuple[int, str], list[int]] = defaultdict(list)
    expected: dict[tuple[int, str], list[float]] = defaultdict(list)
    distributions: dict[str, list[list[float]]] = defaultdict(list)
    per_explanation: dict[int, dict[str, int]] = {}
    unparsed: dict[int, int] = defaultdict(int)
    total: dict[int, int] = defaultdict(int)
    for explanation, run_id, parsed, probabilities in JudgeVerdict.objects.filter(
        judge_run=run, second__isnull=True
    ).values_list("first_id", "first__generation_run_id", "parsed", "probabilities"):
        total[run_id] += 1
        if not parsed:
            unparsed[run_id] += 1
            continue
        per_explanation[explanation] = parsed["scores"]
        for name, value in parsed["scores"].items():
            scores[(run_id, name)].append(value)
        for name, scored in (probabilities or {}).items():
            expected[(run_id, name)].append(scored["expected"])
            distributions[name].append(list(scored["distribution"].values()))
    criteria = [criterion["name"] for criterion in run.rubric]
    scales = {c["name"]: range(int(c.get("scale_min", 1)), int(c.get("scale_max", 10)) + 1) for c in run.rubric}
    table = []
    for run_id in sorted(total):
        table.append(
            {
                "run": labels[run_id],
                "n": total[run_id],
                "unparsed": unparsed[run_id],
                "criteria": {
                    name: discrete_summary(
                        scores[(run_id, name)], scale=scales[name], n_resamples=RESAMPLES, seed=seed
                    ).to_dict()
                    for name in criteria
                },
                # G-Eval's probability-weighted score, beside the argmax mean above.
                "expected": {
                    name: sum(expected[(run_id, name)]) / len(expected[(run_id, name)])
                    for name in criteria
                    if expected[(run_id, name)]
                },
            }
        )
    return {
        "judge_run": run.pk,
        "judge": run.judge.name,
        "answer_mode": run.answer_mode,
        "fallback": run.fallback,
        "decisiveness": {
            name: decisiveness(
                distributions[name],
                [str(v) for run_id in total for v in scores[(run_id, name)]],
                len(scales[name]),
            )
            for name in criteria
        },
        "usable": len(per_explanation),
        "total": sum(total.values()),
        "criteria": criteria,
        "scales": {name: [points[0], points[-1]] for name, points in scales.items()},
        "runs": table,
        "_scores": per_explanation,
    }
