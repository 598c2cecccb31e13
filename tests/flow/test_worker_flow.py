"""Import jobs run end to end through a real Celery worker on this configuration's broker."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from recommendations.models import Dataset, ImportJob, Interaction
from recommendations.services import import_job_start
from tests.conftest import table_counts, wait_for
from tests.factories import UserFactory
from xrec_site.roles import ADMIN

pytestmark = pytest.mark.flow


def _finished(job: ImportJob) -> ImportJob | None:
    job.refresh_from_db()
    return job if job.is_terminal else None


def test_worker_imports_movielens_100k_and_reports_failures(celery_worker_process) -> None:
    admin = UserFactory(role=ADMIN)

    job = import_job_start(created_by=admin, format="movielens-100k", name="ml-100k")
    wait_for(lambda: _finished(job))

    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.started_at is not None and job.finished_at is not None
    dataset = Dataset.objects.get(name="ml-100k")
    assert (dataset.n_users, dataset.n_items, dataset.n_interactions) == (943, 1682, 100_000)
    assert Interaction.objects.filter(dataset=dataset).count() == 100_000

    before = table_counts()
    bad = import_job_start(
        created_by=admin,
        format="csv",
        name="broken",
        uploads={"data": SimpleUploadedFile("r.csv", b"user,item,rating\na,b,4\na,b,4\n")},
    )
    wait_for(lambda: _finished(bad))

    assert bad.status == ImportJob.Status.FAILED
    assert "line 3: duplicate of line 2" in bad.error
    assert table_counts() == before


def test_the_report_asks_a_worker_for_text_metrics_and_joins_them(celery_worker_process) -> None:
    from annotation.study.report import study_report_cached
    from explanations.models import TextMetrics
    from tests.annotation.factories import explained_runs

    runs = explained_runs(n_users=4)
    waiting = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)
    assert [job["status"] for job in waiting["text_jobs"]] == ["pending", "pending"]

    finished = {TextMetrics.Status.SUCCEEDED, TextMetrics.Status.FAILED}
    wait_for(lambda: set(TextMetrics.objects.values_list("status", flat=True)) <= finished)
    assert set(TextMetrics.objects.values_list("status", flat=True)) == {TextMetrics.Status.SUCCEEDED}
    done = study_report_cached(recommender_run=runs[0].recommender_run, generation_runs=runs)
    assert done["text_jobs"] == [] and {metrics["n"] for metrics in done["text"].values()} == {4}
