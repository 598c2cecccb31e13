"""The one seam through which services enqueue Celery tasks: by the task's registered name.

A service that imported its app's ``tasks`` module would close an import cycle (tasks call
services), so services name the task instead. Each app's ``AppConfig.ready`` imports its
``tasks`` module, so every name is registered before a request or a worker can enqueue.
"""

from typing import Any

from celery import Task, current_app


def task_named(name: str) -> Task:
    """The registered task ``name`` (a KeyError names a task that no app defines)."""
    return current_app.tasks[name]


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Send task ``name`` once the current transaction commits (at once outside one), so a
    worker never looks for a row that is not visible yet, and a rollback sends nothing."""
    # delay_on_commit comes from Celery's DjangoTask, the task class under Django.
    task_named(name).delay_on_commit(*args)  # type: ignore[attr-defined]


def enqueue_now(name: str, *args: Any) -> None:
    """Send task ``name`` now: for requeueing rows that are already committed."""
    task_named(name).delay(*args)
