"""Celery entry points of the recommendations app (all on the ``default`` queue)."""

from celery import shared_task

from recommendations.services import import_job_run


@shared_task(name="recommendations.import_job_run")
def import_job_run_task(job_id: int) -> None:
    """Run import job ``job_id``. Idempotent: a job that is not PENDING is left alone."""
    import_job_run(job_id=job_id)
