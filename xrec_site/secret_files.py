"""Secrets an embedded install generates once and keeps in files that only their owner reads
(``var/secret_key``, and any other secret that must survive restarts)."""

import os
import secrets
import time
from pathlib import Path


def secret_file(path: Path, *, wait_seconds: float = 5.0) -> str:
    """Return the secret stored in ``path``, creating the file with a new secret if there is none.

    The file is created with ``O_CREAT | O_EXCL`` and mode 600 in one call, so it is never
    readable by others, not even between a write and a chmod. When several processes start
    at once (web workers, a Celery worker) exactly one creates the file and every process
    returns that one's secret: a process that finds the file already there reads it, waiting
    up to ``wait_seconds`` for the creator to finish writing.
    """
    secret = secrets.token_urlsafe(50)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path, wait_seconds)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret)
    return secret


def _read_secret(path: Path, wait_seconds: float) -> str:
    # The creator's open and write are two calls: an empty file is one still being written.
    deadline = time.monotonic() + wait_seconds
    while not (secret := path.read_text().strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} is empty (its creator stopped before writing): delete it for a new secret")
        time.sleep(0.01)
    return secret
