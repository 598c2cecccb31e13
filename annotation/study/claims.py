"""The claims section of the study report: what the automatic claim checker found in each run's
explanations, with intervals that resample explanations (a run's claims are nested in them)."""

from __future__ import annotations

from typing import Any

from annotation.study.sections import RESAMPLES
from annotation.study.stats.bootstrap import accuracy_with_ci
from annotation.study.stats.clustered import clustered_mean
from explanations.models import CheckedClaim, ClaimCheck


def claims_section(check: ClaimCheck, labels: dict[int, str], seed: int) -> dict[str, Any]:
    """One claim check: the share of its answered claims found supported (explanations
    resampled), the mean P(supported) where it was scored, the share of explanations with at
    least one claim not found supported, and its counts. Unparsed and failed claims are left
    out of the shares and counted."""
    rows = list(
        CheckedClaim.objects.filter(claim_check=check).values_list("explanation_id", "status", "answer", "p_supported")
    )
    answered = [
        (explanation, answer == "yes") for explanation, status, answer, _ in rows if status == "done" and answer
    ]
    flagged: dict[int, bool] = {}
    for explanation, supported in answered:
        flagged[explanation] = flagged.get(explanation, False) or not supported
    scored = [p for *_, p in rows if p is not None]
    return {
        "claim_check": check.pk,
        "checker": check.checker.name,
        "generation_run": check.generation_run_id,
        "run": labels.get(check.generation_run_id, str(check.generation_run_id)),
        "supported": clustered_mean(
            [float(supported) for _, supported in answered], [explanation for explanation, _ in answered],
            n_resamples=RESAMPLES,
        ).to_dict() if answered else None,
        "unsupported_explanations": accuracy_with_ci(
            list(flagged.values()), n_resamples=RESAMPLES, seed=seed
        ).to_dict() if flagged else None,
        "mean_p_supported": sum(scored) / len(scored) if scored else None,
        "claims": len(rows),
        "answered": len(answered),
        "explanations": len(flagged),
    }  # fmt: skip
