"""The claims sections of the study report: what the automatic claim checker found in each run's
explanations, and what annotators of a claims campaign found, with intervals that resample
explanations (a run's claims are nested in them) and annotators; then how far the checker and the
hallucinated-title metric agree with the annotators."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from annotation.agreement import CLAIM_CODES, included_claim_labels
from annotation.models import Campaign
from annotation.study.sections import RESAMPLES
from annotation.study.stats.agreement import alphas_of_answers, detection_agreement
from annotation.study.stats.bootstrap import accuracy_with_ci
from annotation.study.stats.clustered import clustered_mean
from explanations.models import CheckedClaim, ClaimCheck, GenerationRun
from explanations.services.text_metrics import hallucinated_titles


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


ClaimKey = tuple[int, int, int]  # explanation id, start, end: the same claim in a campaign and a check


def human_claims_section(
    campaign: Campaign, labels: dict[int, str], seed: int, *, include_flagged: bool
) -> dict[str, Any]:
    """A claims campaign, per run: the share of claim labels that say "supported" (the
    human-verified support rate) and "contradicted", with intervals resampling explanations and
    annotators; the share of claims whose majority label is "supported" (a tie is not); the
    share of explanations with at least one claim that is not. Then alpha over claims (three
    labels, and supported or not) and the agreement with the humans' majority of every
    succeeded claim check on the campaign's runs (claims matched by their span) and of the
    hallucinated-title metric (explanations, against "at least one claim not supported")."""
    rows = list(
        included_claim_labels(campaign, include_flagged=include_flagged)
        .order_by()
        .values_list(
            "assignment__participant_id",
            "claim_id",
            "claim__start",
            "claim__end",
            "assignment__item__explanation_id",
            "assignment__item__explanation__generation_run_id",
            "label",
        )
    )
    votes: dict[int, list[str]] = defaultdict(list)
    where: dict[int, tuple[ClaimKey, int]] = {}
    for _, claim, start, end, explanation, run, label in rows:
        votes[claim].append(label)
        where[claim] = ((explanation, start, end), run)
    supported = {claim: 2 * labels_.count("supported") > len(labels_) for claim, labels_ in votes.items()}
    verified = {where[claim][0]: value for claim, value in supported.items()}
    explanation_ok: dict[int, bool] = {}
    for (explanation, *_), value in verified.items():
        explanation_ok[explanation] = explanation_ok.get(explanation, True) and value
    runs = sorted({run for *_, run, _ in rows})
    return {
        "campaign": campaign.pk,
        "name": campaign.name,
        "labels": len(rows),
        "claims": len(votes),
        "explanations": len(explanation_ok),
        "annotators": len({row[0] for row in rows}),
        "runs": [_run_claims(run, rows, supported, explanation_ok, labels, seed) for run in runs],
        "agreement": _claim_alphas(rows, seed),
        "checkers": _checker_agreement(runs, verified, labels, seed),
        "hallucinated_titles": _title_agreement(runs, explanation_ok, seed),
    }


def _run_claims(
    run: int,
    rows: list[tuple[Any, ...]],
    supported: dict[int, bool],
    explanation_ok: dict[int, bool],
    labels: dict[int, str],
    seed: int,
) -> dict[str, Any]:
    mine = [row for row in rows if row[5] == run]
    annotators, explanations = [row[0] for row in mine], [row[4] for row in mine]
    claims = {row[1]: row[4] for row in mine}
    flagged = [not explanation_ok[e] for e in sorted({row[4] for row in mine})]
    return {
        "run": labels.get(run, str(run)),
        "generation_run": run,
        "support": clustered_mean(
            [float(row[6] == "supported") for row in mine], explanations, annotators, n_resamples=RESAMPLES
        ).to_dict(),
        "contradicted": clustered_mean(
            [float(row[6] == "contradicted") for row in mine], explanations, annotators, n_resamples=RESAMPLES
        ).to_dict(),
        "verified_claims": clustered_mean(
            [float(supported[claim]) for claim in claims], list(claims.values()), n_resamples=RESAMPLES
        ).to_dict(),
        "unsupported_explanations": accuracy_with_ci(flagged, n_resamples=RESAMPLES, seed=seed).to_dict(),
        "labels": len(mine),
        "claims": len(claims),
        "explanations": len(flagged),
    }


def _claim_alphas(rows: list[tuple[Any, ...]], seed: int) -> dict[str, Any]:
    """Krippendorff's alpha over claims: nominal on the three labels, and on supported or not."""
    if not rows:
        return {"labels": None, "supported": None}
    coders = np.asarray([row[0] for row in rows])
    units = np.asarray([row[1] for row in rows])
    values = np.asarray([CLAIM_CODES[row[6]] for row in rows])
    (three,) = alphas_of_answers(coders, units, values, [("nominal", None)], n_resamples=RESAMPLES, seed=seed)
    (binary,) = alphas_of_answers(
        coders, units, (values > 0).astype(np.float64), [("nominal", None)], n_resamples=RESAMPLES, seed=seed
    )
    return {"labels": three.to_dict(), "supported": binary.to_dict()}


def _checker_agreement(
    runs: list[int], verified: dict[ClaimKey, bool], labels: dict[int, str], seed: int
) -> list[dict[str, Any]]:
    """Each succeeded claim check on ``runs`` against the humans' majority: its yes/no against
    "supported" (kappa) and its P(supported) (AUROC, where it scored by likelihood)."""
    sections = []
    checks = ClaimCheck.objects.filter(generation_run__in=runs, status=ClaimCheck.Status.SUCCEEDED)
    for check in checks.select_related("checker").order_by("pk"):
        answered = CheckedClaim.objects.filter(
            claim_check=check, status=CheckedClaim.Status.DONE, answer__in=["yes", "no"]
        ).values_list("explanation_id", "start", "end", "answer", "p_supported")
        matched = [(verified[(e, s, t)], answer, p) for e, s, t, answer, p in answered if (e, s, t) in verified]
        scored = all(p is not None for *_, p in matched)
        sections.append(
            {
                "claim_check": check.pk,
                "checker": check.checker.name,
                "run": labels.get(check.generation_run_id, str(check.generation_run_id)),
                "matched": len(matched),
                "unmatched": len(answered) - len(matched),
            }
            | detection_agreement(
                [answer == "yes" for _, answer, _ in matched],
                [float(p or 0.0) for *_, p in matched] if scored and matched else None,
                [human for human, *_ in matched],
                n_resamples=RESAMPLES,
                seed=seed,
            )
        )
    return sections


def _title_agreement(runs: list[int], explanation_ok: dict[int, bool], seed: int) -> dict[str, Any] | None:
    """The hallucinated-title metric (naming a title the prompt never showed) against the
    humans' "at least one claim not supported", explanation by explanation."""
    if not explanation_ok:
        return None
    named = hallucinated_titles(
        GenerationRun.objects.filter(pk__in=runs).select_related("recommender_run"), list(explanation_ok)
    )
    cases = [(named[e], not ok) for e, ok in explanation_ok.items() if e in named]
    return detection_agreement(
        [flag for flag, _ in cases],
        [float(flag) for flag, _ in cases],
        [human for _, human in cases],
        n_resamples=RESAMPLES,
        seed=seed,
    )
