"""The generated secret key of an embedded install, kept in one file that only its owner reads."""

import os
import secrets
import time
from pathlib import Path


def secret_key_from_file(key_file: Path, *, variable: str = "DJANGO_SECRET_KEY", wait_seconds: float = 5.0) -> str:
    """Return the key stored in ``key_file``, creating the file first if there is none.

    The file is created with ``O_CREAT | O_EXCL`` and mode 600 in one call, so it is never
    readable by others, not even between a write and a chmod. When several processes start
    at once (web workers, a Celery worker) exactly one creates the file and every process
    returns that one's key: a process that finds the file already there reads it, waiting up
    to ``wait_seconds`` for the creator to finish writing. ``variable`` is the environment
    variable that supplies the key instead, named in the error for a file left empty.
    """
    key = secrets.token_urlsafe(50)
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(key_file, variable, wait_seconds)
    with os.fdopen(descriptor, "w") as file:
        file.write(key)
    return key


def _read_key(key_file: Path, variable: str, wait_seconds: float) -> str:
    # The creator's open and write are two calls: an empty file is one still being written.
    deadline = time.monotonic() + wait_seconds
    while not (key := key_file.read_text().strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{key_file} is empty: delete it, or set {variable}")
        time.sleep(0.01)
    return key
