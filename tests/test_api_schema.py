"""The OpenAPI schema: complete and warning-free, and served to staff only."""

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.conftest import client_for


def test_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    # --fail-on-warn turns every drf-spectacular warning (an unguessable view, a missing
    # response type, a name collision) into an error; --validate checks it against OpenAPI 3.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"recommender_runs_list", "generation_runs_create", "campaigns_ratings_list", "study_report_retrieve"} <= (
        operations
    )


def test_schema_lists_every_api_route() -> None:
    from django.urls import get_resolver

    from tests.test_url_access import walk

    api_routes = {route for route, _name, _callback in walk(get_resolver().url_patterns) if route.startswith("api/")}
    schema_routes = {"api/schema/", "api/docs/"}  # the schema does not describe its own views
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    described = {re.sub(r"\{(\w+)\}", r"<\1>", path).lstrip("/") for path in schema["paths"]}
    assert described == {re.sub(r"<\w+:(\w+)>", r"<\1>", route) for route in api_routes - schema_routes}


def test_dataset_filter_is_an_integer_query_parameter() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = schema["paths"]["/api/runs/"]["get"]["parameters"]
    assert {
        key: value
        for key, value in next(p for p in parameters if p["name"] == "dataset").items()
        if key != "description"
    } == {"in": "query", "name": "dataset", "schema": {"type": "integer"}}


@pytest.mark.django_db
def test_anonymous_visitors_get_no_schema_and_are_sent_to_login_from_the_docs() -> None:
    client = Client()
    assert client.get(reverse("api_schema")).status_code in {401, 403}
    response = client.get(reverse("api_docs"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_annotators_get_neither_schema_nor_docs(annotator) -> None:
    client = client_for(annotator)
    assert client.get(reverse("api_schema")).status_code == 403
    assert client.get(reverse("api_docs")).status_code == 403
    assert client.get(reverse("api_docs") + "?script=").status_code == 403


@pytest.mark.parametrize("role", ["researcher", "admin_user"])
def test_staff_read_the_schema_and_the_docs(role: str, request: pytest.FixtureRequest) -> None:
    client = client_for(request.getfixturevalue(role))
    schema = client.get(reverse("api_schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert "/api/runs/" in schema.json()["paths"]
    page = client.get(reverse("api_docs"))
    assert page.status_code == 200
    assert "swagger-ui" in page.content.decode()


def test_docs_page_has_no_inline_script_and_loads_its_assets_from_this_site(researcher) -> None:
    # The Content-Security-Policy allows scripts from 'self' only: every <script> has a src on
    # this site (the sidecar's static files and the split view's own start-up script).
    client = client_for(researcher)
    html = client.get(reverse("api_docs")).content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 3
    sources = []
    for attributes, body in scripts:
        assert body.strip() == ""
        source = re.search(r'src="([^"]+)"', attributes)
        assert source is not None
        sources.append(source.group(1).replace("&amp;", "&"))
    assert all(src.startswith("/") for src in sources), sources
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert stylesheet is not None
    for url in [*sources, stylesheet.group(1)]:
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
        assert body
    start_script = client.get(sources[-1])
    assert start_script["Content-Type"].startswith("application/javascript")
    assert reverse("api_schema") in start_script.content.decode()
