"""What the chunked LLM jobs (generation, judge runs, attribute probes) share inside a chunk:
the backend of the model they recorded, the precision it ran in, and the fallback from
likelihood to text answers (the chunks themselves are run by ``services.engine``). A chunk's
model is the one its job recorded when it started (``lineage_generator``), never the
generator row as it is now."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import models

from explanations.llm import (
    Backend,
    Completion,
    DecodingParams,
    Messages,
    OptionScores,
    ScoringUnavailable,
    load_backend,
)
from explanations.models import AnsweringJob, AnswerMode, Generator, RecordedJob
from explanations.services.generators import GenerationError, generator_spec, lineage_generator

T = TypeVar("T")


def precision_record(job: models.Model, backend: Backend) -> None:
    """Add ``backend.precision`` to ``job.precision`` unless it is there already.

    Chunks of one job may run on different workers (a CPU box and a GPU box), so a job that
    ran in two precisions records both, joined by "; ", rather than the last one only.
    """
    manager = type(job)._default_manager
    current = manager.filter(pk=job.pk).values_list("precision", flat=True).first()
    if current is None or backend.precision in current.split("; "):
        return
    combined = f"{current}; {backend.precision}" if current else backend.precision
    # Conditional on the value read, so two chunks finishing together cannot drop each other's.
    manager.filter(pk=job.pk, precision=current).update(precision=combined[:200])


def with_recorded_backend(job: RecordedJob, call: Callable[[Backend, Generator], T]) -> T:
    """``call`` on the backend of the generator ``job`` recorded (``lineage_generator``), with
    that generator; the precision it ran in is then recorded on ``job``. Backend failures
    (``BackendError``, ``GenerationError`` for a job without a record) pass through: the
    engine fails the chunk's rows with them."""
    generator = lineage_generator(job)
    backend = load_backend(generator_spec(generator))
    result = call(backend, generator)
    precision_record(job, backend)
    return result


def generate_with(job: AnsweringJob, prompts: list[Messages], *, max_new_tokens: int) -> list[Completion]:
    """One batched call of the job's recorded generator for ``prompts``: its sampling
    settings, with the job's token cap and seed."""

    def generate(backend: Backend, generator: Generator) -> list[Completion]:
        params = DecodingParams(
            max_new_tokens=max_new_tokens,
            temperature=generator.temperature,
            top_p=generator.top_p,
            seed=job.seed,
            repetition_penalty=generator.repetition_penalty,
        )
        return backend.generate(prompts, params)

    return with_recorded_backend(job, generate)


def score_with(job: AnsweringJob, questions: list[tuple[Messages, str, list[str]]]) -> list[OptionScores]:
    """Score ``questions`` ((prompt, answer prefix, options), any number per row) with the
    job's recorded generator in one call, in order. Raises ``ScoringUnavailable``, changing
    nothing, when the backend cannot score, so the caller can answer the same rows as text."""

    def score(backend: Backend, generator: Generator) -> list[OptionScores]:
        return backend.score([q[0] for q in questions], [q[1] for q in questions], [q[2] for q in questions])

    return with_recorded_backend(job, score)


TEXT_FALLBACK = "the server returned no log-probabilities; answers were parsed as text"


def fallback_record(job: models.Model, note: str = TEXT_FALLBACK) -> None:
    """Note on ``job`` (its ``fallback`` field) that some of its answers were parsed as text."""
    type(job)._default_manager.filter(pk=job.pk, fallback="").update(fallback=note[:200])


def answer_mode_check(answer_mode: str) -> None:
    """Raise GenerationError for an answer mode that is neither likelihood nor text."""
    if answer_mode not in AnswerMode.values:
        raise GenerationError(f"unknown answer mode {answer_mode!r}; choose {' or '.join(AnswerMode.values)}")


def answer_in_mode(job: AnsweringJob, *, by_likelihood: Callable[[], None], by_text: Callable[[], None]) -> None:
    """Answer a chunk in ``job.answer_mode``: by likelihood, or as text where the job asks for
    text or its backend cannot score (noted on the job with ``fallback_record``)."""
    if job.answer_mode == AnswerMode.LIKELIHOOD:
        try:
            by_likelihood()
            return
        except ScoringUnavailable:
            fallback_record(job)
    by_text()
