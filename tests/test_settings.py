"""The production configuration, read the way a server reads it: settings are evaluated at
import, so each case runs ``manage.py`` in a fresh process with a controlled environment."""

import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

ENV_EXAMPLE = Path(settings.BASE_DIR) / ".env.example"
SECRET_KEY_PLACEHOLDER = "replace-with-50-or-more-random-characters"


def production_section() -> dict[str, str]:
    """Every ``# NAME=value`` line between the Production markers of .env.example."""
    text = ENV_EXAMPLE.read_text()
    section = text.split("# --- Production ", 1)[1].split("# --- end of Production", 1)[0]
    return dict(re.findall(r"^# ([A-Z][A-Z0-9_]*)=(\S*)$", section, flags=re.MULTILINE))


def run_manage(tmp_path: Path, variables: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # Only what a process needs to start: none of the test run's own DJANGO_*, XREC_* or
    # DATABASE_URL variables (pytest-env turns the HTTPS redirect off for the test client).
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env |= {"XREC_VAR_DIR": str(tmp_path / "var")} | variables
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def deploy_check(tmp_path: Path, variables: dict[str, str]) -> str:
    done = run_manage(tmp_path, variables, "check", "--deploy", "--fail-level=WARNING")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def printed_settings(tmp_path: Path, variables: dict[str, str], *names: str) -> list[str]:
    code = "from django.conf import settings\n" + "".join(f"print(repr(settings.{name}))\n" for name in names)
    done = run_manage(tmp_path, variables, "shell", "--no-startup", "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-len(names) :]


def test_env_example_production_section_names_every_transport_security_variable() -> None:
    section = production_section()
    assert {
        "DJANGO_DEBUG",
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "DJANGO_SECURE_SSL_REDIRECT",
        "DJANGO_SECURE_COOKIES",
        "DJANGO_SECURE_HSTS_SECONDS",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "DJANGO_SECURE_HSTS_PRELOAD",
        "DJANGO_SECURE_PROXY_SSL_HEADER",
    } <= set(section)
    assert section["DJANGO_DEBUG"] == "0"


def test_check_deploy_reports_nothing_with_the_production_section_of_env_example(tmp_path: Path) -> None:
    variables = production_section()
    # The example's key is a placeholder that nobody may deploy: a real key stands in for it.
    assert variables["DJANGO_SECRET_KEY"] == SECRET_KEY_PLACEHOLDER
    variables["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)

    assert "System check identified no issues" in deploy_check(tmp_path, variables)


def test_check_deploy_reports_nothing_with_only_debug_off_a_secret_key_and_hosts(tmp_path: Path) -> None:
    minimal = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "xrec.example.org",
    }

    assert "System check identified no issues" in deploy_check(tmp_path, minimal)
    assert printed_settings(
        tmp_path, minimal, "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"
    ) == ["True", "True", "True", "31536000"]


def test_plain_http_serving_turns_the_redirect_and_secure_cookies_off_explicitly(tmp_path: Path) -> None:
    local = {"DJANGO_DEBUG": "0", "DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_SECURE_COOKIES": "0"}

    assert printed_settings(tmp_path, local, "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE") == [
        "False",
        "False",
        "False",
    ]
    # ... and that is what check --deploy then warns about.
    done = run_manage(tmp_path, local | {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}, "check", "--deploy")
    assert {"security.W008", "security.W012", "security.W016"} <= set(re.findall(r"security\.W\d+", done.stderr))


def test_debug_leaves_https_off_and_keeps_the_browsable_api(tmp_path: Path) -> None:
    assert printed_settings(
        tmp_path,
        {"DJANGO_DEBUG": "1"},
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES']",
    ) == [
        "False",
        "False",
        "0",
        "['rest_framework.renderers.JSONRenderer', 'rest_framework.renderers.BrowsableAPIRenderer']",
    ]


def test_proxy_ssl_header_names_the_header_the_proxy_sets(tmp_path: Path) -> None:
    assert printed_settings(
        tmp_path, {"DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "SECURE_PROXY_SSL_HEADER"
    ) == ["('HTTP_X_FORWARDED_PROTO', 'https')"]
    unset = run_manage(
        tmp_path,
        {},
        "shell",
        "--no-startup",
        "-c",
        "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)",
    )
    assert unset.stdout.strip().splitlines()[-1] == "None"


def test_without_a_secret_key_variable_the_key_is_generated_once_into_a_private_file(tmp_path: Path) -> None:
    first = printed_settings(tmp_path, {}, "SECRET_KEY")
    key_file = tmp_path / "var" / "secret_key"

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first == [repr(key_file.read_text())]
    assert printed_settings(tmp_path, {}, "SECRET_KEY") == first  # the next start reads it back


def test_with_the_https_redirect_on_pages_redirect_but_the_health_check_answers_over_http(db, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True

    assert Client().get("/accounts/login/").headers["Location"] == "https://testserver/accounts/login/"
    health = Client().get(reverse("healthz"))
    assert health.status_code == 200 and health.json() == {"ok": True}


def test_postgresql_connections_prepare_repeated_statements_unless_turned_off(tmp_path: Path) -> None:
    server = {"DATABASE_URL": "postgres://xrec@db.internal:5432/xrec"}
    options = 'DATABASES["default"]["OPTIONS"]'

    assert printed_settings(tmp_path, server, options) == ["{'server_side_binding': True, 'prepare_threshold': 5}"]
    off = printed_settings(tmp_path, server | {"DATABASE_PREPARE_THRESHOLD": "off"}, options)
    assert off == ["{'server_side_binding': True, 'prepare_threshold': None}"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
def test_on_postgresql_a_statement_run_five_times_is_prepared(db) -> None:
    for pk in range(6):
        list(get_user_model().objects.filter(pk=pk))

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "auth_user"' in statement for statement in prepared), prepared
