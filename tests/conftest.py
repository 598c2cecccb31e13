from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from recommendations.models import Dataset, DatasetUser, Interaction, Item
from tests.factories import PASSWORD, UserFactory
from xrec_site.roles import ADMIN, ANNOTATOR, RESEARCHER


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The real hasher takes ~0.5 s a password on this machine; tests need no strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _private_cache(settings, tmp_path: Path):
    # Every test database starts its ids at 1, so a cache shared between tests could answer
    # one test with another's report: each test gets its own.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


@pytest.fixture(autouse=True)
def _private_dirs(settings, tmp_path: Path):
    settings.XREC_UPLOAD_DIR = tmp_path / "uploads"
    settings.XREC_MODEL_DIR = tmp_path / "models"


@pytest.fixture
def annotator(db):
    return UserFactory(username="ann", role=ANNOTATOR)


@pytest.fixture
def researcher(db):
    return UserFactory(username="res", role=RESEARCHER)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="adm", role=ADMIN)


def client_for(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def table_counts() -> dict[str, int]:
    """Row counts of every dataset table: a bad import must leave these unchanged."""
    return {model.__name__: model.objects.count() for model in (Dataset, Item, DatasetUser, Interaction)}


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database this test process uses (the test database)."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    auth = settings_dict["USER"] or ""
    if settings_dict.get("PASSWORD"):
        auth += f":{settings_dict['PASSWORD']}"
    host = settings_dict["HOST"] or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{settings_dict['NAME']}"


def start_worker(log_path: Path, env_overrides: dict[str, str]) -> Any:
    """Start `manage.py worker` on this configuration's broker; return once it is ready."""
    import os
    import subprocess
    import sys
    import time
    import uuid

    from django.conf import settings as django_settings

    env = os.environ | env_overrides
    ready_marks = log_path.read_bytes().count(b" ready.") if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--loglevel=INFO", f"--hostname=flow-{uuid.uuid4().hex[:8]}@%h"],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    # The log may hold an earlier worker's lines: wait for one more "ready." than it had.
    while log_path.read_bytes().count(b" ready.") == ready_marks:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    return process


def stop_worker(process: Any) -> None:
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def worker_env(transactional_db, settings) -> dict[str, str]:
    """What a worker process needs to share this test's database and folders."""
    from django.db import connection

    from xrec_site.celery import app

    app.control.purge()  # messages left by earlier runs would name rows that no longer exist
    return {
        "DATABASE_URL": database_url(connection.settings_dict),
        "XREC_UPLOAD_DIR": str(settings.XREC_UPLOAD_DIR),
        "XREC_MODEL_DIR": str(settings.XREC_MODEL_DIR),
    }


@pytest.fixture
def celery_worker_process(worker_env, tmp_path: Path):
    """A real `manage.py worker` process on this configuration's broker and the test database.

    Transactional tests commit, so the worker (a separate process and connection) sees
    what the test wrote, and on_commit enqueues at once.
    """
    process = start_worker(tmp_path / "worker.log", worker_env)
    yield process
    stop_worker(process)


def wait_for(predicate, timeout: float = 120, every: float = 0.25):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")
