"""The automatic claim checker, run like judging and probes.

A check is a chunked job of the one engine (``services.engine``): its rows are the claims of a
generation run's explanations (``explanations.claims.split_claims``), written up front as
PENDING and answered a chunk at a time on the ``gpu`` queue. Each claim is shown with the facts
its explanation was written from (the same train-side history, item and, if the run's prompt
had it, profile: ``prompts.prompt_context`` with the run's controls) and the checker answers
``Supported: yes`` or ``no``: by likelihood (the default), both options are scored and
``p_supported`` is P(yes); as text, the answer is parsed strictly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Avg, Count, Q
from django.utils import timezone

from explanations.claims import split_claims
from explanations.judging import CLAIM_OPTIONS, CLAIM_PREFIX, claim_messages, parse_claim_verdict
from explanations.lineage import subsample_record
from explanations.llm import Messages
from explanations.models import AnswerMode, CheckedClaim, ClaimCheck, Explanation, GenerationRun, Generator
from explanations.prompts import Controls, prompt_context
from explanations.services.chunks import answer_in_mode, answer_mode_check, generate_with, score_with
from explanations.services.engine import ChunkedKind, register
from explanations.services.generators import GenerationError, generator_spec, run_lineage_record


def claim_check_start(
    *,
    created_by: Any,
    checker: Generator,
    generation_run: GenerationRun,
    sample_size: int = 0,
    seed: int = 0,
    chunk_size: int = 16,
    max_new_tokens: int = 8,
    answer_mode: str = AnswerMode.LIKELIHOOD,
    enqueue: bool = True,
    claims: Sequence[tuple[int, int, int, str]] | None = None,
    claims_from: str = "",
) -> ClaimCheck:
    """Create the check and one PENDING row per claim of the sampled explanations; enqueue one
    task per chunk after commit. ``claims`` ((explanation id, start, end, text), e.g. a claims
    campaign's split, named by ``claims_from`` in the lineage) replaces the default split and
    the sample; those of explanations outside the run are left out. Raises GenerationError,
    storing nothing, for an unknown answer mode, bad sizes, a checker that cannot load or a run
    with no claim to check."""
    answer_mode_check(answer_mode)
    if not 1 <= chunk_size <= 256 or not 1 <= max_new_tokens <= 200:
        raise GenerationError("chunk size must be 1 to 256 and max new tokens 1 to 200")
    generator_spec(checker)
    explanations = list(
        Explanation.objects.filter(generation_run=generation_run, status=Explanation.Status.DONE).order_by("pk")
    )
    if claims is None and sample_size and sample_size < len(explanations):
        explanations = sorted(random.Random(seed).sample(explanations, sample_size), key=lambda e: e.pk)  # noqa: S311
    if claims is None:
        rows = [
            (explanation.pk, position, claim.start, claim.end, claim.text)
            for explanation in explanations
            for position, claim in enumerate(split_claims(explanation.text))
        ]
    else:
        done = {explanation.pk for explanation in explanations}
        given = sorted((row for row in claims if row[0] in done), key=lambda row: (row[0], row[1]))
        positions: dict[int, int] = {}
        rows = []
        for explanation_id, start, end, text in given:
            positions[explanation_id] = positions.get(explanation_id, -1) + 1
            rows.append((explanation_id, positions[explanation_id], start, end, text))
    if not rows:
        raise GenerationError(f"generation run #{generation_run.pk} has no finished explanation with a claim")
    lineage = run_lineage_record(
        generator=checker,
        recommender_run=generation_run.recommender_run,
        seed=seed,
        sample=subsample_record(sample_size),
    ) | ({"claims_from": claims_from} if claims_from else {})
    with transaction.atomic():
        check = ClaimCheck.objects.create(
            created_by=created_by,
            checker=checker,
            generation_run=generation_run,
            lineage=lineage,
            answer_mode=answer_mode,
            sample_size=sample_size,
            seed=seed,
            chunk_size=chunk_size,
            max_new_tokens=max_new_tokens,
            status=ClaimCheck.Status.RUNNING,
            started_at=timezone.now(),
        )
        CLAIM_CHECK.write_rows(
            check, ["explanation", "position", "start", "end", "text"], rows, chunk_size=chunk_size, enqueue=enqueue
        )
    return check


def _prompts(check: ClaimCheck, rows: list[CheckedClaim]) -> list[Messages]:
    run = check.generation_run
    controls = Controls.of(run.controls())
    contexts: dict[int, dict[str, Any]] = {}
    prompts = []
    for row in rows:
        recommendation = row.explanation.recommendation
        if row.explanation_id not in contexts:
            contexts[row.explanation_id] = prompt_context(recommendation, run.recommender_run.split, controls)
        prompts.append(claim_messages(contexts[row.explanation_id], row.text))
    return prompts


def _answer(check: ClaimCheck, rows: list[CheckedClaim], prompts: list[Messages]) -> None:
    answer_in_mode(
        check,
        by_likelihood=lambda: _answer_by_likelihood(check, rows, prompts),
        by_text=lambda: _answer_by_text(check, rows, prompts),
    )


def _answer_by_likelihood(check: ClaimCheck, rows: list[CheckedClaim], prompts: list[Messages]) -> None:
    scores = score_with(check, [(prompt, CLAIM_PREFIX, list(CLAIM_OPTIONS)) for prompt in prompts])
    answered = []
    for row, prompt, score in zip(rows, prompts, scores, strict=True):
        p_yes = score.probabilities[0]
        answer = "yes" if p_yes >= 0.5 else "no"
        fields = {"prompt": prompt, "output": f"{CLAIM_PREFIX} {answer}", "answer": answer, "p_supported": p_yes}
        answered.append((row, fields | {"parse_error": ""}))
    CLAIM_CHECK.complete(answered)


def _answer_by_text(check: ClaimCheck, rows: list[CheckedClaim], prompts: list[Messages]) -> None:
    completions = generate_with(check, prompts, max_new_tokens=check.max_new_tokens)
    answered = []
    for row, prompt, completion in zip(rows, prompts, completions, strict=True):
        parsed = parse_claim_verdict(completion.text)
        fields = {
            "prompt": prompt,
            "output": completion.text,
            "answer": parsed.value if parsed.ok else "",
            "p_supported": None,
            "parse_error": parsed.error[:200],
        }
        answered.append((row, fields))
    CLAIM_CHECK.complete(answered)


CLAIM_CHECK = register(
    ChunkedKind(
        name="claim_check",
        label="claim check",
        job_model=ClaimCheck,
        task="explanations.claim_check_chunk",
        row_model=CheckedClaim,
        job_field="claim_check",
        done_at="checked_at",
        blank={"prompt": [], "output": "", "answer": "", "parse_error": "", "error": "", "attempts": 0},
        prompts=_prompts,
        process=_answer,
        summary=lambda c: f"{c['finished']} claims checked, {c['unparsed']} unparsed, {c['failed']} failed",
        extra_counts={"unparsed": Q(status=CheckedClaim.Status.DONE, answer="")},
        job_related=("generation_run__recommender_run__split",),
        row_related=("explanation__recommendation__user", "explanation__recommendation__item__dataset"),
    )
)


def claim_check_chunk_run(*, check_id: int, chunk: int) -> None:
    """Answer the still-PENDING claims of one chunk in one batched call (``ChunkedKind.run_chunk``)."""
    CLAIM_CHECK.run_chunk(check_id, chunk)


def claim_check_stats(check: ClaimCheck) -> dict[str, Any]:
    """Progress and what the checker found: claims checked, unparsed and failed; the share it
    found supported (unparsed answers left out), the mean P(supported), and the share of
    explanations with at least one claim it did not find supported."""
    rows = CheckedClaim.objects.filter(claim_check=check)
    counts = rows.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=CheckedClaim.Status.DONE)),
        failed=Count("id", filter=Q(status=CheckedClaim.Status.FAILED)),
        unparsed=Count("id", filter=Q(status=CheckedClaim.Status.DONE, answer="")),
        supported=Count("id", filter=Q(answer="yes")),
        mean_p=Avg("p_supported"),
    )
    answered = counts["done"] - counts["unparsed"]
    explanations = rows.filter(status=CheckedClaim.Status.DONE).exclude(answer="").values("explanation").distinct()
    flagged = explanations.filter(answer="no").count()
    n_explanations = explanations.count()
    pending = counts["total"] - counts["done"] - counts["failed"]
    return counts | {
        "pending": pending,
        "percent": int(100 * (counts["total"] - pending) / counts["total"]) if counts["total"] else 100,
        "supported_share": counts["supported"] / answered if answered else None,
        "explanations": n_explanations,
        "unsupported_explanation_share": flagged / n_explanations if n_explanations else None,
    }
