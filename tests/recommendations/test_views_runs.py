"""Recommender-run pages and endpoints: who may see and start what, and what they show."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from recommendations.models import Item, RecommenderRun
from recommendations.services.training import recommender_run_create, recommender_run_execute
from tests.conftest import client_for
from tests.recommendations.factories import rated_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def run() -> RecommenderRun:
    dataset = rated_dataset()
    Item.objects.filter(dataset=dataset, external_id="3").update(title="<script>alert(1)</script>")
    run = recommender_run_create(created_by=None, dataset=dataset, algorithm="SVD", hyperparameters={"n_factors": 5})
    recommender_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _urls(run: RecommenderRun) -> dict[str, str]:
    return {
        "list": reverse("recommendations:run_list"),
        "new": reverse("recommendations:run_create"),
        "detail": reverse("recommendations:run_detail", args=[run.pk]),
        "api list": reverse("recommendations:api_run_list"),
        "api user": reverse("recommendations:api_user_recommendations", args=[run.pk, "0"]),
    }


def test_annotator_is_refused_every_run_page_and_endpoint(annotator, run) -> None:
    client = client_for(annotator)

    for name, url in _urls(run).items():
        assert client.get(url).status_code == 403, name
    assert client.post(reverse("recommendations:run_retry", args=[run.pk])).status_code == 403


def test_researcher_sees_runs_side_by_side_and_the_run_page(researcher, run) -> None:
    client = client_for(researcher)

    for name, url in _urls(run).items():
        assert client.get(url).status_code == 200, name
    listing = client.get(reverse("recommendations:run_list")).content.decode()
    assert f"#{run.pk}" in listing and f"{run.metrics['rating']['rmse']:.4f}" in listing
    page = client.get(reverse("recommendations:run_detail", args=[run.pk])).content.decode()
    assert "NDCG@10" in page and "Users who get it" in page and "items</td>" in page


def test_user_panel_shows_history_test_items_and_top_k_escaped(researcher, run) -> None:
    client = client_for(researcher)
    url = reverse("recommendations:run_detail", args=[run.pk])

    html = client.get(url, {"user": "0"}, headers={"HX-Request": "true", "HX-Target": "user-panel"}).content.decode()

    assert html.lstrip().startswith('<div id="user-panel">')
    assert html.count("<tr><td>") >= 10 + 1 + 7  # 10 recommendations, 1 test item, 7 train events
    assert "<script>alert" not in html
    missing = client.get(url, {"user": "nobody"}, headers={"HX-Request": "true", "HX-Target": "user-panel"})
    assert "No user nobody" in missing.content.decode()


def test_status_partial_stops_polling_when_the_run_has_finished(researcher, run) -> None:
    response = client_for(researcher).get(
        reverse("recommendations:run_detail", args=[run.pk]), headers={"HX-Request": "true", "HX-Target": "status"}
    )

    assert response.status_code == 286 and "hx-trigger" not in response.content.decode()


def test_researcher_starts_a_run_from_the_form(researcher, run, django_capture_on_commit_callbacks) -> None:
    data = {
        "dataset": run.dataset_id,
        "algorithm": "KNNBasic",
        "hyperparameters": '{"k": 20, "sim_options": {"name": "pearson"}}',
        "split_mode": "random",
        "min_interactions": 5,
        "test_ratio": 0.2,
        "seed": 3,
        "k": 5,
        "relevance_threshold": 4,
    }

    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(researcher).post(reverse("recommendations:run_create"), data)

    new = RecommenderRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("recommendations:run_detail", args=[new.pk])
    assert (new.algorithm, new.hyperparameters, new.k, new.seed) == (
        "KNNBasic",
        {"k": 20, "sim_options": {"name": "pearson"}},
        5,
        3,
    )
    assert new.split_options == {
        "mode": "random",
        "seed": 3,
        "min_interactions": 5,
        "test_ratio": 0.2,
        "cutoff_timestamp": None,
    }
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("hyperparameters", "error"),
    [
        ('{"n_factors": "many"}', "n_factors must be a number"),
        ("{n_factors: 3}", "not valid JSON"),
        ("[1, 2]", "give a JSON object"),
    ],
)
def test_bad_hyperparameters_are_a_form_error_and_start_nothing(researcher, run, hyperparameters, error) -> None:
    data = {"dataset": run.dataset_id, "algorithm": "SVD", "hyperparameters": hyperparameters, "split_mode": "leave_last_out",
            "min_interactions": 5, "test_ratio": 0.2, "seed": 0, "k": 10, "relevance_threshold": 4}  # fmt: skip

    response = client_for(researcher).post(reverse("recommendations:run_create"), data)

    assert response.status_code == 200 and error in response.content.decode()
    assert RecommenderRun.objects.count() == 1


def test_retry_button_requeues_only_failed_runs(researcher, run, django_capture_on_commit_callbacks) -> None:
    RecommenderRun.objects.filter(pk=run.pk).update(status=RecommenderRun.Status.FAILED, error="boom")

    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(researcher).post(reverse("recommendations:run_retry", args=[run.pk]))

    run.refresh_from_db()
    assert response.status_code == 302 and run.status == RecommenderRun.Status.PENDING and len(callbacks) == 1


def test_api_returns_a_users_recommendations(researcher, run) -> None:
    payload = client_for(researcher).get(reverse("recommendations:api_user_recommendations", args=[run.pk, "0"])).json()

    assert payload["run"] == run.pk and payload["user"] == "0"
    assert [r["rank"] for r in payload["recommendations"]] == list(range(1, 11))
    assert {"item_id", "title", "score", "attributes"} <= set(payload["recommendations"][0])
    listing = client_for(researcher).get(reverse("recommendations:api_run_list")).json()
    assert listing["count"] == 1 and listing["results"][0]["metrics"]["rating"]["rmse"] > 0


def test_api_404s_for_a_user_of_another_dataset(researcher, run) -> None:
    url = reverse("recommendations:api_user_recommendations", args=[run.pk, "no-such-user"])

    assert client_for(researcher).get(url).status_code == 404


def test_an_implicit_model_is_started_from_the_form_on_rated_data_and_its_page_has_no_rating_error(
    researcher, run
) -> None:
    data = {
        "dataset": run.dataset_id,
        "algorithm": "ALS",
        "hyperparameters": '{"factors": 4}',
        "split_mode": "leave_last_out",
        "min_interactions": 5,
        "test_ratio": 0.2,
        "seed": 0,
        "k": 5,
        "relevance_threshold": 4,
        "positive_threshold": 4,
    }
    client = client_for(researcher)
    assert '<optgroup label="Implicit feedback">' in client.get(reverse("recommendations:run_create")).content.decode()

    response = client.post(reverse("recommendations:run_create"), data)

    new = RecommenderRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and (new.algorithm, new.positive_threshold) == ("ALS", 4.0)
    recommender_run_execute(run_id=new.pk)
    page = client.get(reverse("recommendations:run_detail", args=[new.pk])).content.decode()
    assert "RMSE" not in page and 'id="feedback"' in page and "(ratings ≥ 4.0)" in page


def test_a_surprise_algorithm_on_unrated_data_is_refused_on_the_form(researcher) -> None:
    dataset = rated_dataset(name="clicks", ratings=False)
    data = {"dataset": dataset.pk, "algorithm": "SVD", "split_mode": "leave_last_out", "min_interactions": 5,
            "test_ratio": 0.2, "seed": 0, "k": 5, "relevance_threshold": 4}  # fmt: skip

    response = client_for(researcher).post(reverse("recommendations:run_create"), data)

    assert (
        response.status_code == 200
        and "Surprise&#x27;s algorithms learn from explicit ratings" in response.content.decode()
    )
    assert not RecommenderRun.objects.exists()


def test_lists_are_imported_from_the_runs_page_and_a_bad_line_writes_nothing(researcher, run) -> None:
    client = client_for(researcher)
    good = SimpleUploadedFile("sasrec.csv", b"user,item,rank\n0,1,1\n0,2,2\n1,<b>,1\n")
    Item.objects.create(dataset=run.dataset, external_id="<b>", title="<script>x</script>")
    form = {"dataset": run.dataset_id, "name": "sasrec-top2", "model": "SASRec", "split_mode": "leave_last_out",
            "min_interactions": 5, "test_ratio": 0.2, "seed": 0, "relevance_threshold": 4}  # fmt: skip

    response = client.post(reverse("recommendations:run_import"), form | {"lists": good})

    new = RecommenderRun.objects.get(name="sasrec-top2")
    assert response.status_code == 302 and (new.kind, new.algorithm, new.split_id) == (
        "external",
        "SASRec",
        run.split_id,
    )
    page = client.get(reverse("recommendations:run_detail", args=[new.pk])).content.decode()
    assert 'id="source"' in page and "sasrec.csv" in page
    panel = client.get(
        reverse("recommendations:run_detail", args=[new.pk]),
        {"user": "1"},
        headers={"HX-Request": "true", "HX-Target": "user-panel"},
    ).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in panel and "<script>x" not in panel
    bad = SimpleUploadedFile("bad.csv", b"user,item,rank\n0,1,1\n0,zzz,2\n")
    refused = client.post(reverse("recommendations:run_import"), form | {"name": "bad", "lists": bad})
    assert refused.status_code == 200 and "bad.csv line 3: no item &#x27;zzz&#x27;" in refused.content.decode()
    assert not RecommenderRun.objects.filter(name="bad").exists()


def test_annotator_cannot_import_lists(annotator) -> None:
    assert client_for(annotator).get(reverse("recommendations:run_import")).status_code == 403
