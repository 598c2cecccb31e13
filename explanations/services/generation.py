"""Generation runs: explanations for recommendations, in chunked, idempotent, batched tasks.

Starting a run writes every Explanation row as PENDING (unique on run + recommendation),
each with its chunk number, and enqueues one task per chunk on the ``gpu`` queue. A chunk
task generates its still-PENDING rows in one batched call and writes each row only if it is
still PENDING, so a task delivered twice, or a chunk picked up again after its worker died,
never produces a second row or overwrites a finished one.

Each text is cut to the run's word limit at its last full sentence (``texts.limit_words``);
the model's whole output is kept in ``raw_text`` when the cut changed it.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from explanations.llm import BackendError, load_backend
from explanations.models import Explanation, GenerationRun, Generator, PromptTemplate, sample_record
from explanations.prompts import Controls, prompt_context, render
from explanations.services.chunks import precision_record
from explanations.services.generators import (
    GenerationError,
    decoding_params,
    generator_spec,
    lineage_generator,
    run_lineage_record,
)
from explanations.texts import limit_words
from recommendations.models import Interaction, Recommendation, RecommenderRun
from recommendations.shared.bulk import insert_rows


def _sample_users(run: RecommenderRun, sample: str, size: int, seed: int) -> list[int]:
    """DatasetUser ids to explain, in a stable order."""
    users = list(Recommendation.objects.for_run(run).order_by("user_id").values_list("user_id", flat=True).distinct())
    if sample == GenerationRun.Sample.ALL or size >= len(users):
        return users
    if sample == GenerationRun.Sample.FIRST:
        return users[:size]
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    if sample == GenerationRun.Sample.RANDOM:
        return sorted(rng.sample(users, size))
    # Stratified by activity: equal shares from each quartile of interaction counts, so heavy
    # and light users are both represented (random sampling mostly draws the light majority).
    counts = dict(
        Interaction.objects.filter(user_id__in=users)
        .values("user_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    ordered = sorted(users, key=lambda u: (counts.get(u, 0), u))
    strata = np.array_split(np.asarray(ordered), 4)
    chosen: list[int] = []
    for index, stratum in enumerate(strata):
        share = size // 4 + (1 if index < size % 4 else 0)
        chosen.extend(int(u) for u in rng.sample(stratum.tolist(), min(share, len(stratum))))
    return sorted(chosen)


def generation_run_start(
    *,
    created_by: Any,
    recommender_run: RecommenderRun,
    generator: Generator,
    template: PromptTemplate,
    depth: int = 1,
    sample: str = GenerationRun.Sample.RANDOM,
    sample_size: int = 50,
    seed: int = 0,
    controls: Controls | None = None,
    chunk_size: int = 8,
    enqueue: bool = True,
) -> GenerationRun:
    """Create the run and its PENDING explanations, and enqueue one task per chunk after commit.

    The run records its lineage (``run_lineage_record``: the generator's settings, adapter
    checksum, prompt version, split and seed) as they are now; every chunk loads from that.

    With ``enqueue=False`` nothing is sent to a broker: the caller runs the chunks itself
    (``generation_chunk_run``), as the demo and benchmarks do in one process.

    Raises GenerationError for a recommender run that has not finished, a depth beyond its
    K, a generator that cannot load, or bad controls; nothing is stored then.
    """
    from explanations.tasks import generation_chunk_run_task

    controls = controls or Controls()
    if recommender_run.status != RecommenderRun.Status.SUCCEEDED or recommender_run.split is None:
        raise GenerationError(f"recommender run #{recommender_run.pk} has not finished")
    if not 1 <= depth <= recommender_run.k:
        raise GenerationError(f"depth must be between 1 and the run's K ({recommender_run.k}), got {depth}")
    if not 1 <= chunk_size <= 256 or sample_size < 1:
        raise GenerationError("chunk size must be 1 to 256 and the sample size at least 1")
    if not 1 <= controls.max_words <= 500 or not 0 <= controls.history_length <= 200:
        raise GenerationError("max words must be 1 to 500 and history length 0 to 200")
    generator_spec(generator)  # fail now, not in the worker, if the model is missing
    lineage = run_lineage_record(
        generator=generator,
        recommender_run=recommender_run,
        seed=seed,
        template=template,
        sample=sample_record(sample, sample_size),
    )
    with transaction.atomic():
        run = GenerationRun.objects.create(
            created_by=created_by,
            recommender_run=recommender_run,
            generator=generator,
            template=template,
            depth=depth,
            sample=sample,
            sample_size=sample_size,
            seed=seed,
            history_length=controls.history_length,
            max_words=controls.max_words,
            aspects=list(controls.aspects),
            tone=controls.tone,
            second_person=controls.second_person,
            include_profile=controls.include_profile,
            chunk_size=chunk_size,
            status=GenerationRun.Status.RUNNING,
            started_at=timezone.now(),
            lineage=lineage,
        )
        users = _sample_users(recommender_run, sample, sample_size, seed)
        recommendation_ids = list(
            Recommendation.objects.for_run(recommender_run)
            .filter(user_id__in=users, rank__lte=depth)
            .order_by("user_id", "rank")
            .values_list("id", flat=True)
        )
        insert_rows(
            Explanation,
            [
                "generation_run",
                "recommendation",
                "chunk",
                "status",
                "prompt",
                "text",
                "raw_text",
                "finish_reason",
                "error",
                "attempts",
            ],
            (
                (run.pk, rec_id, index // chunk_size, Explanation.Status.PENDING, [], "", "", "", "", 0)
                for index, rec_id in enumerate(recommendation_ids)
            ),
        )
        run.n_total = len(recommendation_ids)
        run.progress_total = run.n_total
        run.save(update_fields=["n_total", "progress_total"])
        for chunk in range(-(-run.n_total // chunk_size) if enqueue else 0):
            generation_chunk_run_task.delay_on_commit(run.pk, chunk)  # type: ignore[attr-defined]
        if run.n_total == 0:
            _finish_if_done(run)
    return run


def _refresh_progress(run: GenerationRun) -> dict[str, int]:
    counts = Explanation.objects.filter(generation_run=run).aggregate(
        done=Count("id", filter=Q(status=Explanation.Status.DONE)),
        failed=Count("id", filter=Q(status=Explanation.Status.FAILED)),
        pending=Count("id", filter=Q(status=Explanation.Status.PENDING)),
    )
    GenerationRun.objects.filter(pk=run.pk).update(progress_done=counts["done"] + counts["failed"])
    return counts


def _finish_if_done(run: GenerationRun) -> None:
    counts = _refresh_progress(run)
    if counts["pending"]:
        return
    # Failures are recorded per explanation and retryable; the run itself has finished.
    GenerationRun.objects.filter(pk=run.pk, status=GenerationRun.Status.RUNNING).update(
        status=GenerationRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        phase=f"{counts['done']} done, {counts['failed']} failed",
    )


def generation_chunk_run(*, run_id: int, chunk: int) -> None:
    """Generate the still-PENDING explanations of one chunk in one batched call.

    Idempotent and safe to run twice at once: rows are written only while still PENDING.
    The model and decoding come from the run's recorded lineage (``lineage_generator``), not
    from the generator row, so a retried or requeued chunk uses what the run started with.
    Returns quietly for a missing, cancelled or finished run. A backend failure marks the
    chunk's rows FAILED with the error (retryable); anything unexpected is recorded the same
    way and re-raised.
    """
    run = GenerationRun.objects.select_related("template", "recommender_run__split").filter(pk=run_id).first()
    if run is None or run.status != GenerationRun.Status.RUNNING or run.cancel_requested:
        return
    rows = list(
        Explanation.objects.filter(generation_run=run, chunk=chunk, status=Explanation.Status.PENDING)
        .select_related("recommendation__user", "recommendation__item__dataset", "recommendation__run")
        .order_by("id")
    )
    if not rows:
        _finish_if_done(run)
        return
    split = run.recommender_run.split
    assert split is not None
    controls = Controls(**run.controls() | {"aspects": tuple(run.aspects)})
    prompts = [
        render(run.template.system_text, run.template.user_text, prompt_context(row.recommendation, split, controls))
        for row in rows
    ]
    try:
        generator = lineage_generator(run)
        backend = load_backend(generator_spec(generator))
        started = time.perf_counter()
        completions = backend.generate(prompts, decoding_params(generator, seed=run.seed, max_words=run.max_words))
        elapsed_ms = 1000 * (time.perf_counter() - started)
        precision_record(run, backend)
    except (BackendError, GenerationError) as exc:
        _fail_rows(rows, prompts, str(exc))
        _finish_if_done(run)
        return
    except Exception as exc:
        _fail_rows(rows, prompts, f"internal error: {exc!r}")
        _finish_if_done(run)
        raise
    now = timezone.now()
    with transaction.atomic():
        for row, prompt, completion in zip(rows, prompts, completions, strict=True):
            # The limit is asked for in the prompt and enforced here: small models overrun it.
            text = limit_words(completion.text, run.max_words, finished=completion.finish_reason == "stop")
            Explanation.objects.filter(pk=row.pk, status=Explanation.Status.PENDING).update(
                status=Explanation.Status.DONE,
                prompt=prompt,
                text=text,
                raw_text="" if text == completion.text else completion.text,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                latency_ms=elapsed_ms / len(rows),
                finish_reason=completion.finish_reason,
                error="",
                attempts=row.attempts + 1,
                generated_at=now,
            )
    _finish_if_done(run)


def _fail_rows(rows: list[Explanation], prompts: list[Any], error: str) -> None:
    for row, prompt in zip(rows, prompts, strict=True):
        Explanation.objects.filter(pk=row.pk, status=Explanation.Status.PENDING).update(
            status=Explanation.Status.FAILED, prompt=prompt, error=error[:2000], attempts=row.attempts + 1
        )


def _enqueue_pending_chunks(run: GenerationRun) -> int:
    from explanations.tasks import generation_chunk_run_task

    chunks = sorted(
        set(
            Explanation.objects.filter(generation_run=run, status=Explanation.Status.PENDING).values_list(
                "chunk", flat=True
            )
        )
    )
    for chunk in chunks:
        generation_chunk_run_task.delay_on_commit(run.pk, chunk)  # type: ignore[attr-defined]
    return len(chunks)


def generation_run_cancel(*, run: GenerationRun) -> GenerationRun:
    """Stop a running run: chunks not yet started return at once; finished rows stay."""
    GenerationRun.objects.filter(pk=run.pk, status=GenerationRun.Status.RUNNING).update(
        status=GenerationRun.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def generation_run_resume(*, run: GenerationRun) -> GenerationRun:
    """Continue a cancelled run from its PENDING rows; a no-op for any other status."""
    with transaction.atomic():
        resumed = GenerationRun.objects.filter(pk=run.pk, status=GenerationRun.Status.CANCELLED).update(
            status=GenerationRun.Status.RUNNING, cancel_requested=False, finished_at=None
        )
        if resumed:
            run.refresh_from_db()
            if not _enqueue_pending_chunks(run):
                _finish_if_done(run)
    run.refresh_from_db()
    return run


def generation_run_retry_failed(*, run: GenerationRun) -> GenerationRun:
    """Put a finished run's FAILED explanations back to PENDING and generate them again."""
    with transaction.atomic():
        if run.status not in (GenerationRun.Status.SUCCEEDED, GenerationRun.Status.CANCELLED):
            return run
        retried = Explanation.objects.filter(generation_run=run, status=Explanation.Status.FAILED).update(
            status=Explanation.Status.PENDING, error=""
        )
        if retried:
            GenerationRun.objects.filter(pk=run.pk).update(
                status=GenerationRun.Status.RUNNING, cancel_requested=False, finished_at=None
            )
            run.refresh_from_db()
            _enqueue_pending_chunks(run)
    run.refresh_from_db()
    return run


def generation_runs_requeue_stalled() -> int:
    """Enqueue every chunk that still has PENDING rows in a RUNNING run; return how many.

    Run when a worker starts: a chunk whose worker died mid-batch was already taken off a
    broker without redelivery (the filesystem transport), or its redelivery is hours away
    (Redis' visibility timeout). Duplicates are harmless: chunk tasks are idempotent.
    """
    total = 0
    for run in GenerationRun.objects.filter(status=GenerationRun.Status.RUNNING, cancel_requested=False):
        total += _enqueue_pending_chunks(run)
    return total
