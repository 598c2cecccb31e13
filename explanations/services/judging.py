"""Judge runs: an LLM judges explanations, pairwise in both orders or on a Likert rubric.

A judge run is a chunked job of the one engine (``services.engine``): its rows are
JudgeVerdicts (unique on run + shown explanations), written up front as PENDING and judged a
chunk at a time, one batched call per chunk, on the ``gpu`` queue.

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
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from explanations.judging import (
    PAIRWISE_OPTIONS,
    PAIRWISE_PREFIX,
    combine_orders,
    likert_from_scores,
    likert_messages,
    likert_questions,
    pairwise_answer,
    pairwise_from_scores,
    pairwise_messages,
    parse_likert,
    parse_pairwise,
)
from explanations.lineage import subsample_record
from explanations.llm import Messages
from explanations.models import AdapterTraining, AnswerMode, GenerationRun, Generator, JudgeRun, JudgeVerdict
from explanations.prompts import Controls, prompt_context
from explanations.querysets import explanations_by_recommendation
from explanations.services.adapters import judge_training_start, trained_recommendations
from explanations.services.chunks import answer_in_mode, answer_mode_check, generate_with, score_with
from explanations.services.engine import ChunkedKind, register
from explanations.services.generators import GenerationError, generator_spec, run_lineage_record


def _check_rubric(rubric: list[dict[str, Any]]) -> None:
    if not rubric:
        raise GenerationError("the judge needs a rubric: at least one criterion with a name and a question")
    for criterion in rubric:
        if not criterion.get("name") or not criterion.get("question"):
            raise GenerationError("every rubric criterion needs a name and a question")
        if int(criterion.get("scale_min", 1)) >= int(criterion.get("scale_max", 10)):
            raise GenerationError(f"criterion {criterion['name']}: the scale's minimum must be below its maximum")


def _verdict_rows(
    runs: list[GenerationRun], explained: dict[int, dict[int, int]], chosen: list[int], mode: str
) -> list[tuple[int, int, int | None]]:
    """(recommendation, first explanation, second or None) of every verdict to ask for.
    Likert: one per explanation. Pairwise: for each pair of runs, both orders."""
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
    return rows


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
    rows = _verdict_rows(runs, explained, chosen, mode)
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
            n_held_out=len(set(explained) & trained),
        )
        run.generation_runs.set(runs)
        JUDGE.write_rows(run, ["recommendation", "first", "second"], rows, chunk_size=chunk_size, enqueue=enqueue)
    return run


def _controls(run: JudgeRun) -> Controls:
    # The judge sees as much history as the longest of the compared prompts did.
    longest = run.generation_runs.aggregate(longest=Max("history_length"))["longest"] or 10
    return Controls(history_length=longest)


def _prompts(run: JudgeRun, rows: list[JudgeVerdict]) -> list[Messages]:
    controls = _controls(run)
    prompts: list[Messages] = []
    for row in rows:
        split = row.recommendation.run.split
        context = prompt_context(row.recommendation, split, controls)
        if row.second is None:
            prompts.append(likert_messages(context, row.first.text, run.rubric))
        else:
            prompts.append(pairwise_messages(context, row.first.text, row.second.text, run.rubric))
    return prompts


def _judge(run: JudgeRun, rows: list[JudgeVerdict], prompts: list[Messages]) -> None:
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
    scores = score_with(run, questions)
    answered = []
    position = 0
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
        fields = {"prompt": prompt, "output": output, "parsed": parsed, "probabilities": probabilities}
        answered.append((row, fields | {"parse_error": "", "completion_tokens": None}))
    JUDGE.complete(answered)


def _judge_by_text(run: JudgeRun, rows: list[JudgeVerdict], prompts: list[Messages]) -> None:
    completions = generate_with(run, prompts, max_new_tokens=run.max_new_tokens)
    answered = []
    for row, prompt, completion in zip(rows, prompts, completions, strict=True):
        if row.second is None:
            parsed = parse_likert(completion.text, run.rubric)
            value = {"scores": parsed.value} if parsed.ok else None
        else:
            parsed = parse_pairwise(completion.text)
            value = {"winner": parsed.value} if parsed.ok else None
        fields = {"prompt": prompt, "output": completion.text, "parsed": value, "probabilities": None}
        answered.append(
            (row, fields | {"parse_error": parsed.error[:200], "completion_tokens": completion.completion_tokens})
        )
    JUDGE.complete(answered)


JUDGE = register(
    ChunkedKind(
        name="judge",
        label="judge run",
        job_model=JudgeRun,
        task="explanations.judge_chunk",
        row_model=JudgeVerdict,
        job_field="judge_run",
        done_at="judged_at",
        blank={"prompt": [], "output": "", "parse_error": "", "error": "", "attempts": 0},
        prompts=_prompts,
        process=_judge,
        summary=lambda c: f"{c['finished']} judged, {c['unparsed']} unparsed, {c['failed']} failed",
        extra_counts={"unparsed": Q(status=JudgeVerdict.Status.DONE, parsed__isnull=True)},
        row_related=(
            "first",
            "second",
            "recommendation__user",
            "recommendation__item__dataset",
            "recommendation__run__split",
        ),
    )
)


def judge_chunk_run(*, run_id: int, chunk: int) -> None:
    """Judge the still-PENDING verdicts of one chunk in one batched call
    (``ChunkedKind.run_chunk``: idempotent, safe to run twice at once; a backend failure
    marks the chunk's rows FAILED and retryable)."""
    JUDGE.run_chunk(run_id, chunk)


def judge_run_retry_failed(*, run: JudgeRun) -> JudgeRun:
    """Put a finished run's FAILED verdicts (backend errors, not unparsed answers) back to
    PENDING and judge them again; a no-op for a run that has not finished."""
    JUDGE.retry(run)
    run.refresh_from_db()
    return run


def judge_runs_requeue_stalled() -> int:
    """Enqueue every chunk with PENDING verdicts in a RUNNING judge run; return how many
    (``ChunkedKind.requeue_stalled``)."""
    return JUDGE.requeue_stalled()


def judge_run_preferences(run: JudgeRun) -> list[dict[str, Any]]:
    """A pairwise judge run's verdicts as preferences (``judge_training_start``'s input): per
    recommendation and pair of explanations judged in both orders, the winner where the two
    orders agree. Pairs whose orders disagree are left out: that is the judge's slot preference,
    not a preference between the explanations. ``a`` is the lower explanation id."""
    # Per pair: the judge's raw winner ("first", "second", "tie") with the lower id shown first
    # (True) and with the higher id shown first (False).
    by_order: dict[tuple[int, int, int], dict[bool, str | None]] = defaultdict(dict)
    for recommendation, first, second, parsed, status in (
        JudgeVerdict.objects.filter(judge_run=run, second__isnull=False)
        .order_by("pk")
        .values_list("recommendation_id", "first_id", "second_id", "parsed", "status")
    ):
        named = (parsed or {}).get("winner") if status == JudgeVerdict.Status.DONE else None
        by_order[(recommendation, min(first, second), max(first, second))][first < second] = named
    preferences = []
    for (recommendation, a, b), orders in by_order.items():
        lower_first, higher_first = orders.get(True), orders.get(False)
        outcome = combine_orders(lower_first, higher_first)
        # combine_orders calls a disagreement a tie too; only a tie in both orders is a preference.
        if outcome in ("a", "b") or lower_first == higher_first == "tie":
            preferences.append({"recommendation": recommendation, "a": a, "b": b, "winner": outcome})
    return preferences


def judge_run_tuning_start(
    *, run: JudgeRun, created_by: Any, base_generator: Generator, options: dict[str, Any]
) -> AdapterTraining:
    """Tune a pairwise judge with LoRA on ``run``'s agreeing verdicts (a strong judge teaching a
    small one, as the LLMXRec study tuned its judge on LLM-labelled pairs), prompted with
    ``run``'s rubric. Raises GenerationError (nothing stored) for a Likert run, fewer than two
    agreeing verdicts, or a base that cannot be tuned."""
    if run.mode != JudgeRun.Mode.PAIRWISE:
        raise GenerationError(
            f"judge run #{run.pk} is {run.get_mode_display().lower()}: only pairwise verdicts teach a judge"
        )
    return judge_training_start(
        created_by=created_by,
        base_generator=base_generator,
        preferences=judge_run_preferences(run),
        rubric=run.rubric,
        description=f"judge run #{run.pk} {run.judge.name[:100]}: verdicts both orders agree on",
        options=options,
    )
