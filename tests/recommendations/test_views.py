"""Dataset and import pages: who may see what, htmx partials, and escaping."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from recommendations.models import ImportJob
from tests.conftest import client_for
from tests.recommendations.factories import DatasetFactory, DatasetUserFactory, InteractionFactory, ItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(name="books", n_users=1, n_items=2, n_interactions=1, rating_min=1, rating_max=5)
    item = ItemFactory(dataset=dataset, title="<script>alert('x')</script>", attributes={"genres": ["<b>bold</b>"]})
    ItemFactory(dataset=dataset, title="Dune")
    InteractionFactory(dataset=dataset, item=item, user=DatasetUserFactory(dataset=dataset), rating=5)
    return dataset


def _pages(dataset) -> dict[str, str]:
    job = ImportJob.objects.create(name="x", format="csv")
    return {
        "dataset list": reverse("recommendations:dataset_list"),
        "dataset page": reverse("recommendations:dataset_detail", args=[dataset.pk]),
        "import page": reverse("recommendations:import"),
        "import job": reverse("recommendations:import_job", args=[job.pk]),
        "dataset api": reverse("recommendations:api_dataset_list"),
        "import job api": reverse("recommendations:api_import_job", args=[job.pk]),
    }


def test_anonymous_visitor_is_sent_to_login(client: Client, dataset) -> None:
    for name, url in _pages(dataset).items():
        response = client.get(url)
        if "api" in name:
            assert response.status_code == 403, name
        else:
            assert response.status_code == 302 and response["Location"].startswith(reverse("login")), name


def test_annotator_is_forbidden_everywhere_but_home(annotator, dataset) -> None:
    client = client_for(annotator)

    for name, url in _pages(dataset).items():
        assert client.get(url).status_code == 403, name
    assert client.post(reverse("recommendations:import"), {"format": "movielens-100k", "name": "x"}).status_code == 403
    assert client.get(reverse("admin:index")).status_code == 302  # not staff: the admin's own login
    home = client.get(reverse("home")).content.decode()
    assert "Datasets" not in home and "Import" not in home and "annotation campaigns" in home
    assert not ImportJob.objects.filter(name="x", format="movielens-100k").exists()


def test_researcher_reads_datasets_but_cannot_import(researcher, dataset) -> None:
    client = client_for(researcher)
    pages = _pages(dataset)

    for name in ("dataset list", "dataset page", "dataset api"):
        assert client.get(pages[name]).status_code == 200, name
    assert client.get(pages["import page"]).status_code == 403
    assert client.get(pages["import job api"]).status_code == 200  # researchers may watch imports
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:recommendations_dataset_changelist")).status_code == 200
    assert client.get(reverse("admin:recommendations_dataset_change", args=[dataset.pk])).status_code == 200
    assert (
        client.post(reverse("admin:recommendations_dataset_delete", args=[dataset.pk]), {"post": "yes"}).status_code
        == 403
    )


def test_admin_may_use_every_page(admin_user, dataset) -> None:
    client = client_for(admin_user)

    for name, url in _pages(dataset).items():
        assert client.get(url).status_code == 200, name
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_dataset_page_shows_counts_and_escapes_dataset_text(researcher, dataset) -> None:
    html = client_for(researcher).get(reverse("recommendations:dataset_detail", args=[dataset.pk])).content.decode()

    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'id="n-items">2<' in html


def test_item_search_returns_only_the_partial_for_htmx(researcher, dataset) -> None:
    response = client_for(researcher).get(
        reverse("recommendations:dataset_detail", args=[dataset.pk]), {"q": "dune"}, headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="items">')
    assert "Dune" in html and "alert" not in html and "<html" not in html


def test_missing_dataset_is_404(researcher) -> None:
    assert client_for(researcher).get(reverse("recommendations:dataset_detail", args=[999])).status_code == 404


def test_import_form_starts_a_job_and_redirects_to_its_progress(admin_user, django_capture_on_commit_callbacks) -> None:
    upload = SimpleUploadedFile("r.csv", b"user,item,rating\na,b,4\n")

    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(admin_user).post(
            reverse("recommendations:import"),
            {"format": "csv", "name": "books", "domain": "books", "interactions": upload, "mapping": "rating=rating"},
        )

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("recommendations:import_job", args=[job.pk])
    assert (job.name, job.format, job.domain, job.options, job.created_by) == (
        "books",
        "csv",
        "books",
        {"map": {"rating": "rating"}, "source": "uploaded r.csv"},
        admin_user,
    )
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"format": "csv", "name": "x"}, "Upload the interactions file"),
        ({"format": "csv", "name": "x", "mapping": "colour=red"}, "unknown role"),
        ({"format": "csv", "name": "x", "interactions": "exe"}, "expected one of"),
    ],
)
def test_import_form_errors_start_nothing(admin_user, data, error) -> None:
    if data.get("interactions") == "exe":
        data["interactions"] = SimpleUploadedFile("tool.exe", b"MZ")

    response = client_for(admin_user).post(reverse("recommendations:import"), data)

    assert response.status_code == 200 and error in response.content.decode()
    assert not ImportJob.objects.exists()


def test_import_form_refuses_a_taken_name(admin_user, dataset) -> None:
    response = client_for(admin_user).post(
        reverse("recommendations:import"),
        {"format": "csv", "name": "books", "interactions": SimpleUploadedFile("r.csv", b"user,item\na,b\n")},
    )

    assert "already exists" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_progress_partial_polls_until_the_job_ends(admin_user) -> None:
    job = ImportJob.objects.create(
        name="x", format="csv", status=ImportJob.Status.RUNNING, phase="reading", progress_done=5, progress_total=10
    )
    client = client_for(admin_user)
    url = reverse("recommendations:import_job", args=[job.pk])

    running = client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in running.content.decode()
    assert 'value="50"' in running.content.decode()

    job.mark_failed("<img src=x onerror=alert(1)>")
    finished = client.get(url, headers={"HX-Request": "true"})
    assert finished.status_code == 286  # htmx stops polling
    html = finished.content.decode()
    assert "hx-trigger" not in html and "&lt;img src=x" in html and "<img" not in html


def test_api_lists_datasets_for_researchers(researcher, dataset) -> None:
    payload = client_for(researcher).get(reverse("recommendations:api_dataset_list")).json()

    assert [d["name"] for d in payload] == ["books"]
    assert payload[0]["n_items"] == 2
