"""Text metrics as a worker job: requested for a run (and an optional reference run), computed
once per version of the explanations they read, read back by reports."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from explanations.models import Explanation, GenerationRun, TextMetrics


def text_metrics_version(run_ids: Sequence[int]) -> str:
    """A fingerprint of the explanations of ``run_ids``: changes when any is added, changed
    (regenerated) or removed. One query."""
    parts = Explanation.objects.filter(generation_run__in=run_ids).aggregate(
        n=Count("id"), done=Count("id", filter=Q(status=Explanation.Status.DONE)), last=Max("generated_at")
    )
    return hashlib.sha256(repr((sorted(run_ids), parts)).encode()).hexdigest()


def text_metrics_request(
    *,
    run: GenerationRun,
    reference_run: GenerationRun | None = None,
    embeddings: bool = True,
    created_by: Any = None,
    enqueue: bool = True,
) -> TextMetrics:
    """The text metrics row of ``run`` for its current explanations, created and enqueued on
    the default queue (after commit) when there is none.

    There is one row per run, reference run, ``embeddings`` and version of the inputs (a
    unique constraint settles two requests at once). It is returned as it is, except that
    a RUNNING row not finished ``XREC_TEXT_METRICS_STALE_SECONDS`` after it started (its
    worker was lost) and a FAILED row that failed over ``XREC_TEXT_METRICS_RETRY_SECONDS``
    ago go back to PENDING and are enqueued again.
    """
    from explanations.tasks import text_metrics_run_task

    ids = [run.pk] + ([reference_run.pk] if reference_run is not None else [])
    key = {
        "generation_run": run,
        "reference_run": reference_run,
        "embeddings": embeddings,
        "inputs_version": text_metrics_version(ids),
    }
    now = timezone.now()
    with transaction.atomic():
        current = _locked(key)
        if current is None:
            try:
                with transaction.atomic():
                    current = TextMetrics.objects.create(created_by=created_by, **key)
            except IntegrityError:  # another request created it first
                current = TextMetrics.objects.select_for_update().get(**key)
            else:
                if enqueue:
                    text_metrics_run_task.delay_on_commit(current.pk)  # type: ignore[attr-defined]
                return current
        lost = (
            current.status == TextMetrics.Status.RUNNING
            and current.started_at is not None
            and (current.started_at < now - timedelta(seconds=settings.XREC_TEXT_METRICS_STALE_SECONDS))
        )
        retry = (
            current.status == TextMetrics.Status.FAILED
            and current.finished_at is not None
            and (current.finished_at < now - timedelta(seconds=settings.XREC_TEXT_METRICS_RETRY_SECONDS))
        )
        if lost or retry:
            current.status, current.started_at, current.finished_at = TextMetrics.Status.PENDING, None, None
            current.error = ""
            current.save(update_fields=["status", "started_at", "finished_at", "error"])
            if enqueue:
                text_metrics_run_task.delay_on_commit(current.pk)  # type: ignore[attr-defined]
    return current


def _locked(key: dict[str, Any]) -> TextMetrics | None:
    """The row for ``key``, locked for this transaction, or None."""
    return TextMetrics.objects.select_for_update().filter(**key).first()


def text_metrics_run(*, metrics_id: int) -> None:
    """Compute a PENDING row's metrics. Idempotent: any other status is left alone."""
    from explanations.textmetrics import generation_run_text_metrics

    job = TextMetrics.claim_pending(metrics_id)
    if job is None:
        return
    job.report_progress("reading explanations and computing", 0, 1)
    try:
        result = generation_run_text_metrics(
            job.generation_run, reference_run=job.reference_run, embeddings=job.embeddings
        )
    except Exception as exc:
        job.mark_failed(f"internal error: {exc!r}")
        raise
    job.metrics, job.status, job.finished_at = result, TextMetrics.Status.SUCCEEDED, timezone.now()
    job.phase, job.progress_done = f"{result['n']} explanations", 1
    job.save(update_fields=["metrics", "status", "finished_at", "phase", "progress_done"])


def text_metrics_requeue_stalled() -> int:
    """Enqueue every PENDING row again (its message may have been lost); return how many.
    Duplicates are harmless: only a PENDING row is ever claimed."""
    from explanations.tasks import text_metrics_run_task

    pending = list(TextMetrics.objects.filter(status=TextMetrics.Status.PENDING).values_list("pk", flat=True))
    for pk in pending:
        text_metrics_run_task.delay(pk)
    return len(pending)
