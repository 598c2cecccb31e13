"""What the chunked LLM jobs (judge runs, attribute probes) share: rows that fail together
and the chunks that still have work."""

from __future__ import annotations

from typing import Any

from django.db import models

from explanations.llm import Messages


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
