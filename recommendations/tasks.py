"""Celery entry points of the recommendations app (all on the ``default`` queue)."""

from celery import shared_task

from recommendations.services import import_job_run
from recommendations.services.training import recommender_run_execute


@shared_task(name="recommendations.import_job_run")
def import_job_run_task(job_id: int) -> None:
    """Run import job ``job_id``. Idempotent: a job that is not PENDING is left alone."""
    import_job_run(job_id=job_id)


@shared_task(name="recommendations.recommender_run_execute")
def recommender_run_execute_task(run_id: int) -> None:
    """Train, evaluate and rank for run ``run_id``. Idempotent: only a PENDING run is run."""
    recommender_run_execute(run_id=run_id)
