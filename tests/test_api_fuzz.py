"""Every API operation fuzzed from the OpenAPI schema with schemathesis, as every role.

Against a database holding one of everything (``tests.site_objects``), each operation gets
generated requests three ways: valid inputs with random ids, valid inputs with ids of objects
that exist, and invalid query parameters and bodies (for the same existing objects). Every
response must be no server error and must match the schema: a documented status code, the
documented content type and a body that validates against the response schema.

Bounded so the whole run takes well under a minute: few examples, a fixed seed
(``derandomize``), no deadline. Each request runs in a savepoint that is rolled back; a
generation run started by a POST is never enqueued (on-commit callbacks do not run inside
the test's transaction), so nothing reaches a broker.
"""

from typing import Any

import pytest
import schemathesis
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.site_objects import ROLES, SiteObjects, site_objects

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {"random ids": 4, "existing objects": 6, "invalid input": 12}


def known_values(objects: SiteObjects, path: str) -> dict[str, Any]:
    """Path parameters of objects that exist, for the operation at ``path``."""
    run_id = objects.recommender_run.pk
    if path.startswith("/api/generation-runs/"):
        run_id = objects.generation_runs[0].pk
    elif path.startswith("/api/judge-runs/"):
        run_id = objects.judge_run.pk
    if path.startswith("/api/jobs/"):
        # A PENDING text metrics job: the first cancel succeeds, the ones after it are 409s.
        return {"kind": "text_metrics", "job_id": objects.text_metrics.pk, "action": "cancel"}
    return {
        "dataset_id": objects.dataset.pk,
        "job_id": objects.import_job.pk,
        "run_id": run_id,
        "external_id": objects.dataset_user.external_id,
        "campaign_id": objects.campaign.pk,
        "assignment_id": objects.assignment.pk,
    }


def _session_key(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def _connection_kept_between_requests():
    # A WSGI handler closes the database connection when a request finishes; the test's
    # transaction lives on that connection (Django's test client disconnects this too).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("_connection_kept_between_requests")
def test_every_api_operation_answers_fuzzed_requests_by_its_schema_for_every_role() -> None:
    objects = site_objects()
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    app = get_wsgi_application()
    sessions = {role: _session_key(user) for role, user in objects.users.items() if user is not None}
    # A real WSGI request checks CSRF on unsafe methods: send the token as a browser would.
    csrf = _get_new_csrf_string()
    headers = {"X-CSRFToken": csrf}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == sum(len(methods) for methods in raw["paths"].values())

    calls = 0
    statuses: dict[str, set[int]] = {operation.label: set() for operation in operations}
    for operation in operations:
        known = known_values(objects, operation.path)
        path_names = {p.name for p in operation.path_parameters}
        fixed = {name: value for name, value in known.items() if name in path_names}
        query: dict[str, Any] = {}
        body: dict[str, Any] = {}  # keyword arguments of as_strategy fixing the body
        if operation.path == "/api/generation-runs/" and operation.method.upper() == "POST":
            started = {
                "recommender_run": objects.recommender_run.pk,
                "generator": objects.generator.pk,
                "template": objects.template.pk,
                "sample_size": 2,
            }
            body = {"body": started, "media_type": "application/json"}
        if operation.path == "/api/studies/report/":
            # The one operation whose query names objects: a real study, on top of random ones.
            query = {"recommender_run": objects.recommender_run.pk, "runs": [r.pk for r in objects.generation_runs]}
        strategies = {
            "random ids": operation.as_strategy(GenerationMode.POSITIVE),
            "existing objects": operation.as_strategy(
                GenerationMode.POSITIVE,
                path_parameters=fixed,
                query=query,
                **body,
            ),
        }
        if operation.query or operation.body:
            # Invalid path values never reach a view (Django's URL patterns refuse them), so
            # only the query and the body are made invalid.
            strategies["invalid input"] = operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed)
        for role in ROLES:
            cookies = {settings.CSRF_COOKIE_NAME: csrf}
            if role in sessions:
                cookies[settings.SESSION_COOKIE_NAME] = sessions[role]
            for kind, strategy in strategies.items():
                fuzz = _fuzzer(
                    strategy, EXAMPLES[kind], statuses[operation.label], app=app, headers=headers, cookies=cookies
                )
                try:
                    calls += fuzz()
                except Exception as exc:
                    exc.add_note(f"{operation.label} as {role}, {kind}")
                    raise
    assert calls >= len(operations) * len(ROLES) * 2
    # Not only refusals: every operation answered at least one request with a success.
    assert {label: codes for label, codes in statuses.items() if not any(200 <= c < 300 for c in codes)} == {}


def _fuzzer(strategy: Any, examples: int, statuses: set[int], **call: Any) -> Any:
    """A hypothesis test sending ``examples`` cases of ``strategy`` and noting the statuses
    in ``statuses``; running it returns how many it sent."""
    sent = 0

    @given(case=strategy)
    @hypothesis_settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case: Any) -> None:
        nonlocal sent
        sent += 1
        with transaction.atomic():
            statuses.add(case.call_and_validate(checks=CHECKS, **call).status_code)
            transaction.set_rollback(True)

    def run() -> int:
        fuzz()
        return sent

    return run
