"""What each role sees in a real browser: login, navigation, the dataset page, an import."""

import re

import pytest

from recommendations.services import dataset_import_files
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from xrec_site.roles import ADMIN, ANNOTATOR, RESEARCHER

pytestmark = pytest.mark.browser


def test_annotator_sees_only_annotation_and_is_refused_dataset_pages(page, live_server) -> None:
    UserFactory(username="ann", role=ANNOTATOR)

    log_in(page, live_server, "ann")

    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == ["Home"]
    assert "annotation campaigns" in page.content()
    response = page.goto(f"{live_server.url}/datasets/")
    assert response is not None and response.status == 403


def test_researcher_browses_movielens_and_searches_items_with_htmx(page, live_server) -> None:
    UserFactory(username="res", role=RESEARCHER)
    dataset_import_files(format="movielens-100k", path=None, name="movielens-100k")

    log_in(page, live_server, "res")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    page.get_by_role("link", name="movielens-100k").click()

    assert page.locator("#n-users").inner_text() == "943"
    assert page.locator("#n-items").inner_text() == "1,682"
    assert page.locator("#n-interactions").inner_text() == "100,000"
    url_before = page.url
    page.get_by_label("Search items").fill("Toy Story")
    page.locator("#items").get_by_text("Page 1 of 1 (1 items)").wait_for()
    assert page.url == url_before  # swapped in place by htmx, no page load
    assert page.locator("#items tbody tr").count() == 1


def test_admin_uploads_a_csv_and_watches_the_worker_import_it(
    page, live_server, celery_worker_process, tmp_path
) -> None:
    UserFactory(username="adm", role=ADMIN)
    csv_path = tmp_path / "ratings.csv"
    csv_path.write_text("user,item,rating,timestamp\nalice,<b>x</b>,5,1\nbob,<b>x</b>,3,2\n")

    log_in(page, live_server, "adm")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Import").click()
    page.get_by_label("Format").select_option("csv")
    page.get_by_label("Name").fill("tiny")
    page.get_by_label("Interactions file or zip").set_input_files(str(csv_path))
    page.get_by_role("button", name="Start import").click()

    page.wait_for_url(re.compile(r"/datasets/imports/\d+/$"))
    page.locator("#job-status").get_by_text("Succeeded").wait_for(timeout=60_000)
    page.get_by_role("link", name="tiny").click()
    assert page.locator("#n-interactions").inner_text() == "2"
    # The id doubles as the title (no item file): both cells show it as text, not markup.
    assert page.locator("#items td").get_by_text("<b>x</b>", exact=True).count() == 2
    assert page.locator("#items td b").count() == 0


def test_admin_trains_svd_and_browses_a_users_history_and_top_10(page, live_server, celery_worker_process) -> None:
    UserFactory(username="adm", role=ADMIN)
    dataset_import_files(format="movielens-100k", path=None, name="movielens-100k")

    log_in(page, live_server, "adm")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    page.get_by_role("link", name="Train a recommender").click()
    page.get_by_label("Dataset").select_option(label="movielens-100k")
    page.get_by_label("Algorithm").select_option("SVD")
    page.get_by_role("button", name="Start training").click()

    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    # The status partial polls the worker's progress, then reloads the page with the metrics.
    page.locator("#metrics").wait_for(timeout=90_000)
    assert page.locator("#run-status").inner_text() == "Succeeded"
    assert page.get_by_text("How many items were recommended how often").is_visible()
    page.get_by_label("Dataset user id").fill("1")
    page.get_by_role("button", name="Show").click()
    page.locator("#user-recommendations tbody tr").nth(9).wait_for()
    assert page.locator("#user-recommendations tbody tr").count() == 10
    assert page.locator("#user-test tbody tr").count() == 1  # leave-last-out: one test item
    assert page.locator("#user-history tbody tr").count() == 271  # user 1 rated 272 movies
    assert "user=1" in page.url  # the panel's state is in the address, so it can be shared
