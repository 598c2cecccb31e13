"""Tasks reach the queue their name routes them to, and only that queue."""

import pytest

from xrec_site.celery import app


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("recommendations.import_job_run", "default"),
        ("explanations.generate_chunk", "gpu"),
        ("explanations.train_adapter", "gpu"),
        ("annotation.export_campaign", "default"),
        ("annotation.routing_refresh", "default"),
    ],
)
def test_tasks_are_routed_by_name(task: str, queue: str) -> None:
    route = app.amqp.router.route({}, task)

    assert route["queue"].name == queue
    # The exchange delivers by routing key: each queue's key must be its own.
    bound = [q.name for q in app.amqp.queues.values() if q.routing_key == route["queue"].routing_key]
    assert bound == [queue]


def test_import_task_is_registered_under_its_name() -> None:
    app.loader.import_default_modules()

    assert "recommendations.import_job_run" in app.tasks
