"""The study report page in a real browser: a researcher picks the runs, reads every section
and chart, downloads the exports; names from the database stay text; annotators are refused."""

import json
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from explanations.models import Generator, JudgeRun
from tests.annotation.factories import explained_runs
from tests.annotation.test_reports import judged, rated
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from xrec_site.roles import ANNOTATOR, RESEARCHER

pytestmark = pytest.mark.browser

# Markup that runs script if a page ever inserts it as HTML instead of text.
GENERATOR_NAME = "<img src=x onerror=alert(1)>"
JUDGE_NAME = "<img src=x onerror=alert(2)>"
CRITERIA = ("reasonability", "attractiveness", "non_redundancy", "faithfulness")


def _likert_scores(prompt: str) -> str:
    """The judge's Likert answer: high for run 1's explanations, low for run 0's."""
    score = 8 if "Version 1" in prompt else 3
    return "\n".join(f"{name}: {score}" for name in CRITERIA)


def _download(page, link_name: str) -> str:
    with page.expect_download() as download:
        page.locator("main").get_by_role("link", name=link_name, exact=True).click()
    return Path(download.value.path()).read_text()


def test_researcher_reads_every_section_and_chart_and_downloads_the_exports(page, live_server) -> None:
    UserFactory(username="res", role=RESEARCHER)
    runs = explained_runs(n_users=4, n_runs=2)
    Generator.objects.filter(pk=runs[0].generator_id).update(name=GENERATOR_NAME)
    judged(runs)
    judged(runs, mode=JudgeRun.Mode.LIKERT, answer=_likert_scores, name=JUDGE_NAME)
    rated(runs)
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:  # an alert() means some name ran as markup
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    log_in(page, live_server, "res")
    page.goto(live_server.url + reverse("annotation:study"))
    page.get_by_label("Recommender run").select_option(str(runs[0].recommender_run_id))
    page.get_by_label("Generation runs").select_option([str(run.pk) for run in runs])
    page.get_by_role("button", name="Show the report").click()
    page.wait_for_url(f"**/studies/?*runs={runs[1].pk}*")

    for section in ("judge_pairwise", "position_bias", "human_likert", "agreement"):
        expect(page.locator(f"#table-{section} tbody tr").first).to_be_visible()
    expect(page.locator("#table-judge_pairwise tbody tr")).to_have_count(1)
    expect(page.locator("#table-human_likert tbody tr")).to_have_count(2 * len(CRITERIA))
    expect(page.get_by_role("heading", name="Meta-evaluation: judge calibration")).to_be_visible()
    charts = page.locator("svg.chart")
    # Human means per criterion, Bradley-Terry strengths, the win heatmap, calibration per criterion.
    expect(charts).to_have_count(len(CRITERIA) + 1 + 1 + len(CRITERIA))
    for chart in charts.all():
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 40
    calibration = page.locator("#calibration svg.chart")
    expect(calibration).to_have_count(len(CRITERIA))
    # Judge 3 for run 0's explanations and 8 for run 1's: two bins per criterion.
    expect(calibration.first.locator("circle.bin")).to_have_count(2)
    expect(calibration.first.locator("text.total")).to_have_text("8 explanations")

    # Names from the database are shown as text, in tables and in SVG labels, never as markup.
    expect(page.locator("#table-runs td").get_by_text(GENERATOR_NAME, exact=True)).to_be_visible()
    expect(page.locator("svg.chart text", has_text=GENERATOR_NAME).first).to_be_visible()
    expect(page.locator("#calibration h3", has_text=JUDGE_NAME)).to_have_count(len(CRITERIA))
    expect(page.locator("img")).to_have_count(0)

    report = json.loads(_download(page, "JSON"))
    assert report["runs"][0]["generator"] == GENERATOR_NAME
    calibration = report["meta"]["calibration"]
    assert [group["n"] for group in calibration] == [2 * 4] * len(CRITERIA)  # explanations, per criterion
    markdown = _download(page, "Markdown")
    assert "| campaign | run | criterion | mean | mean (items and annotators resampled) | median | n |" in markdown
    assert dialogs == []


def test_an_annotator_is_refused_the_study_page(page, live_server) -> None:
    UserFactory(username="ann", role=ANNOTATOR)

    log_in(page, live_server, "ann")
    response = page.goto(live_server.url + reverse("annotation:study") + "?recommender_run=1&runs=1&runs=2")

    assert response is not None and response.status == 403
