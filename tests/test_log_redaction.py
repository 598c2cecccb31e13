"""No raw crowd id in any log: crowd link queries are dropped by the logging filter and by the
gunicorn logger that every launch uses (xrec_site.gunicorn_config)."""

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings
from gunicorn.config import Config

from tests.conftest import database_url
from xrec_site.log_redaction import RedactCrowdIds, RedactingGunicornLogger, redact_crowd_ids

PID = "5f1a2b3c4d5e6f7a8b9c0d1e"
CROWD_PATH = "/c/tok123/"
CROWD_QUERY = f"PROLIFIC_PID={PID}&STUDY_ID=st-1&SESSION_ID=se-1"


def test_a_crowd_link_keeps_its_path_and_loses_its_query() -> None:
    line = f'GET {CROWD_PATH}?{CROWD_QUERY} HTTP/1.1 "https://xrec.example.org{CROWD_PATH}?{CROWD_QUERY}"'

    redacted = redact_crowd_ids(line)

    assert PID not in redacted
    assert redacted == f'GET {CROWD_PATH}?[redacted] HTTP/1.1 "https://xrec.example.org{CROWD_PATH}?[redacted]"'
    assert redact_crowd_ids("GET /studies/?runs=1&runs=2 HTTP/1.1") == "GET /studies/?runs=1&runs=2 HTTP/1.1"


def test_the_logging_filter_redacts_a_url_passed_as_an_argument() -> None:
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s', (f"GET {CROWD_PATH}?{CROWD_QUERY}", 302), None
    )

    assert RedactCrowdIds().filter(record) is True
    assert record.getMessage() == f'"GET {CROWD_PATH}?[redacted]" 302'


def test_every_access_log_atom_of_a_crowd_request_is_redacted() -> None:
    logger = RedactingGunicornLogger(Config())
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{CROWD_PATH}?{CROWD_QUERY}",
        "PATH_INFO": CROWD_PATH,
        "QUERY_STRING": CROWD_QUERY,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://xrec.example.org{CROWD_PATH}?{CROWD_QUERY}",
    }
    request = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    response = SimpleNamespace(status="302 Found", sent=0, headers=[("Location", "/annotate/1/")])

    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=5))

    assert PID not in repr(atoms)
    assert atoms["r"] == f"GET {CROWD_PATH}?[redacted] HTTP/1.1"
    assert atoms["q"] == atoms["{query_string}e"] == "[redacted]"
    assert atoms["U"] == CROWD_PATH and atoms["s"] == "302"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gunicorn_with_the_committed_config_logs_crowd_links_without_the_worker_id(
    transactional_db, tmp_path: Path
) -> None:
    from django.db import connection

    port = _free_port()
    log_path = tmp_path / "gunicorn.log"
    env = os.environ | {"DATABASE_URL": database_url(connection.settings_dict), "DJANGO_SECURE_SSL_REDIRECT": "0"}
    command = [
        sys.executable, "-m", "gunicorn", "xrec_site.wsgi", "--config=python:xrec_site.gunicorn_config",
        f"--bind=127.0.0.1:{port}", "--workers=1", "--access-logfile=-",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        # No such campaign: a 404 is logged by gunicorn and by django.request alike.
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{CROWD_PATH}?{CROWD_QUERY}", timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == 404
        # A page's assets carry the crowd link as their Referer.
        asset = urllib.request.Request(
            f"http://127.0.0.1:{port}/healthz",
            headers={"Referer": f"http://127.0.0.1:{port}{CROWD_PATH}?{CROWD_QUERY}"},
        )
        urllib.request.urlopen(asset, timeout=5)  # noqa: S310
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)

    log = log_path.read_text()
    assert f'"GET {CROWD_PATH}?[redacted] HTTP/1.1" 404' in log
    assert f'{CROWD_PATH}?[redacted]"' in log  # the Referer of the second request
    assert PID not in log and "STUDY_ID" not in log
