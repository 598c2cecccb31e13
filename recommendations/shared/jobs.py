"""The ``Job`` base model: what every worker-run row of every app shares.

It lives in the bottom layer (``recommendations.shared``) because all three apps subclass
it; a module of its own, so that importing it pulls in no app's models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Self

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone


class Job(models.Model):
    """What every long-running, worker-run row shares: status, progress, outcome, timings.

    Only a PENDING row is ever claimed (``claim_pending``), which makes the tasks that run
    jobs idempotent: a second delivery finds the row RUNNING or finished and does nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    phase = models.CharField(max_length=200, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @classmethod
    def claim_pending(cls, pk: int) -> Self | None:
        """Mark row ``pk`` RUNNING and return it, or None if it is gone or not PENDING.

        The row lock (PostgreSQL; SQLite serialises writers anyway) makes two workers that
        receive the same task race safely: only one sees PENDING.
        """
        with transaction.atomic():
            job = cls._default_manager.select_for_update(skip_locked=True).filter(pk=pk).first()
            if job is None or job.status != cls.Status.PENDING:
                return None
            job.status, job.started_at, job.error = cls.Status.RUNNING, timezone.now(), ""
            job.save(update_fields=["status", "started_at", "error"])
            return job

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(99, int(100 * self.progress_done / self.progress_total))

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def report_progress(self, phase: str, done: int, total: int) -> None:
        self.phase, self.progress_done, self.progress_total = phase[:200], done, total
        self.save(update_fields=["phase", "progress_done", "progress_total"])

    def throttled_progress(self, every_seconds: float = 0.5) -> Callable[..., None]:
        """A ``(phase, done=0, total=0)`` callback that saves progress at most every
        ``every_seconds``, but always at a phase's start and end, so a tight loop can call it."""
        last = 0.0

        def report(phase: str, done: int = 0, total: int = 0) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= every_seconds or done in (0, total):
                last = now
                self.report_progress(phase, done, total)

        return report

    def mark_failed(self, error: str) -> None:
        self.status, self.error, self.finished_at = self.Status.FAILED, error, timezone.now()
        self.save(update_fields=["status", "error", "finished_at"])
