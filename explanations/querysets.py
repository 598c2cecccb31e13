"""Named reads for the explanations app: run statistics, page rows, loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from explanations.models import (
    AdapterTraining,
    AttributeProbe,
    Explanation,
    GenerationRun,
    JudgeRun,
    JudgeVerdict,
    ProbeAnswer,
)
from explanations.probing import PROFILE
from explanations.textmetrics import length_distribution, refusal_rate
from recommendations.models import Interaction


def generation_run_stats(run: GenerationRun) -> dict[str, Any]:
    """Done / failed / pending counts, throughput and an ETA for a run's progress bar."""
    counts = Explanation.objects.filter(generation_run=run).aggregate(
        done=Count("id", filter=Q(status=Explanation.Status.DONE)),
        failed=Count("id", filter=Q(status=Explanation.Status.FAILED)),
        pending=Count("id", filter=Q(status=Explanation.Status.PENDING)),
        tokens=Sum("completion_tokens"),
    )
    total = counts["done"] + counts["failed"] + counts["pending"]
    end = run.finished_at or timezone.now()
    elapsed = (end - run.started_at).total_seconds() if run.started_at else 0.0
    finished = counts["done"] + counts["failed"]
    rate = finished / elapsed if elapsed > 0 else 0.0
    return counts | {
        "total": total,
        "percent": int(100 * finished / total) if total else 100,
        "elapsed_seconds": elapsed,
        "per_second": rate,
        "tokens_per_second": (counts["tokens"] or 0) / elapsed if elapsed > 0 else 0.0,
        "eta_seconds": counts["pending"] / rate if rate > 0 and counts["pending"] else None,
    }


def explanation_rows(run: GenerationRun, explanations: Any) -> list[dict[str, Any]]:
    """Each explanation beside the train-side history its prompt was built from (newest first)."""
    split = run.recommender_run.split
    rows = []
    for explanation in explanations:
        history = Interaction.objects.history_of(explanation.recommendation.user)
        if split is not None:
            history = history.in_train_of(split)
        rows.append(
            {"explanation": explanation, "history": list(history.order_by("-timestamp", "-id")[: run.history_length])}
        )
    return rows


def loss_curve_points(training: AdapterTraining, width: int = 600, height: int = 200) -> dict[str, Any]:
    """SVG polyline points for the train and validation loss curves, on shared axes."""
    train = [(float(step), float(loss)) for step, loss in training.train_losses]
    validation = [(float(step), float(loss)) for step, loss in training.validation_losses]
    every = train + validation
    if not every:
        return {}
    max_x = max(x for x, _ in every) or 1.0
    low, high = min(y for _, y in every), max(y for _, y in every)
    span = (high - low) or 1.0

    def points(series: list[tuple[float, float]]) -> str:
        return " ".join(f"{width * x / max_x:.1f},{height - height * (y - low) / span:.1f}" for x, y in series)

    return {
        "width": width,
        "height": height,
        "train": points(train),
        "validation": points(validation),
        "low": low,
        "high": high,
        "steps": int(max_x),
    }


def generation_run_text_stats(run: GenerationRun) -> dict[str, Any]:
    """Length, word-limit, refusal and stop figures of a run's finished explanations."""
    rows = list(
        Explanation.objects.filter(generation_run=run, status=Explanation.Status.DONE).values_list(
            "text", "finish_reason"
        )
    )
    if not rows:
        return {"n": 0}
    texts = [text for text, _ in rows]
    lengths = length_distribution(texts, word_limit=run.max_words)
    return {
        "n": len(rows),
        "mean_words": lengths["mean"],
        "within_word_limit": 1 - lengths["over_limit"],
        "refusals": refusal_rate(texts),
        "stopped": sum(reason == "stop" for _, reason in rows) / len(rows),
    }


def explanations_by_recommendation(runs: Sequence[GenerationRun]) -> dict[int, dict[int, int]]:
    """recommendation id → {generation run id → explanation id}, for the recommendations that
    every one of ``runs`` explained successfully. One query."""
    by_recommendation: dict[int, dict[int, int]] = {}
    rows = Explanation.objects.filter(generation_run__in=runs, status=Explanation.Status.DONE).values_list(
        "recommendation_id", "generation_run_id", "id"
    )
    for recommendation_id, run_id, explanation_id in rows:
        by_recommendation.setdefault(recommendation_id, {})[run_id] = explanation_id
    return {rec: found for rec, found in by_recommendation.items() if len(found) == len(runs)}


def judge_run_stats(run: JudgeRun) -> dict[str, Any]:
    """Progress and raw verdict counts: judged, unparsed, failed, pending, and for pairwise
    runs how often each slot was picked (the position bias before orders are combined)."""
    verdicts = JudgeVerdict.objects.filter(judge_run=run)
    counts = verdicts.aggregate(
        done=Count("id", filter=Q(status=JudgeVerdict.Status.DONE)),
        unparsed=Count("id", filter=Q(status=JudgeVerdict.Status.DONE, parsed__isnull=True)),
        failed=Count("id", filter=Q(status=JudgeVerdict.Status.FAILED)),
        pending=Count("id", filter=Q(status=JudgeVerdict.Status.PENDING)),
    )
    total = counts["done"] + counts["failed"] + counts["pending"]
    slots = {"first": 0, "second": 0, "tie": 0}
    if run.mode == JudgeRun.Mode.PAIRWISE:
        for parsed in verdicts.filter(parsed__isnull=False).values_list("parsed", flat=True):
            if parsed is not None:
                slots[parsed["winner"]] += 1
    finished = counts["done"] + counts["failed"]
    return counts | {"total": total, "percent": int(100 * finished / total) if total else 100, "slots": slots}


def _profile_field_stats(probe: AttributeProbe) -> dict[str, dict[str, dict[str, Any]]]:
    """A profile probe's raw accuracy per field and variant, over its answered rows."""
    stats: dict[str, dict[str, dict[str, Any]]] = {}
    answered = ProbeAnswer.objects.filter(probe=probe, status=ProbeAnswer.Status.DONE)
    for flag, results in answered.values_list("with_explanation", "field_answers"):
        name = "history and explanation" if flag else "history alone"
        for field, result in (results or {}).items():
            counts = stats.setdefault(field, {}).setdefault(name, {"done": 0, "correct": 0, "unparsed": 0})
            counts["done"] += 1
            counts["correct"] += bool(result["correct"])
            counts["unparsed"] += not result["answer"]
    for variants in stats.values():
        for counts in variants.values():
            counts["accuracy"] = counts["correct"] / counts["done"]
    return stats


def probe_stats(probe: AttributeProbe) -> dict[str, Any]:
    """Progress and raw accuracy per variant (history alone, history and explanation):
    answered, correct, unparsed (counted as wrong), failed, pending. One query, and one more
    for a profile probe's per-field ``fields``."""
    rows = (
        ProbeAnswer.objects.filter(probe=probe)
        .values("with_explanation")
        .annotate(
            done=Count("id", filter=Q(status=ProbeAnswer.Status.DONE)),
            correct=Count("id", filter=Q(status=ProbeAnswer.Status.DONE, correct=True)),
            unparsed=Count("id", filter=Q(status=ProbeAnswer.Status.DONE, answer="")),
            failed=Count("id", filter=Q(status=ProbeAnswer.Status.FAILED)),
            pending=Count("id", filter=Q(status=ProbeAnswer.Status.PENDING)),
        )
        .order_by("with_explanation")
    )
    variants: dict[str, dict[str, Any]] = {}
    for row in rows:
        counts = {key: int(row[key]) for key in ("done", "correct", "unparsed", "failed", "pending")}
        name = "history and explanation" if row["with_explanation"] else "history alone"
        variants[name] = counts | {"accuracy": counts["correct"] / counts["done"] if counts["done"] else None}
    total = sum(v["done"] + v["failed"] + v["pending"] for v in variants.values())
    finished = sum(v["done"] + v["failed"] for v in variants.values())
    return {
        "variants": variants,
        "fields": _profile_field_stats(probe) if probe.target == PROFILE else {},
        "total": total,
        "failed": sum(v["failed"] for v in variants.values()),
        "pending": total - finished,
        "percent": int(100 * finished / total) if total else 100,
    }
