"""The attribute section of the study report: what a prober infers about users from explanations."""

from __future__ import annotations

from typing import Any

from annotation.study.sections import RESAMPLES, decisiveness
from annotation.study.stats.bootstrap import accuracy_with_ci, majority_baseline
from explanations.models import AttributeProbe, ProbeAnswer
from explanations.probing import AGE_TOLERANCE


def probe_section(probe: AttributeProbe, seed: int) -> dict[str, Any]:
    """A probe's accuracy from the history alone and with the explanation, each beside the
    majority baseline judged by the same rule, its parse failures and its decisiveness."""
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
            "decisiveness": decisiveness([list(row[4].values()) for row in mine if row[4]], answers, n_options),
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
