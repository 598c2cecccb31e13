"""The one engine for the explanations app's long jobs: every job's life, written once.

A job kind supplies only what is its own; the engine owns everything else.

``ChunkedKind``: a job made of rows (generation runs, judge runs, attribute probes). Starting
writes every row up front as PENDING with its chunk number (``write_rows``), and one task
per chunk is enqueued after commit. A chunk task (``run_chunk``) takes the chunk's rows that
are still PENDING, builds their prompts (the kind's ``prompts``) and answers them in one
batched call (the kind's ``process``, which writes each row with ``complete``). Every write
is conditional on the row still being PENDING, so a chunk delivered twice, or picked up again
after its worker died, never answers a row twice. A backend failure marks the chunk's rows
FAILED with the error (retryable); anything unexpected does the same and is re-raised. The
job SUCCEEDS once no row is PENDING; failed rows are counted, not fatal.

``UnitKind``: a job that is one piece of work (text metrics). Only a PENDING row is claimed
(``Job.claim_pending``), and its result is written only while it is still RUNNING, so a
cancel during the work wins.

Both kinds cancel, resume and retry the same way (``act``), from the pages and the API, and
``requeue_all`` enqueues again, when a worker starts, whatever a lost worker left pending.
A new kind is a module that builds one of these and passes it to ``register``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import models, transaction
from django.db.models import Count, Q
from django.utils import timezone

from explanations.llm import BackendError, Messages
from explanations.models import ChunkedJob
from explanations.services.generators import GenerationError
from recommendations.shared.bulk import insert_rows
from recommendations.shared.jobs import Job
from recommendations.shared.queue import enqueue_now, enqueue_on_commit

# Row statuses: every row model of a chunked job has these three.
PENDING, DONE, FAILED = "pending", "done", "failed"
ACTIONS = ("cancel", "resume", "retry")
K = TypeVar("K", bound="Kind")


class JobActionRefused(Exception):
    """An action that the job's status does not allow (resuming a job that is not cancelled)."""


@dataclass(frozen=True, kw_only=True)
class Kind(ABC):
    """What every kind of job has: a name, its model and the Celery task that runs it."""

    name: str  # short and stable: URL names and the API use it ("run", "judge", ...)
    label: str  # what a person calls one job: "judge run"
    job_model: type[Job]
    task: str  # the registered Celery task name

    def get(self, job_id: int) -> Any:
        return self.job_model._default_manager.filter(pk=job_id).first()

    def act(self, job: Job, action: str) -> Job:
        """Cancel, resume or retry ``job``; raise ``JobActionRefused`` when its status (read
        again, not as the caller saw it) does not allow that. Returns the job as it is now."""
        if action not in ACTIONS:
            raise JobActionRefused(f"unknown action {action!r}")
        job.refresh_from_db()
        done = getattr(self, action)(job)
        job.refresh_from_db()
        if not done:
            verb = {"cancel": "cancelled", "resume": "resumed", "retry": "retried"}[action]
            raise JobActionRefused(f"a {job.get_status_display().lower()} {self.label} cannot be {verb}")
        return job

    @abstractmethod
    def cancel(self, job: Job) -> bool: ...

    @abstractmethod
    def resume(self, job: Job) -> bool: ...

    @abstractmethod
    def retry(self, job: Job) -> bool: ...

    @abstractmethod
    def requeue_stalled(self) -> int: ...

    @abstractmethod
    def actions(self, job: Job, counts: dict[str, int]) -> list[tuple[str, str]]: ...


@dataclass(frozen=True, kw_only=True)
class ChunkedKind(Kind):
    """A job whose rows are answered in chunks; see the module docstring."""

    job_model: type[ChunkedJob]
    row_model: type[models.Model]
    job_field: str  # the rows' foreign key to the job
    done_at: str  # the row's timestamp field, set when it is answered
    blank: dict[str, Any]  # every other column of a fresh row (COPY writes no model default)
    prompts: Callable[[Any, list[Any]], list[Messages]]
    process: Callable[[Any, list[Any], list[Messages]], None]
    summary: Callable[[dict[str, int]], str]  # the finished job's phase, from ``counts``
    extra_counts: dict[str, Q] = field(default_factory=dict)
    job_related: tuple[str, ...] = ()
    row_related: tuple[str, ...] = ()

    def rows(self, job: Job) -> models.QuerySet[Any]:
        return self.row_model._default_manager.filter(**{f"{self.job_field}_id": job.pk})

    def write_rows(
        self,
        job: ChunkedJob,
        columns: Sequence[str],
        values: Sequence[tuple[Any, ...]],
        *,
        chunk_size: int,
        enqueue: bool,
    ) -> None:
        """Write one PENDING row per ``values`` entry (``columns`` of it), ``chunk_size`` to a
        chunk, set the job's totals, and enqueue every chunk after commit (``enqueue=False``:
        the caller runs the chunks itself, as the demo and benchmarks do in one process).
        A job with no row finishes at once."""
        blank = list(self.blank.values())
        with transaction.atomic():
            insert_rows(
                self.row_model,
                [self.job_field, *columns, "chunk", "status", *self.blank],
                ((job.pk, *value, index // chunk_size, PENDING, *blank) for index, value in enumerate(values)),
            )
            self.job_model._default_manager.filter(pk=job.pk).update(n_total=len(values), progress_total=len(values))
            job.n_total = job.progress_total = len(values)
            for chunk in range(-(-len(values) // chunk_size) if enqueue else 0):
                enqueue_on_commit(self.task, job.pk, chunk)
            if not values:
                self.finish_if_done(job)

    def run_chunk(self, job_id: int, chunk: int) -> None:
        """Answer the still-PENDING rows of ``chunk``; see the module docstring. Returns
        quietly for a missing, cancelled or finished job."""
        job = self.job_model._default_manager.select_related(*self.job_related).filter(pk=job_id).first()
        if job is None or job.status != Job.Status.RUNNING or job.cancel_requested:
            return
        rows = list(self.rows(job).filter(chunk=chunk, status=PENDING).select_related(*self.row_related).order_by("id"))
        if rows:
            prompts = self.prompts(job, rows)
            try:
                self.process(job, rows, prompts)
            except (BackendError, GenerationError) as exc:
                self.fail(rows, prompts, str(exc))
            except Exception as exc:
                self.fail(rows, prompts, f"internal error: {exc!r}")
                self.finish_if_done(job)
                raise
        self.finish_if_done(job)

    def run_here(self, job: ChunkedJob) -> None:
        """Run every chunk of ``job`` in this process, in order, and reload it: for jobs
        started with ``enqueue=False`` (the demo, the study command, the benchmarks)."""
        for chunk in self.pending_chunks(job):
            self.run_chunk(job.pk, chunk)
        job.refresh_from_db()

    def complete(self, answered: Iterable[tuple[Any, dict[str, Any]]]) -> None:
        """Write each (row, fields) as DONE, in one transaction, but only while the row is
        still PENDING (a concurrent delivery of the same chunk may have written it)."""
        now = timezone.now()
        manager = self.row_model._default_manager
        with transaction.atomic():
            for row, fields in answered:
                manager.filter(pk=row.pk, status=PENDING).update(
                    status=DONE, error="", attempts=row.attempts + 1, **{self.done_at: now}, **fields
                )

    def fail(self, rows: Sequence[Any], prompts: Sequence[Messages], error: str) -> None:
        """Mark each row FAILED with ``error`` and its prompt, while it is still PENDING."""
        manager = self.row_model._default_manager
        for row, prompt in zip(rows, prompts, strict=True):
            manager.filter(pk=row.pk, status=PENDING).update(
                status=FAILED, prompt=prompt, error=error[:2000], attempts=row.attempts + 1
            )

    def counts(self, job: Job) -> dict[str, int]:
        """Rows finished (done or failed), pending, done, failed, and the kind's own counts."""
        return self.rows(job).aggregate(
            finished=Count("id", filter=~Q(status=PENDING)),
            pending=Count("id", filter=Q(status=PENDING)),
            done=Count("id", filter=Q(status=DONE)),
            failed=Count("id", filter=Q(status=FAILED)),
            **{name: Count("id", filter=condition) for name, condition in self.extra_counts.items()},
        )

    def finish_if_done(self, job: Job) -> None:
        """Save the progress; a RUNNING job with no PENDING row has SUCCEEDED."""
        counts = self.counts(job)
        manager = self.job_model._default_manager
        manager.filter(pk=job.pk).update(progress_done=counts["finished"])
        if counts["pending"]:
            return
        manager.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.SUCCEEDED, finished_at=timezone.now(), phase=self.summary(counts)[:200]
        )

    def pending_chunks(self, job: Job) -> list[int]:
        return sorted(set(self.rows(job).filter(status=PENDING).values_list("chunk", flat=True)))

    def enqueue_pending(self, job: Job) -> int:
        """Enqueue (after commit) every chunk that still has a PENDING row; return how many."""
        chunks = self.pending_chunks(job)
        for chunk in chunks:
            enqueue_on_commit(self.task, job.pk, chunk)
        return len(chunks)

    def cancel(self, job: Job) -> bool:
        """Stop a RUNNING job: chunks not yet started return at once; answered rows stay."""
        return bool(
            self.job_model._default_manager.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
            )
        )

    def resume(self, job: Job) -> bool:
        """Continue a CANCELLED job from its PENDING rows."""
        with transaction.atomic():
            resumed = self.job_model._default_manager.filter(pk=job.pk, status=Job.Status.CANCELLED).update(
                status=Job.Status.RUNNING, cancel_requested=False, finished_at=None
            )
            if resumed and not self.enqueue_pending(job):
                self.finish_if_done(job)
        return bool(resumed)

    def retry(self, job: Job) -> bool:
        """Put a finished (succeeded or cancelled) job's FAILED rows back to PENDING and run
        the job again; unparsed answers are DONE, not FAILED, and are not retried."""
        with transaction.atomic():
            finished = (Job.Status.SUCCEEDED, Job.Status.CANCELLED)
            locked = self.job_model._default_manager.select_for_update().filter(pk=job.pk, status__in=finished)
            if not locked.exists():
                return False
            if not self.rows(job).filter(status=FAILED).update(status=PENDING, error=""):
                return False
            locked.update(status=Job.Status.RUNNING, cancel_requested=False, finished_at=None)
            self.enqueue_pending(job)
        return True

    def requeue_stalled(self) -> int:
        """Enqueue every chunk with PENDING rows of every RUNNING job; return how many.

        Run when a worker starts: a chunk whose worker died mid-batch was already taken off
        a broker without redelivery (the filesystem transport), or its redelivery is hours
        away (Redis' visibility timeout). Duplicates are harmless: chunks are idempotent.
        """
        running = self.job_model._default_manager.filter(status=Job.Status.RUNNING, cancel_requested=False)
        return sum(self.enqueue_pending(job) for job in running)

    def actions(self, job: Job, counts: dict[str, int]) -> list[tuple[str, str]]:
        """The (action, button label) pairs the job's page offers now."""
        offered = []
        if job.status == Job.Status.RUNNING:
            offered.append(("cancel", "Cancel"))
        if job.status == Job.Status.CANCELLED:
            offered.append(("resume", "Resume"))
        if counts.get("failed") and job.status in (Job.Status.SUCCEEDED, Job.Status.CANCELLED):
            offered.append(("retry", f"Retry {counts['failed']} failed"))
        return offered


@dataclass(frozen=True, kw_only=True)
class UnitKind(Kind):
    """A job that is one piece of work: ``process`` returns the fields of its result."""

    process: Callable[[Any], dict[str, Any]]
    phase: str  # shown while it runs
    summary: Callable[[Any], str]  # the finished job's phase

    def enqueue(self, job: Job) -> None:
        enqueue_on_commit(self.task, job.pk)

    def run(self, job_id: int) -> None:
        """Claim a PENDING job, do the work and write the result while it is still RUNNING.
        Idempotent: any other status is left alone. Anything raised fails the job and is
        re-raised."""
        job = self.job_model.claim_pending(job_id)
        if job is None:
            return
        job.report_progress(self.phase, 0, 1)
        running = self.job_model._default_manager.filter(pk=job.pk, status=Job.Status.RUNNING)
        try:
            result = self.process(job)
        except Exception as exc:
            running.update(status=Job.Status.FAILED, error=f"internal error: {exc!r}", finished_at=timezone.now())
            raise
        for name, value in result.items():
            setattr(job, name, value)
        running.update(
            **result,
            status=Job.Status.SUCCEEDED,
            finished_at=timezone.now(),
            phase=self.summary(job)[:200],
            progress_done=1,
        )

    def _reopen(self, job: Job, *statuses: str) -> bool:
        """Put the job back to PENDING from one of ``statuses`` and enqueue it after commit."""
        with transaction.atomic():
            reopened = self.job_model._default_manager.filter(pk=job.pk, status__in=statuses).update(
                status=Job.Status.PENDING, started_at=None, finished_at=None, error=""
            )
            if reopened:
                self.enqueue(job)
        return bool(reopened)

    def cancel(self, job: Job) -> bool:
        """Stop a PENDING or RUNNING job; a worker already at it finishes but writes nothing."""
        return bool(
            self.job_model._default_manager.filter(
                pk=job.pk, status__in=(Job.Status.PENDING, Job.Status.RUNNING)
            ).update(status=Job.Status.CANCELLED, finished_at=timezone.now())
        )

    def resume(self, job: Job) -> bool:
        """Run a CANCELLED job again from the start."""
        return self._reopen(job, Job.Status.CANCELLED)

    def retry(self, job: Job) -> bool:
        """Run a FAILED job again."""
        return self._reopen(job, Job.Status.FAILED)

    def requeue_stalled(self) -> int:
        """Enqueue every PENDING job now (its message may have been lost); return how many.
        Duplicates are harmless: only a PENDING job is ever claimed."""
        pending = list(self.job_model._default_manager.filter(status=Job.Status.PENDING).values_list("pk", flat=True))
        for pk in pending:
            enqueue_now(self.task, pk)
        return len(pending)

    def actions(self, job: Job, counts: dict[str, int]) -> list[tuple[str, str]]:
        offered = []
        if job.status in (Job.Status.PENDING, Job.Status.RUNNING):
            offered.append(("cancel", "Cancel"))
        if job.status == Job.Status.CANCELLED:
            offered.append(("resume", "Resume"))
        if job.status == Job.Status.FAILED:
            offered.append(("retry", "Retry"))
        return offered


KINDS: dict[str, Kind] = {}


def register(kind: K) -> K:
    """Add ``kind`` to ``KINDS`` (pages, API and ``requeue_all`` find it there)."""
    KINDS[kind.name] = kind
    return kind


def requeue_all() -> dict[str, int]:
    """``requeue_stalled`` for every registered kind: what a starting worker runs."""
    return {name: kind.requeue_stalled() for name, kind in KINDS.items()}
