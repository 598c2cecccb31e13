"""Judge runs: an LLM judges explanations, pairwise in both orders or on a Likert rubric.

Starting a run writes every JudgeVerdict row as PENDING (unique on run + shown explanations)
with its chunk, and enqueues one task per chunk on the ``gpu`` queue. A chunk task judges its
still-PENDING rows in one batched call and writes each row only while it is still PENDING, so
a task delivered twice never judges a row twice.

Answers come in the run's ``answer_mode``. ``likelihood`` (the default): the options of the
strict format are scored after its answer prefix and the most likely one is stored as parsed,
with the distribution in ``probabilities``; every answer parses. ``text``: answers are generated
and parsed strictly (``explanations.judging``); an unparsed answer is stored DONE with its
``parse_error``. A backend that cannot score (an OpenAI-compatible server without
log-probabilities) answers that chunk as text, and the run's ``fallback`` says so.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from explanations.judging import (
    PAIRWISE_OPTIONS,
    PAIRWISE_PREFIX,
    likert_from_scores,
    likert_messages,
    likert_questions,
    pairwise_answer,
    pairwise_from_scores,
    pairwise_messages,
    parse_likert,
    parse_pairwise,
)
from explanations.llm import Messages
from explanations.models import AnswerMode, GenerationRun, Generator, JudgeRun, JudgeVerdict, subsample_record
from explanations.prompts import Controls, prompt_context
from explanations.querysets import explanations_by_recommendation
from explanations.services.adapters import trained_recommendations
from explanations.services.chunks import (
    answer_in_mode,
    answer_mode_check,
    generate_or_fail,
    pending_chunks,
    score_or_fail,
)
from explanations.services.generators import GenerationError, generator_spec, run_lineage_record
from recommendations.shared.bulk import insert_rows


def _check_rubric(rubric: list[dict[str, Any]]) -> None:
    if not rubric:
        raise GenerationError("the judge needs a rubric: at least one criterion with a name and a question")
    for criterion in rubric:
        if not criterion.get("name") or not criterion.get("question"):
            raise GenerationError("every rubric criterion needs a name and a question")
        if int(criterion.get("scale_min", 1)) >= int(criterion.get("scale_max", 10)):
            raise GenerationError(f"criterion {criterion['name']}: the scale's minimum must be below its maximum")


def judge_run_start(
    *,
    created_by: Any,
    judge: Generator,
    generation_runs: Sequence[GenerationRun],
    rubric: list[dict[str, Any]],
    mode: str = JudgeRun.Mode.PAIRWISE,
    answer_mode: str = AnswerMode.LIKELIHOOD,
    sample_size: int = 0,
    seed: int = 0,
    chunk_size: int = 8,
    max_new_tokens: int = 40,
    enqueue: bool = True,
) -> JudgeRun:
    """Create the run and its PENDING verdicts; enqueue one task per chunk after commit.

    The recommendations judged are those every run explained successfully (a seeded sample
    of ``sample_size`` of them, or all), less those whose human preferences tuned the judge
    (``trained_recommendations``; counted in ``n_held_out``). Pairwise: for each pair of runs, two verdict rows per
    recommendation, one per order. Likert: one row per explanation. With ``enqueue=False`` the
    caller runs the chunks itself (``judge_chunk_run``). The run records the judge's settings
    as they are now (``run_lineage_record``) and its chunks judge with those. Raises GenerationError, storing
    nothing, for runs over different recommender runs, too few runs, an unknown mode or answer
    mode, a bad rubric or a judge that cannot load.
    """
    from explanations.tasks import judge_chunk_run_task

    if mode not in JudgeRun.Mode.values:
        raise GenerationError(f"unknown mode {mode!r}; choose {' or '.join(JudgeRun.Mode.values)}")
    answer_mode_check(answer_mode)
    runs = sorted(generation_runs, key=lambda run: run.pk)
    if len({run.recommender_run_id for run in runs}) != 1:
        raise GenerationError("choose generation runs of one recommender run")
    if mode == JudgeRun.Mode.PAIRWISE and len(runs) < 2:
        raise GenerationError("a pairwise judge compares at least two generation runs")
    if not 1 <= chunk_size <= 256 or not 1 <= max_new_tokens <= 1000:
        raise GenerationError("chunk size must be 1 to 256 and max new tokens 1 to 1000")
    _check_rubric(rubric)
    generator_spec(judge)
    explained = explanations_by_recommendation(runs)
    trained = trained_recommendations(judge)
    chosen = sorted(set(explained) - trained)
    if explained and not chosen:
        raise GenerationError(
            "the judge was tuned on the human preferences of every recommendation these runs explain: "
            "judge other runs or another recommender run's"
        )
    if sample_size and sample_size < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample_size))  # noqa: S311 - a reproducible sample
    rows: list[tuple[int, int, int | None]] = []
    for recommendation_id in chosen:
        by_run = explained[recommendation_id]
        if mode == JudgeRun.Mode.LIKERT:
            rows += [(recommendation_id, by_run[run.pk], None) for run in runs]
        else:
            for a, b in itertools.combinations(runs, 2):
                rows += [
                    (recommendation_id, by_run[a.pk], by_run[b.pk]),
                    (recommendation_id, by_run[b.pk], by_run[a.pk]),
                ]
    lineage = run_lineage_record(
        generator=judge,
        recommender_run=runs[0].recommender_run,
        seed=seed,
        sample=subsample_record(sample_size),
    )
    with transaction.atomic():
        run = JudgeRun.objects.create(
            created_by=created_by,
            judge=judge,
            lineage=lineage,
            mode=mode,
            answer_mode=answer_mode,
            rubric=rubric,
            sample_size=sample_size,
            seed=seed,
            chunk_size=chunk_size,
            max_new_tokens=max_new_tokens,
            status=JudgeRun.Status.RUNNING,
            started_at=timezone.now(),
            n_total=len(rows),
            progress_total=len(rows),
            n_held_out=len(set(explained) & trained),
        )
        run.generation_runs.set(runs)
        insert_rows(
            JudgeVerdict,
            [
                "judge_run",
                "recommendation",
                "first",
                "second",
                "chunk",
                "status",
                "prompt",
                "output",
                "parse_error",
                "error",
                "attempts",
            ],
            (
                (run.pk, rec, first, second, index // chunk_size, JudgeVerdict.Status.PENDING, [], "", "", "", 0)
                for index, (rec, first, second) in enumerate(rows)
            ),
        )
        for chunk in range(-(-len(rows) // chunk_size) if enqueue else 0):
            judge_chunk_run_task.delay_on_commit(run.pk, chunk)  # type: ignore[attr-defined]
        if not rows:
            _finish_if_done(run)
    return run


def _finish_if_done(run: JudgeRun) -> None:
    counts = JudgeVerdict.objects.filter(judge_run=run).aggregate(
        finished=Count("id", filter=~Q(status=JudgeVerdict.Status.PENDING)),
        pending=Count("id", filter=Q(status=JudgeVerdict.Status.PENDING)),
        unparsed=Count("id", filter=Q(status=JudgeVerdict.Status.DONE, parsed__isnull=True)),
        failed=Count("id", filter=Q(status=JudgeVerdict.Status.FAILED)),
    )
    JudgeRun.objects.filter(pk=run.pk).update(progress_done=counts["finished"])
    if counts["pending"]:
        return
    JudgeRun.objects.filter(pk=run.pk, status=JudgeRun.Status.RUNNING).update(
        status=JudgeRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        phase=f"{counts['finished']} judged, {counts['unparsed']} unparsed, {counts['failed']} failed",
    )


def _controls(run: JudgeRun) -> Controls:
    # The judge sees as much history as the longest of the compared prompts did.
    longest = run.generation_runs.aggregate(longest=Max("history_length"))["longest"] or 10
    return Controls(history_length=longest)


def judge_chunk_run(*, run_id: int, chunk: int) -> None:
    """Judge the still-PENDING verdicts of one chunk in one batched call.

    Idempotent and safe to run twice at once: rows are written only while still PENDING.
    Returns quietly for a missing, cancelled or finished run. A backend failure marks the
    chunk's rows FAILED with the error; anything unexpected is recorded the same way and
    re-raised.
    """
    run = JudgeRun.objects.filter(pk=run_id).first()
    if run is None or run.status != JudgeRun.Status.RUNNING or run.cancel_requested:
        return
    rows = list(
        JudgeVerdict.objects.filter(judge_run=run, chunk=chunk, status=JudgeVerdict.Status.PENDING)
        .select_related(
            "first",
            "second",
            "recommendation__user",
            "recommendation__item__dataset",
            "recommendation__run__split",
        )
        .order_by("id")
    )
    if not rows:
        _finish_if_done(run)
        return
    controls = _controls(run)
    prompts: list[Messages] = []
    for row in rows:
        split = row.recommendation.run.split
        assert split is not None
        context = prompt_context(row.recommendation, split, controls)
        if row.second is None:
            prompts.append(likert_messages(context, row.first.text, run.rubric))
        else:
            prompts.append(pairwise_messages(context, row.first.text, row.second.text, run.rubric))
    answer_in_mode(
        run,
        by_likelihood=lambda: _judge_by_likelihood(run, rows, prompts),
        by_text=lambda: _judge_by_text(run, rows, prompts),
    )


def _judge_by_likelihood(run: JudgeRun, rows: list[JudgeVerdict], prompts: list[Messages]) -> None:
    # Pairwise rows ask one question; Likert rows one per criterion, answered independently.
    criteria = likert_questions(run.rubric)
    questions: list[tuple[Messages, str, list[str]]] = []
    for row, prompt in zip(rows, prompts, strict=True):
        if row.second is None:
            questions += [(prompt, prefix, options) for prefix, options in criteria]
        else:
            questions.append((prompt, PAIRWISE_PREFIX, list(PAIRWISE_OPTIONS)))
    scores = score_or_fail(
        run,
        JudgeVerdict,
        rows,
        prompts,
        questions=questions,
        after_failure=lambda: _finish_if_done(run),
    )
    if scores is None:
        return
    now = timezone.now()
    position = 0
    with transaction.atomic():
        for row, prompt in zip(rows, prompts, strict=True):
            parsed: dict[str, Any]
            if row.second is None:
                parsed, probabilities = likert_from_scores(run.rubric, scores[position : position + len(criteria)])
                position += len(criteria)
                output = "\n".join(f"{name}: {value}" for name, value in parsed["scores"].items())
            else:
                parsed, probabilities = pairwise_from_scores(scores[position])
                position += 1
                output = pairwise_answer(parsed["winner"])
            JudgeVerdict.objects.filter(pk=row.pk, status=JudgeVerdict.Status.PENDING).update(
                status=JudgeVerdict.Status.DONE,
                prompt=prompt,
                output=output,
                parsed=parsed,
                probabilities=probabilities,
                parse_error="",
                error="",
                completion_tokens=None,
                attempts=row.attempts + 1,
                judged_at=now,
            )
    _finish_if_done(run)


def _judge_by_text(run: JudgeRun, rows: list[JudgeVerdict], prompts: list[Messages]) -> None:
    completions = generate_or_fail(
        run,
        JudgeVerdict,
        rows,
        prompts,
        max_new_tokens=run.max_new_tokens,
        seed=run.seed,
        after_failure=lambda: _finish_if_done(run),
    )
    if completions is None:
        return
    now = timezone.now()
    with transaction.atomic():
        for row, prompt, completion in zip(rows, prompts, completions, strict=True):
            if row.second is None:
                parsed = parse_likert(completion.text, run.rubric)
                value = {"scores": parsed.value} if parsed.ok else None
            else:
                parsed = parse_pairwise(completion.text)
                value = {"winner": parsed.value} if parsed.ok else None
            JudgeVerdict.objects.filter(pk=row.pk, status=JudgeVerdict.Status.PENDING).update(
                status=JudgeVerdict.Status.DONE,
                prompt=prompt,
                output=completion.text,
                parsed=value,
                probabilities=None,
                parse_error=parsed.error[:200],
                error="",
                completion_tokens=completion.completion_tokens,
                attempts=row.attempts + 1,
                judged_at=now,
            )
    _finish_if_done(run)


def judge_run_retry_failed(*, run: JudgeRun) -> JudgeRun:
    """Put a finished run's FAILED verdicts (backend errors, not unparsed answers) back to
    PENDING and judge them again."""
    from explanations.tasks import judge_chunk_run_task

    with transaction.atomic():
        if run.status not in (JudgeRun.Status.SUCCEEDED, JudgeRun.Status.CANCELLED):
            return run
        failed = JudgeVerdict.objects.filter(judge_run=run, status=JudgeVerdict.Status.FAILED)
        chunks = sorted(set(failed.values_list("chunk", flat=True)))
        if failed.update(status=JudgeVerdict.Status.PENDING, error=""):
            JudgeRun.objects.filter(pk=run.pk).update(
                status=JudgeRun.Status.RUNNING, cancel_requested=False, finished_at=None
            )
            for chunk in chunks:
                judge_chunk_run_task.delay_on_commit(run.pk, chunk)  # type: ignore[attr-defined]
    run.refresh_from_db()
    return run


def judge_runs_requeue_stalled() -> int:
    """Enqueue every chunk with PENDING verdicts in a RUNNING judge run; return how many.
    Run when a worker starts (see ``generation_runs_requeue_stalled``); duplicates are harmless."""
    from explanations.tasks import judge_chunk_run_task

    total = 0
    for run in JudgeRun.objects.filter(status=JudgeRun.Status.RUNNING, cancel_requested=False):
        for chunk in pending_chunks(JudgeVerdict.objects.filter(judge_run=run)):
            judge_chunk_run_task.delay(run.pk, chunk)
            total += 1
    return total
