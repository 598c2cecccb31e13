"""Generation runs: explanations for recommendations, in chunked, idempotent, batched tasks.

A run is a chunked job of the one engine (``services.engine``): its rows are Explanations
(unique on run + recommendation), written up front as PENDING and generated a chunk at a
time, one batched call per chunk, on the ``gpu`` queue. This module supplies what is
generation's own: which recommendations are explained, their prompts, and the write.

Each text is cut to the run's word limit at its last full sentence (``texts.limit_words``);
the model's whole output is kept in ``raw_text`` when the cut changed it.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from explanations.lineage import sample_record
from explanations.llm import Backend, Completion, Messages
from explanations.models import Explanation, GenerationRun, Generator, PromptTemplate
from explanations.prompts import Controls, prompt_context, render
from explanations.services.chunks import with_recorded_backend
from explanations.services.engine import ChunkedKind, register
from explanations.services.generators import (
    GenerationError,
    decoding_params,
    generator_spec,
    run_lineage_record,
)
from explanations.texts import limit_words
from recommendations.models import Interaction, Recommendation, RecommenderRun


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
    parent: GenerationRun | None = None,
) -> GenerationRun:
    """Create the run and its PENDING explanations, and enqueue one task per chunk after commit.

    The run records its lineage (``run_lineage_record``: the generator's settings, adapter
    checksum, prompt version, split and seed) as they are now; every chunk loads from that.

    ``parent``: the campaign run a first-person run repeats for one participant (``GenerationRun.parent``).

    With ``enqueue=False`` nothing is sent to a broker: the caller runs the chunks itself
    (``generation_chunk_run``), as the demo and benchmarks do in one process.

    Raises GenerationError for a recommender run that has not finished, a depth beyond its
    K, a generator that cannot load, or bad controls; nothing is stored then.
    """
    controls = controls or Controls()
    if recommender_run.status != RecommenderRun.Status.SUCCEEDED:
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
            parent=parent,
            depth=depth,
            sample=sample,
            sample_size=sample_size,
            seed=seed,
            **controls.run_fields(),
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
        GENERATION.write_rows(
            run, ["recommendation"], [(pk,) for pk in recommendation_ids], chunk_size=chunk_size, enqueue=enqueue
        )
    return run


def _prompts(run: GenerationRun, rows: list[Explanation]) -> list[Messages]:
    split = run.recommender_run.split
    controls = Controls.of(run.controls())
    return [
        render(run.template.system_text, run.template.user_text, prompt_context(row.recommendation, split, controls))
        for row in rows
    ]


def _generate(run: GenerationRun, rows: list[Explanation], prompts: list[Messages]) -> None:
    """One batched call of the run's recorded model and decoding (``lineage_generator``), so
    a retried or requeued chunk uses what the run started with, not the generator row now."""

    def generate(backend: Backend, generator: Generator) -> tuple[list[Completion], float]:
        started = time.perf_counter()
        completions = backend.generate(prompts, decoding_params(generator, seed=run.seed, max_words=run.max_words))
        return completions, 1000 * (time.perf_counter() - started)

    completions, elapsed_ms = with_recorded_backend(run, generate)
    answered = []
    for row, prompt, completion in zip(rows, prompts, completions, strict=True):
        # The limit is asked for in the prompt and enforced here: small models overrun it.
        text = limit_words(completion.text, run.max_words, finished=completion.finish_reason == "stop")
        fields = {
            "prompt": prompt,
            "text": text,
            "raw_text": "" if text == completion.text else completion.text,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "latency_ms": elapsed_ms / len(rows),
            "finish_reason": completion.finish_reason,
        }
        answered.append((row, fields))
    GENERATION.complete(answered)


GENERATION = register(
    ChunkedKind(
        name="run",
        label="generation run",
        job_model=GenerationRun,
        task="explanations.generate_chunk",
        row_model=Explanation,
        job_field="generation_run",
        done_at="generated_at",
        blank={"prompt": [], "text": "", "raw_text": "", "finish_reason": "", "error": "", "attempts": 0},
        prompts=_prompts,
        process=_generate,
        # Failures are recorded per explanation and retryable; the run itself has finished.
        summary=lambda counts: f"{counts['done']} done, {counts['failed']} failed",
        job_related=("template", "recommender_run__split"),
        row_related=("recommendation__user", "recommendation__item__dataset", "recommendation__run"),
    )
)


def generation_chunk_run(*, run_id: int, chunk: int) -> None:
    """Generate the still-PENDING explanations of one chunk in one batched call
    (``ChunkedKind.run_chunk``: idempotent, safe to run twice at once; a backend failure
    marks the chunk's rows FAILED and retryable)."""
    GENERATION.run_chunk(run_id, chunk)


def generation_run_cancel(*, run: GenerationRun) -> GenerationRun:
    """Stop a running run: chunks not yet started return at once; finished rows stay.
    Any other status is left alone."""
    GENERATION.cancel(run)
    run.refresh_from_db()
    return run


def generation_run_resume(*, run: GenerationRun) -> GenerationRun:
    """Continue a cancelled run from its PENDING rows; a no-op for any other status."""
    GENERATION.resume(run)
    run.refresh_from_db()
    return run


def generation_run_retry_failed(*, run: GenerationRun) -> GenerationRun:
    """Put a finished run's FAILED explanations back to PENDING and generate them again."""
    GENERATION.retry(run)
    run.refresh_from_db()
    return run


def generation_runs_requeue_stalled() -> int:
    """Enqueue every chunk that still has PENDING rows in a RUNNING run; return how many
    (``ChunkedKind.requeue_stalled``)."""
    return GENERATION.requeue_stalled()
