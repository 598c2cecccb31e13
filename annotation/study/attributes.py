"""The attribute section of the study report: what a prober infers about users from explanations.

A profile probe (age, gender and occupation in one answer, as the LLMXRec study asked them) is
reported twice over: every field on its own, and all fields right at once.
"""

from __future__ import annotations

import json
from typing import Any

from annotation.study.sections import RESAMPLES, decisiveness
from annotation.study.stats.bootstrap import accuracy_with_ci, majority_baseline
from explanations.models import AttributeProbe, ProbeAnswer
from explanations.probing import AGE_TOLERANCE, PROFILE

VARIANTS = ((False, "history"), (True, "history_and_explanation"))


def _majority(target: str, truths: list[list[str]]) -> tuple[str | None, list[bool]]:
    """The most common true label and, per row, whether answering it is right by the target's
    rule (age: within ±5 years; else one of the true labels)."""
    label, _ = majority_baseline([labels[0] for labels in truths if labels])
    if label is None:
        return None, [False] * len(truths)
    if target == "age":
        return label, [bool(t) and abs(int(label) - int(t[0])) <= AGE_TOLERANCE for t in truths]
    return label, [label in t for t in truths]


def _variant(
    correct: list[bool],
    answers: list[str],
    baseline: tuple[str | None, list[bool]],
    distributions: list[list[float]],
    n_options: int,
    seed: int,
) -> dict[str, Any]:
    """One prompt variant's accuracy with its interval, beside the majority baseline judged by
    the same rule, its parse failures (empty ``answers``) and its decisiveness."""
    label, baseline_right = baseline
    parsed = [answer for answer in answers if answer]
    return {
        "accuracy": accuracy_with_ci(correct, n_resamples=RESAMPLES, seed=seed).to_dict(),
        "majority_label": label,
        "majority_accuracy": sum(baseline_right) / len(baseline_right) if baseline_right else None,
        "parse_failure_rate": (len(answers) - len(parsed)) / len(answers) if answers else None,
        "n": len(answers),
        "decisiveness": decisiveness(distributions, parsed, n_options),
    }


def _profile_fields(probe: AttributeProbe, rows: list[tuple[Any, ...]], seed: int) -> dict[str, Any]:
    """Field → variant → the field scored on its own, over the answers whose user has it."""
    fields: dict[str, Any] = {}
    for field in probe.options:
        fields[field] = {}
        for flag, name in VARIANTS:
            mine = [row for row in rows if row[0] == flag and field in row[3]]
            results = [(row[5] or {}).get(field, {}) for row in mine]
            fields[field][name] = _variant(
                [bool(result.get("correct")) for result in results],
                [result.get("answer", "") for result in results],
                _majority(field, [row[3][field] for row in mine]),
                [],
                len(probe.options[field]),
                seed,
            )
    return fields


def _profile_majority(probe: AttributeProbe, truths: list[dict[str, list[str]]]) -> tuple[str | None, list[bool]]:
    """Answering every field's most common label: right when each field the user has is right."""
    labels: dict[str, str | None] = {}
    right = [True] * len(truths)
    for field in probe.options:
        having = [index for index, truth in enumerate(truths) if field in truth]
        labels[field], field_right = _majority(field, [truths[index][field] for index in having])
        for index, ok in zip(having, field_right, strict=True):
            right[index] = right[index] and ok
    return (json.dumps(labels, separators=(",", ":")) if truths else None), right


def probe_section(probe: AttributeProbe, seed: int) -> dict[str, Any]:
    """A probe's accuracy from the history alone and with the explanation, each beside the
    majority baseline judged by the same rule, its parse failures and its decisiveness; a
    profile probe adds ``fields``, each field scored on its own."""
    rows = list(
        ProbeAnswer.objects.filter(probe=probe).values_list(
            "with_explanation", "correct", "answer", "truth", "probabilities", "field_answers"
        )
    )
    variants = {}
    for flag, name in VARIANTS:
        mine = [row for row in rows if row[0] == flag]
        truths = [row[3] for row in mine]
        if probe.target == PROFILE:
            baseline = _profile_majority(probe, truths)
            n_options = 0
        else:
            baseline = _majority(probe.target, truths)
            n_options = len(probe.options) or len({row[2] for row in mine if row[2]})
        variants[name] = _variant(
            [bool(row[1]) for row in mine],
            [row[2] for row in mine],
            baseline,
            [list(row[4].values()) for row in mine if row[4]],
            n_options,
            seed,
        )
    section = {
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
    if probe.target == PROFILE:
        section["fields"] = _profile_fields(probe, rows, seed)
    return section
