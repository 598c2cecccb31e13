"""What the chunked LLM jobs (judge runs, attribute probes) share: rows that fail together
and the chunks that still have work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models

from explanations.llm import BackendError, Completion, DecodingParams, Messages, load_backend
from explanations.models import Generator
from explanations.services.generators import GenerationError, generator_spec


def fail_pending(model: type[models.Model], rows: list[Any], prompts: list[Messages], error: str) -> None:
    """Mark each row FAILED with ``error`` and its prompt, but only while it is still PENDING
    (a concurrent delivery of the same chunk may have finished it)."""
    for row, prompt in zip(rows, prompts, strict=True):
        model._default_manager.filter(pk=row.pk, status="pending").update(
            status="failed", prompt=prompt, error=error[:2000], attempts=row.attempts + 1
        )


def pending_chunks(rows: models.QuerySet[Any]) -> list[int]:
    """The chunk numbers that still have PENDING rows, in order."""
    return sorted(set(rows.filter(status="pending").values_list("chunk", flat=True)))


def generate_or_fail(
    model: type[models.Model],
    rows: list[Any],
    prompts: list[Messages],
    generator: Generator,
    *,
    max_new_tokens: int,
    seed: int,
    after_failure: Callable[[], None],
) -> list[Completion] | None:
    """One batched call of ``generator`` for ``prompts`` (its sampling settings, the job's
    token cap and seed). On a backend failure the rows are FAILED, ``after_failure`` runs and
    None is returned; anything unexpected does the same and is re-raised."""
    params = DecodingParams(
        max_new_tokens=max_new_tokens,
        temperature=generator.temperature,
        top_p=generator.top_p,
        seed=seed,
        repetition_penalty=generator.repetition_penalty,
    )
    try:
        return load_backend(generator_spec(generator)).generate(prompts, params)
    except (BackendError, GenerationError) as exc:
        fail_pending(model, rows, prompts, str(exc))
        after_failure()
        return None
    except Exception as exc:
        fail_pending(model, rows, prompts, f"internal error: {exc!r}")
        after_failure()
        raise
