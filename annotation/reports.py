"""The study report: every perspective on a set of generation runs, with intervals.

A study is a recommender run and two or more of its generation runs. The report gathers what
exists for them: pairwise and Likert judge runs over those generation runs, human campaigns
over them, attribute probes on them, and their text metrics. Everything is read from the
database and computed here, deterministically under ``seed``; nothing is written.

Sections (keys of ``study_report``): ``recommender``, ``runs`` (lineage), ``judge``,
``human``, ``attributes``, ``text``, ``meta``. Each number that estimates something carries
an interval (``Interval.to_dict()``: estimate, low, high, n). Unparsed judge and probe answers
are counted and shown, never dropped.

Every judge run and probe also carries ``decisiveness``: how sure its answers were (the mean
probability of the chosen option and the mean entropy, for answers scored by likelihood), beside
the chance level (1 / number of options) and the share of its most common answer, so that a
judge or prober that says the same thing every time, or spreads its probability evenly, is not
read as a finding. ``meta.empty`` lists, in words, the sections with no usable answer.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db.models import TextField
from django.db.models.functions import Cast

from annotation.agreement import CHOICE_CODES, included_pool_ratings
from annotation.models import Campaign, Criterion, Rating
from annotation.statistics import (
    accuracy_with_ci,
    alpha_of_answers,
    alphas_of_answers,
    bradley_terry,
    cohen_kappa,
    discrete_summary,
    kendall_tau,
    majority_baseline,
    position_bias,
    spearman_rho,
    win_tie_loss,
)
from explanations.models import AttributeProbe, GenerationRun, JudgeRun, JudgeVerdict, ProbeAnswer
from explanations.probing import AGE_TOLERANCE
from recommendations.models import RecommenderRun

RESAMPLES = 1000
# The text metrics a report shows and correlates with humans: (name, path in the metrics dict).
TEXT_METRICS = (
    ("mean words", ("length", "mean")),
    ("over limit", ("length", "over_limit")),
    ("refusals", ("refusal_rate",)),
    ("USR", ("usr",)),
    ("distinct-2", ("distinct_2",)),
    ("FMR", ("features", "fmr")),
    ("FCR", ("features", "fcr")),
    ("DIV", ("features", "div")),
    ("hallucination", ("grounding", "hallucination_rate")),
    ("grounded", ("grounding", "grounded_share")),
    ("echoes", ("echo_rate",)),
    ("personalisation", ("personalisation", "mean_similarity")),
)


def _label(run: GenerationRun) -> str:
    return f"#{run.pk} {run.generator.name}"


def run_lineage(run: GenerationRun) -> dict[str, Any]:
    """What the run used, as it recorded when it started (``GenerationRun.public_lineage``):
    never the generator as it is now, and never a path on the server (the adapter by its
    name and sha256, a local model by its folder's name)."""
    lineage = run.public_lineage()
    return {
        "generation_run": run.pk,
        "label": _label(run),
        "recorded": lineage["recorded"],
        "generator": lineage["generator"],
        "backend": lineage["backend"],
        "model": lineage["model"],
        "quantization": lineage["quantization"],
        "precision": lineage["precision"],
        "adapter": lineage["adapter"],
        "adapter_sha256": lineage["adapter_sha256"],
        "adapter_training": lineage["adapter_training"],
        "base_url": lineage["base_url"],
        "decoding": lineage["decoding"],
        "prompt": lineage["prompt"],
        "prompt_sha256": lineage["prompt_sha256"],
        "split": lineage["split"],
        "split_name": lineage["split_name"],
        "split_seed": lineage["split_seed"],
        "max_words": run.max_words,
        "history_length": run.history_length,
        "seed": run.seed,
        "sample": lineage["sample"],
        "sample_size": lineage["sample_size"],
        "explanations": run.n_total,
    }


def _decisiveness(distributions: list[list[float]], answers: list[str], n_options: int) -> dict[str, Any]:
    """Mean top probability and mean entropy (bits) of ``distributions`` (answers scored by
    likelihood; None when there are none), the chance level ``1 / n_options`` and the most
    common of ``answers`` (the parsed ones) with its share."""
    top = [max(d) for d in distributions if d]
    entropies = [-sum(p * math.log2(p) for p in d if p > 0) for d in distributions if d]
    common = Counter(answers).most_common(1)
    return {
        "n": len(answers),
        "scored": len(top),
        "options": n_options,
        "chance": 1 / n_options if n_options else None,
        "mean_top_probability": sum(top) / len(top) if top else None,
        "mean_entropy_bits": sum(entropies) / len(entropies) if entropies else None,
        "max_entropy_bits": math.log2(n_options) if n_options else None,
        "majority_answer": common[0][0] if common else None,
        "majority_share": common[0][1] / len(answers) if common else None,
    }


def _pairwise_judge(run: JudgeRun, labels: dict[int, str], seed: int) -> dict[str, Any]:
    """Both-order verdicts combined per (recommendation, pair): win/tie/loss per pair of
    runs, Bradley-Terry over all runs, and the judge's position bias."""
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
    by_pair: dict[tuple[int, int], list[tuple[str | None, str | None]]] = defaultdict(list)
    items: dict[tuple[int, int], list[int]] = defaultdict(list)
    for (recommendation, first_run, second_run), winner in verdict.items():
        if first_run < second_run and (recommendation, second_run, first_run) in verdict:
            by_pair[(first_run, second_run)].append((winner, verdict[(recommendation, second_run, first_run)]))
            items[(first_run, second_run)].append(recommendation)
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
    scored = [
        p
        for p in JudgeVerdict.objects.filter(
            judge_run=run, second__isnull=False, status=JudgeVerdict.Status.DONE, probabilities__isnull=False
        ).values_list("probabilities", flat=True)
        if p
    ]
    parsed = [winner for winner in verdict.values() if winner is not None]
    return {
        "judge_run": run.pk,
        "judge": run.judge.name,
        "answer_mode": run.answer_mode,
        "fallback": run.fallback,
        "pairs": pairs,
        "bradley_terry": strengths,
        "position_bias": overall,
        # The bias in probability: a judge can lean to the first slot without flipping argmaxes.
        "probability_bias": {
            "first_minus_second": sum(p["first"] - p["second"] for p in scored) / len(scored),
            "n": len(scored),
        }
        if scored
        else None,
        "decisiveness": _decisiveness([list(p.values()) for p in scored], parsed, 3),
        "usable": len(parsed),
        "total": len(verdict),
        "_outcomes": outcome_of,
    }


def _likert_judge(run: JudgeRun, labels: dict[int, str], seed: int) -> dict[str, Any]:
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
            name: _decisiveness(
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


def _human_likert(campaign: Campaign, labels: dict[int, str], seed: int, *, include_flagged: bool) -> dict[str, Any]:
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
            "assignment__item__explanation__generation_run_id",
            "criterion_id",
            "value",
        )
    )
    participants, items, explanations, run_ids, criterion_ids, values = _columns(ratings.iterator(chunk_size=10000), 6)
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
                c.name: discrete_summary(
                    values[(run_ids == run_id) & rated.get(c.name, unrated)],
                    scale=range(c.scale_min, c.scale_max + 1),
                    n_resamples=RESAMPLES,
                    seed=seed,
                ).to_dict()
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
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "mode": campaign.mode,
        "runs": table,
        "agreement": agreement,
        "scales": {c.name: [c.scale_min, c.scale_max] for c in criteria},
        "_per_explanation": per_explanation,
    }


def _columns(rows: Iterable[tuple[int | None, ...]], width: int) -> list[npt.NDArray[np.int64]]:
    """Rows of ``width`` integers (no None) as ``width`` parallel arrays, e.g. coder, unit and
    value for ``alpha_of_answers``, without building a Python list per column."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64)
    return list(np.ascontiguousarray(flat.reshape(-1, width).T))


def _human_pairwise(campaign: Campaign, labels: dict[int, str], seed: int, *, include_flagged: bool) -> dict[str, Any]:
    ratings = included_pool_ratings(campaign, include_flagged=include_flagged)
    outcomes: dict[tuple[int, int, str], list[str]] = defaultdict(list)
    majority_votes: dict[tuple[int, int, int, str], list[str]] = defaultdict(list)
    matrix_rows: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    # Unordered, as in _human_likert: every figure here counts the choices, whatever their order.
    rows = ratings.order_by().values_list(
        "assignment__participant_id",
        "assignment__item_id",
        "assignment__item__recommendation_id",
        "assignment__item__explanation__generation_run_id",
        "assignment__item__explanation_b__generation_run_id",
        "criterion__name",
        "choice",
    )
    for participant, item, recommendation, a, b, name, choice in rows.iterator(chunk_size=10000):
        outcomes[(a, b, name)].append(choice)
        majority_votes[(recommendation, a, b, name)].append(choice)
        matrix_rows[name].append((participant, item, int(CHOICE_CODES[choice])))
    criteria = [c.name for c in campaign.criteria.all()]
    pairs = []
    for (a, b, name), choices in sorted(outcomes.items()):
        pairs.append(
            {
                "a": labels[a],
                "b": labels[b],
                "criterion": name,
                "win_tie_loss": win_tie_loss(choices, n_resamples=RESAMPLES, seed=seed).to_dict(),
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
        "pairs": pairs,
        "bradley_terry": strengths,
        "agreement": agreement,
        "_majority": majority,
    }


def _probe(probe: AttributeProbe, seed: int) -> dict[str, Any]:
    rows = list(
        ProbeAnswer.objects.filter(probe=probe).values_list(
            "with_explanation", "correct", "answer", "truth", "probabilities"
        )
    )
    variants = {}
    for flag, name in ((False, "history"), (True, "history_and_explanation")):
        mine = [row for row in rows if row[0] == flag]
        answers = [row[2] for row in mine if row[2]]
        n_options = len(probe.options) or len({row[2] for row in mine if row[2]})
        truths = [row[3] for row in mine]
        label, share = majority_baseline([labels[0] for labels in truths if labels])
        if probe.target == "age" and label is not None:
            # The majority baseline answers the most common age, judged by the same ±5 rule.
            share = sum(abs(int(label) - int(t[0])) <= AGE_TOLERANCE for t in truths) / len(truths)
        elif label is not None:
            share = sum(label in t for t in truths) / len(truths)
        variants[name] = {
            "accuracy": accuracy_with_ci([bool(row[1]) for row in mine], n_resamples=RESAMPLES, seed=seed).to_dict(),
            "majority_label": label,
            "majority_accuracy": share,
            "parse_failure_rate": sum(1 for row in mine if not row[2]) / len(mine) if mine else None,
            "n": len(mine),
            "decisiveness": _decisiveness([list(row[4].values()) for row in mine if row[4]], answers, n_options),
        }
    return {
        "probe": probe.pk,
        "prober": probe.prober.name,
        "generation_run": probe.generation_run_id,
        "target": probe.target,
        "answer_mode": probe.answer_mode,
        "fallback": probe.fallback,
        "usable": sum(1 for row in rows if row[2]),
        "total": len(rows),
        "variants": variants,
    }


def study_report(
    *,
    recommender_run: RecommenderRun,
    generation_runs: Sequence[GenerationRun],
    seed: int = 0,
    include_flagged: bool = True,
    text_metrics: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every perspective on ``generation_runs`` (all of ``recommender_run``), as plain data.

    Judge runs, campaigns and probes are included when all their generation runs are among
    ``generation_runs``. ``include_flagged=False`` leaves out annotators flagged by quality
    checks (excluded annotators are always left out). ``text_metrics`` (generation run id →
    ``generation_run_text_metrics``) is passed in because it is computed once per run and
    cached by the caller. Deterministic for a given seed.
    """
    runs = sorted(generation_runs, key=lambda run: run.pk)
    chosen = {run.pk for run in runs}
    labels = {run.pk: _label(run) for run in runs}
    judges = [
        judge
        for judge in JudgeRun.objects.filter(generation_runs__in=chosen, status=JudgeRun.Status.SUCCEEDED)
        .select_related("judge")
        .prefetch_related("generation_runs")
        .distinct()
        .order_by("pk")
        if {run.pk for run in judge.generation_runs.all()} <= chosen
    ]
    campaigns = [
        campaign
        for campaign in Campaign.objects.filter(generation_runs__in=chosen)
        .prefetch_related("generation_runs")
        .distinct()
        .order_by("pk")
        if {run.pk for run in campaign.generation_runs.all()} <= chosen
    ]
    probes = AttributeProbe.objects.filter(
        generation_run__in=chosen, status=AttributeProbe.Status.SUCCEEDED
    ).select_related("prober")
    pairwise_judges = [_pairwise_judge(j, labels, seed) for j in judges if j.mode == JudgeRun.Mode.PAIRWISE]
    likert_judges = [_likert_judge(j, labels, seed) for j in judges if j.mode == JudgeRun.Mode.LIKERT]
    human = [
        _human_likert(c, labels, seed, include_flagged=include_flagged)
        if c.mode == Campaign.Mode.LIKERT
        else _human_pairwise(c, labels, seed, include_flagged=include_flagged)
        for c in campaigns
    ]
    meta = _meta(pairwise_judges, likert_judges, human, text_metrics or {}, labels, seed)
    attributes = [_probe(probe, seed) for probe in probes]
    meta["empty"] = _empty_sections(pairwise_judges, likert_judges, attributes)
    for section in (*pairwise_judges, *likert_judges, *human):
        for key in [key for key in section if key.startswith("_")]:
            del section[key]
    return {
        "recommender": {
            "run": recommender_run.pk,
            "algorithm": recommender_run.algorithm,
            "dataset": recommender_run.dataset.name,
            "metrics": recommender_run.metrics,
        },
        "runs": [run_lineage(run) for run in runs],
        "judge": {"pairwise": pairwise_judges, "likert": likert_judges},
        "human": human,
        "attributes": attributes,
        "text": {labels[run_id]: metrics for run_id, metrics in (text_metrics or {}).items() if run_id in labels},
        "meta": meta,
        "seed": seed,
        "include_flagged": include_flagged,
    }


def decisive_pairs(judge: dict[str, Any]) -> int:
    """Pairs a pairwise judge section decided (both orders picked the same explanation)."""
    return sum(pair["win_tie_loss"]["counts"]["a"] + pair["win_tie_loss"]["counts"]["b"] for pair in judge["pairs"])


def _empty_sections(
    pairwise_judges: list[dict[str, Any]], likert_judges: list[dict[str, Any]], attributes: list[dict[str, Any]]
) -> list[str]:
    """One sentence per judge run or probe none of whose answers could be used, and per
    pairwise judge whose two orders never agreed (every pair a tie: nothing to rank)."""
    sentences = []
    for judge in (*pairwise_judges, *likert_judges):
        if not judge["usable"]:
            sentences.append(
                f"Judge run #{judge['judge_run']} ({judge['judge']}): no usable verdict; "
                f"all {judge['total']} answers were unparsed or failed."
            )
        elif "pairs" in judge and not decisive_pairs(judge):
            bias = (judge.get("position_bias") or {}).get("first") or {}
            first = "" if bias.get("estimate") is None else f" (it picked the first slot in {bias['estimate']:.0%})"
            sentences.append(
                f"Judge run #{judge['judge_run']} ({judge['judge']}): its two orders never agreed{first}, so "
                "every pair is a tie; no win shares or strengths are drawn. Its position bias is below."
            )
    for probe in attributes:
        if not probe["usable"]:
            sentences.append(
                f"Probe #{probe['probe']} ({probe['target']}, {probe['prober']}): no usable answer; "
                f"all {probe['total']} answers were unparsed or failed."
            )
    return sentences


def _meta(
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
    human_means: dict[str, dict[str, float]] = defaultdict(dict)
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
    correlations = []

    def correlate(signal: str, scores: dict[str, float]) -> None:
        for criterion, means in sorted(human_means.items()):
            shared = sorted(set(means) & set(scores))
            if len(shared) >= 3:
                x, y = [scores[s] for s in shared], [means[s] for s in shared]
                correlations.append(
                    {
                        "signal": signal,
                        "criterion": criterion,
                        "systems": len(shared),
                        "kendall_tau": kendall_tau(x, y).to_dict(),
                        "spearman_rho": spearman_rho(x, y).to_dict(),
                    }
                )

    for judge in likert_judges:
        for criterion in {name for row in judge["runs"] for name in row["criteria"]}:
            scores = {
                row["run"]: row["criteria"][criterion]["mean"]["estimate"]
                for row in judge["runs"]
                if row["criteria"][criterion]["mean"]["estimate"] is not None
            }
            correlate(f"judge #{judge['judge_run']} likert {criterion}", scores)
    for judge in pairwise_judges:
        if judge["bradley_terry"]:
            scores = {name: value["estimate"] for name, value in judge["bradley_terry"]["strengths"].items()}
            correlate(f"judge #{judge['judge_run']} Bradley-Terry", scores)
    for name, path in TEXT_METRICS:
        scores = {}
        for run_id, metrics in text_metrics.items():
            value = dig(metrics, path)
            if isinstance(value, int | float) and run_id in labels:
                scores[labels[run_id]] = float(value)
        correlate(f"text {name}", scores)
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
    return {"correlations": correlations, "item_kappa": kappas, "calibration": calibration}


def dig(metrics: dict[str, Any], path: tuple[str, ...]) -> Any:
    """``metrics[path[0]][path[1]]…``, or None where the path does not exist."""
    node: Any = metrics
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _inputs_version(runs: Sequence[GenerationRun]) -> str:
    """A fingerprint of everything a report reads: changes whenever a verdict, rating, probe
    answer, participant flag or explanation of these runs changes. One small query each."""
    from django.db.models import Count, Max, Q

    from annotation.models import Participant
    from explanations.models import Explanation

    ids = [run.pk for run in runs]
    parts = [
        Explanation.objects.filter(generation_run__in=ids).aggregate(n=Count("id"), t=Max("generated_at")),
        JudgeVerdict.objects.filter(judge_run__generation_runs__in=ids).aggregate(n=Count("id"), t=Max("judged_at")),
        Rating.objects.filter(assignment__campaign__generation_runs__in=ids).aggregate(
            n=Count("id"), t=Max("updated_at")
        ),
        Participant.objects.filter(campaign__generation_runs__in=ids).aggregate(
            excluded=Count("id", filter=Q(excluded=True)), flagged=Count("id", filter=Q(flagged=True))
        ),
        ProbeAnswer.objects.filter(probe__generation_run__in=ids).aggregate(n=Count("id"), t=Max("answered_at")),
        JudgeRun.objects.filter(generation_runs__in=ids).aggregate(n=Count("id"), t=Max("finished_at")),
        Campaign.objects.filter(generation_runs__in=ids).aggregate(n=Count("id")),
    ]
    return repr(parts)


def study_report_cached(
    *,
    recommender_run: RecommenderRun,
    generation_runs: Sequence[GenerationRun],
    seed: int = 0,
    include_flagged: bool = True,
    reference_run: GenerationRun | None = None,
) -> dict[str, Any]:
    """``study_report`` from the cache when none of its inputs changed since it was computed.

    Text metrics are worker jobs (``explanations.services.text_metrics``): each run's are
    requested here for its current explanations (against ``reference_run`` when given) and
    joined once finished. Until then the report says which are pending (``text_jobs``),
    and a finished job changes the cache key, so the next read includes its metrics.
    """
    import hashlib

    from django.core.cache import cache

    from explanations.services.text_metrics import text_metrics_request

    runs = sorted(generation_runs, key=lambda run: run.pk)
    jobs = [
        text_metrics_request(run=run, reference_run=reference_run if reference_run != run else None) for run in runs
    ]
    version = (_inputs_version(runs), [(job.pk, str(job.status)) for job in jobs])
    key = (
        # v2: runs carry their recorded lineage (adapter name and checksum, no server path);
        # a report cached before that change must not be served.
        "study-report:v2:"
        + hashlib.sha256(
            f"{recommender_run.pk}|{[r.pk for r in runs]}|{seed}|{include_flagged}|{version}".encode()
        ).hexdigest()
    )
    report = cache.get(key)
    if report is not None:
        return dict(report) | {"cached": True}
    labels = {run.pk: _label(run) for run in runs}
    report = study_report(
        recommender_run=recommender_run,
        generation_runs=runs,
        seed=seed,
        include_flagged=include_flagged,
        text_metrics={job.generation_run_id: job.metrics or {} for job in jobs if job.status == job.Status.SUCCEEDED},
    )
    report["text_jobs"] = [
        {"run": labels[job.generation_run_id], "job": job.pk, "status": str(job.status), "error": job.error}
        for job in jobs
        if job.status != job.Status.SUCCEEDED
    ]
    report["reference_run"] = reference_run.pk if reference_run is not None else None
    cache.set(key, report)
    return report | {"cached": False}
