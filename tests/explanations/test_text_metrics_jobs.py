"""Text metrics as worker jobs: one per version of the explanations read, idempotent, recoverable."""

from datetime import timedelta

import pytest
from django.utils import timezone

from explanations.models import Explanation, TextMetrics
from explanations.services.text_metrics import text_metrics_request, text_metrics_requeue_stalled, text_metrics_run
from tests.annotation.factories import explained_runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs():
    return explained_runs(n_users=3, n_runs=2)


def test_a_request_is_enqueued_once_and_computed_once(runs, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks() as enqueued:
        job = text_metrics_request(run=runs[0], embeddings=False)
        again = text_metrics_request(run=runs[0], embeddings=False)
    assert again.pk == job.pk and job.status == TextMetrics.Status.PENDING and len(enqueued) == 1

    text_metrics_run(metrics_id=job.pk)
    text_metrics_run(metrics_id=job.pk)  # a second delivery finds it finished and does nothing

    job.refresh_from_db()
    assert job.metrics is not None
    assert job.status == TextMetrics.Status.SUCCEEDED and job.metrics["n"] == 3 and job.percent == 100
    assert job.metrics["personalisation"] is None and job.metrics["reference"] is None
    assert text_metrics_request(run=runs[0], embeddings=False).pk == job.pk


def test_changed_explanations_need_new_metrics(runs) -> None:
    job = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)
    text_metrics_run(metrics_id=job.pk)
    regenerated = Explanation.objects.filter(generation_run=runs[0]).first()
    assert regenerated is not None
    Explanation.objects.filter(pk=regenerated.pk).update(
        text="A new text.", generated_at=timezone.now() + timedelta(seconds=5)
    )

    fresh = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)

    assert fresh.pk != job.pk and fresh.status == TextMetrics.Status.PENDING
    # Other runs' explanations are not this run's inputs.
    other = text_metrics_request(run=runs[1], embeddings=False, enqueue=False)
    text_metrics_run(metrics_id=other.pk)
    Explanation.objects.filter(generation_run=runs[0]).update(generated_at=timezone.now() + timedelta(seconds=9))
    assert text_metrics_request(run=runs[1], embeddings=False, enqueue=False).pk == other.pk


def test_a_reference_run_adds_overlap_metrics(runs) -> None:
    job = text_metrics_request(run=runs[0], reference_run=runs[1], embeddings=False, enqueue=False)
    text_metrics_run(metrics_id=job.pk)

    job.refresh_from_db()
    assert job.metrics is not None
    reference = job.metrics["reference"]
    assert reference["run"] == runs[1].pk and reference["n_pairs"] == 3 and 0 < reference["bleu"] < 100


def test_a_job_whose_worker_died_is_put_back_and_requeued(runs, django_capture_on_commit_callbacks) -> None:
    job = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)
    claimed = TextMetrics.claim_pending(job.pk)
    assert claimed is not None
    # An hour in, a large run's embeddings may still be computing: it is left alone.
    TextMetrics.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=1))
    assert text_metrics_request(run=runs[0], embeddings=False).status == TextMetrics.Status.RUNNING
    TextMetrics.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=5))

    with django_capture_on_commit_callbacks() as enqueued:
        again = text_metrics_request(run=runs[0], embeddings=False)

    assert again.pk == job.pk and again.status == TextMetrics.Status.PENDING and len(enqueued) == 1


def test_pending_jobs_are_sent_again_when_a_worker_starts(runs, monkeypatch) -> None:
    sent: list[int] = []
    monkeypatch.setattr("explanations.tasks.text_metrics_run_task.delay", sent.append)
    pending = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)
    done = text_metrics_request(run=runs[1], embeddings=False, enqueue=False)
    text_metrics_run(metrics_id=done.pk)

    assert text_metrics_requeue_stalled() == 1 and sent == [pending.pk]


def test_a_failure_is_kept_for_a_while_then_tried_again(runs, monkeypatch, django_capture_on_commit_callbacks) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("explanations.services.text_metrics.generation_run_text_metrics", broken)
    job = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)

    with pytest.raises(RuntimeError):
        text_metrics_run(metrics_id=job.pk)

    job.refresh_from_db()
    assert job.status == TextMetrics.Status.FAILED and "disk on fire" in job.error
    # Within the retry delay the report shows the failure instead of retrying at every view.
    assert text_metrics_request(run=runs[0], embeddings=False).status == TextMetrics.Status.FAILED
    TextMetrics.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(hours=1))

    with django_capture_on_commit_callbacks() as enqueued:
        again = text_metrics_request(run=runs[0], embeddings=False)

    assert again.pk == job.pk and again.status == TextMetrics.Status.PENDING and again.error == ""
    assert len(enqueued) == 1


def test_one_row_per_inputs_even_when_requests_race(runs, monkeypatch) -> None:
    first = text_metrics_request(run=runs[0], embeddings=False, enqueue=False)
    with_reference = text_metrics_request(run=runs[0], reference_run=runs[1], embeddings=False, enqueue=False)
    assert with_reference.pk != first.pk
    # A request that looked before another one's row was committed: its insert fails on the
    # unique constraint and it returns the other one's row.
    monkeypatch.setattr("explanations.services.text_metrics._locked", lambda key: None)

    assert text_metrics_request(run=runs[0], embeddings=False, enqueue=False).pk == first.pk
    assert text_metrics_request(run=runs[0], reference_run=runs[1], embeddings=False, enqueue=False).pk == (
        with_reference.pk
    )
    assert TextMetrics.objects.count() == 2
