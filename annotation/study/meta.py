"""The meta section of the study report: how well each automatic signal agrees with humans."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from annotation.models import Campaign
from annotation.study.sections import RESAMPLES
from annotation.study.stats.agreement import cohen_kappa
from annotation.study.stats.bootstrap import discrete_summary
from annotation.study.stats.correlations import kendall_tau, spearman_rho
from annotation.study.text import TEXT_METRICS, dig


def meta_section(
    pairwise_judges: list[dict[str, Any]],
    likert_judges: list[dict[str, Any]],
    human: list[dict[str, Any]],
    text_metrics: dict[int, dict[str, Any]],
    labels: dict[int, str],
    seed: int,
) -> dict[str, Any]:
    """How well each automatic signal agrees with humans.

    System level: Kendall's tau and Spearman's rho between human means per criterion and (a)
    the judge's Likert means, (b) the pairwise judge's Bradley-Terry strengths, (c) each
    numeric text metric. Item level: Cohen's kappa between the pairwise judge's combined
    outcome and the human majority (> 50% of votes) per recommendation and pair. Calibration,
    per Likert judge run and criterion: for each judge score, the mean over the explanations
    it gave that score of their mean human score, with a bootstrap interval.
    """
    human_means, human_per_explanation, human_scales, majorities = _human_figures(human)
    return {
        "correlations": _correlations(human_means, pairwise_judges, likert_judges, text_metrics, labels),
        "item_kappa": _item_kappas(pairwise_judges, majorities),
        "calibration": _calibration(likert_judges, human_per_explanation, human_scales, seed),
    }


HumanMeans = dict[str, dict[str, float]]  # criterion → run label → mean human rating


def _human_figures(
    human: list[dict[str, Any]],
) -> tuple[HumanMeans, dict[tuple[int, str], float], dict[str, list[int]], dict[tuple[int, int, int, str], str]]:
    """What the human sections give the comparisons: mean rating per criterion and run, mean
    rating per (explanation, criterion), each criterion's scale, and the majority choice per
    (recommendation, run a, run b, criterion) of pairwise campaigns."""
    human_means: HumanMeans = defaultdict(dict)
    human_per_explanation: dict[tuple[int, str], float] = {}
    human_scales: dict[str, list[int]] = {}
    majorities: dict[tuple[int, int, int, str], str] = {}
    for section in human:
        if section["mode"] == Campaign.Mode.LIKERT:
            for row in section["runs"]:
                for name, summary in row["criteria"].items():
                    if summary["mean"]["estimate"] is not None:
                        human_means[name][row["run"]] = summary["mean"]["estimate"]
            human_per_explanation.update(section["_per_explanation"])
            human_scales.update(section["scales"])
        else:
            majorities.update(section["_majority"])
    return human_means, human_per_explanation, human_scales, majorities


def _correlations(
    human_means: HumanMeans,
    pairwise_judges: list[dict[str, Any]],
    likert_judges: list[dict[str, Any]],
    text_metrics: dict[int, dict[str, Any]],
    labels: dict[int, str],
) -> list[dict[str, Any]]:
    """System level: each signal's scores per run against the human means, per criterion."""
    correlations = []
    for judge in likert_judges:
        for criterion in {name for row in judge["runs"] for name in row["criteria"]}:
            scores = {
                row["run"]: row["criteria"][criterion]["mean"]["estimate"]
                for row in judge["runs"]
                if row["criteria"][criterion]["mean"]["estimate"] is not None
            }
            correlations += _correlate(f"judge #{judge['judge_run']} likert {criterion}", scores, human_means)
    for judge in pairwise_judges:
        if judge["bradley_terry"]:
            scores = {name: value["estimate"] for name, value in judge["bradley_terry"]["strengths"].items()}
            correlations += _correlate(f"judge #{judge['judge_run']} Bradley-Terry", scores, human_means)
    for name, path in TEXT_METRICS:
        scores = {}
        for run_id, metrics in text_metrics.items():
            value = dig(metrics, path)
            if isinstance(value, int | float) and run_id in labels:
                scores[labels[run_id]] = float(value)
        correlations += _correlate(f"text {name}", scores, human_means)
    return correlations


def _correlate(signal: str, scores: dict[str, float], human_means: HumanMeans) -> list[dict[str, Any]]:
    """Kendall's tau and Spearman's rho of ``scores`` against each criterion's human means,
    over the runs both have; criteria with fewer than three such runs are left out."""
    rows = []
    for criterion, means in sorted(human_means.items()):
        shared = sorted(set(means) & set(scores))
        if len(shared) >= 3:
            x, y = [scores[s] for s in shared], [means[s] for s in shared]
            rows.append(
                {
                    "signal": signal,
                    "criterion": criterion,
                    "systems": len(shared),
                    "kendall_tau": kendall_tau(x, y).to_dict(),
                    "spearman_rho": spearman_rho(x, y).to_dict(),
                }
            )
    return rows


def _item_kappas(
    pairwise_judges: list[dict[str, Any]], majorities: dict[tuple[int, int, int, str], str]
) -> list[dict[str, Any]]:
    """Item level: Cohen's kappa between each pairwise judge's combined outcome and the human
    majority, per criterion, over the items both decided (unparsed outcomes left out)."""
    kappas = []
    for judge in pairwise_judges:
        outcomes = judge["_outcomes"]
        for criterion in sorted({key[3] for key in majorities}):
            pairs = [
                (outcome, majorities[(rec, a, b, criterion)])
                for (rec, a, b), outcome in outcomes.items()
                if (rec, a, b, criterion) in majorities and outcome != "unparsed"
            ]
            if pairs:
                kappas.append(
                    {
                        "judge_run": judge["judge_run"],
                        "criterion": criterion,
                        "items": len(pairs),
                        "kappa": cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs]),
                        "agreement": sum(p[0] == p[1] for p in pairs) / len(pairs),
                    }
                )
    return kappas


def _calibration(
    likert_judges: list[dict[str, Any]],
    human_per_explanation: dict[tuple[int, str], float],
    human_scales: dict[str, list[int]],
    seed: int,
) -> list[dict[str, Any]]:
    """Per Likert judge run and criterion: the mean human score of the explanations given
    each judge score, with an interval over those explanations."""
    calibration = []
    for judge in likert_judges:
        humans: dict[tuple[str, int], list[float]] = defaultdict(list)
        for explanation, scores in judge["_scores"].items():
            for criterion, score in scores.items():
                human_mean = human_per_explanation.get((explanation, criterion))
                if human_mean is not None:
                    humans[(criterion, score)].append(human_mean)
        for criterion in [name for name in judge["criteria"] if any(key[0] == name for key in humans)]:
            # Resampling a bin's explanations only changes how often each distinct human mean
            # occurs: discrete_summary draws those counts, fast for any number of explanations.
            bins: list[dict[str, Any]] = [
                {
                    "judge": score,
                    "human": discrete_summary(
                        values, scale=sorted(set(values)), n_resamples=RESAMPLES, seed=seed
                    ).mean.to_dict(),
                }
                for (name, score), values in sorted(humans.items())
                if name == criterion
            ]
            calibration.append(
                {
                    "judge_run": judge["judge_run"],
                    "judge": judge["judge"],
                    "criterion": criterion,
                    "n": sum(b["human"]["n"] for b in bins),
                    # y = x is calibration only when the judge and the humans used one scale.
                    "same_scale": judge["scales"].get(criterion) == human_scales.get(criterion),
                    "bins": bins,
                }
            )
    return calibration
