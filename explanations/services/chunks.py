"""What the chunked LLM jobs (generation, judge runs, attribute probes) share: rows that fail
together, the chunks that still have work, the precision their model ran in, and the fallback
from likelihood to text answers. A chunk's model is the one its job recorded when it started
(``lineage_generator``), never the generator row as it is now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import models

from explanations.llm import (
    Backend,
    BackendError,
    Completion,
    DecodingParams,
    Messages,
    OptionScores,
    ScoringUnavailable,
    load_backend,
)
from explanations.models import AnswerMode, AttributeProbe, Generator, JudgeRun
from explanations.services.generators import GenerationError, generator_spec, lineage_generator

T = TypeVar("T")


def fail_pending(model: type[models.Model], rows: list[Any], prompts: list[Messages], error: str) -> None:
    """Mark each row FAILED with ``error`` and its prompt, but only while it is still PENDING
    (a concurrent delivery of the same chunk may have finished it)."""
    for row, prompt in zip(rows, prompts, strict=True):
        model._default_manager.filter(pk=row.pk, status="pending").update(
            status="failed", prompt=prompt, error=error[:2000], attempts=row.attempts + 1
        )


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


def pending_chunks(rows: models.QuerySet[Any]) -> list[int]:
    """The chunk numbers that still have PENDING rows, in order."""
    return sorted(set(rows.filter(status="pending").values_list("chunk", flat=True)))


def _call_or_fail(
    job: JudgeRun | AttributeProbe,
    model: type[models.Model],
    rows: list[Any],
    prompts: list[Messages],
    call: Callable[[Backend, Generator], T],
    after_failure: Callable[[], None],
) -> T | None:
    """``call`` on the backend of the generator ``job`` recorded (``lineage_generator``), with
    that generator; the precision it ran in is recorded on ``job``. ``ScoringUnavailable``
    passes through with nothing changed. On any other backend failure (a job without a
    record too) the rows are FAILED, ``after_failure`` runs and None is returned; anything
    unexpected does the same and is re-raised."""
    try:
        generator = lineage_generator(job)
        backend = load_backend(generator_spec(generator))
        result = call(backend, generator)
    except ScoringUnavailable:
        raise
    except (BackendError, GenerationError) as exc:
        fail_pending(model, rows, prompts, str(exc))
        after_failure()
        return None
    except Exception as exc:
        fail_pending(model, rows, prompts, f"internal error: {exc!r}")
        after_failure()
        raise
    precision_record(job, backend)
    return result


def generate_or_fail(
    job: JudgeRun | AttributeProbe,
    model: type[models.Model],
    rows: list[Any],
    prompts: list[Messages],
    *,
    max_new_tokens: int,
    seed: int,
    after_failure: Callable[[], None],
) -> list[Completion] | None:
    """One batched call of the job's recorded generator for ``prompts`` (its sampling
    settings, the job's token cap and seed); failures as in ``_call_or_fail``."""

    def generate(backend: Backend, generator: Generator) -> list[Completion]:
        params = DecodingParams(
            max_new_tokens=max_new_tokens,
            temperature=generator.temperature,
            top_p=generator.top_p,
            seed=seed,
            repetition_penalty=generator.repetition_penalty,
        )
        return backend.generate(prompts, params)

    return _call_or_fail(job, model, rows, prompts, generate, after_failure)


TEXT_FALLBACK = "the server returned no log-probabilities; answers were parsed as text"


def fallback_record(job: models.Model, note: str = TEXT_FALLBACK) -> None:
    """Note on ``job`` (its ``fallback`` field) that some of its answers were parsed as text."""
    type(job)._default_manager.filter(pk=job.pk, fallback="").update(fallback=note[:200])


def answer_mode_check(answer_mode: str) -> None:
    """Raise GenerationError for an answer mode that is neither likelihood nor text."""
    if answer_mode not in AnswerMode.values:
        raise GenerationError(f"unknown answer mode {answer_mode!r}; choose {' or '.join(AnswerMode.values)}")


def answer_in_mode(
    job: JudgeRun | AttributeProbe, *, by_likelihood: Callable[[], None], by_text: Callable[[], None]
) -> None:
    """Answer a chunk in ``job.answer_mode``: by likelihood, or as text where the job asks for
    text or its backend cannot score (noted on the job with ``fallback_record``)."""
    if job.answer_mode == AnswerMode.LIKELIHOOD:
        try:
            by_likelihood()
            return
        except ScoringUnavailable:
            fallback_record(job)
    by_text()


def score_or_fail(
    job: JudgeRun | AttributeProbe,
    model: type[models.Model],
    rows: list[Any],
    prompts: list[Messages],
    *,
    questions: list[tuple[Messages, str, list[str]]],
    after_failure: Callable[[], None],
) -> list[OptionScores] | None:
    """Score ``questions`` ((prompt, answer prefix, options), any number per row) with the
    job's recorded generator in one call, in order. Raises ``ScoringUnavailable`` and changes nothing when
    the backend cannot score, so the caller can answer the same rows as text; other failures as
    in ``_call_or_fail``."""

    def score(backend: Backend, generator: Generator) -> list[OptionScores]:
        return backend.score([q[0] for q in questions], [q[1] for q in questions], [q[2] for q in questions])

    return _call_or_fail(job, model, rows, prompts, score, after_failure)
