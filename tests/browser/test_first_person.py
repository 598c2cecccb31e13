"""A first-person campaign in a real browser, with a real worker: a participant rates 15 titles
(the most rated ones and one found by searching), is recommended to by folding those ratings
into the trained model, waits while a Celery worker writes the explanations with the campaign's
two generators, rates them blind, and the researcher's report sets the first-person ratings
beside a third-person campaign's ratings of the same generators."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation.models import Assignment, CampaignItem, Participant
from explanations.models import Explanation, GenerationRun, Generator
from recommendations.models import DatasetUser, Interaction
from tests.annotation.factories import explained_runs
from tests.annotation.first_person import catalogue_run, first_person_campaign
from tests.annotation.test_reports import rated
from tests.browser.conftest import log_in
from tests.explanations.tiny import build_tiny_llama
from tests.factories import UserFactory
from xrec_site.roles import ANNOTATOR, RESEARCHER

pytestmark = [pytest.mark.browser, pytest.mark.flow]


def _rate_shown(page, count: int, value: str) -> int:
    """Give ``value`` to the first ``count`` unrated titles on screen; return how many were rated."""
    rated_now = 0
    for row in page.locator("#items li.elicit-item").all():
        if rated_now == count:
            break
        if row.locator("button.chosen").count():
            continue
        before = page.locator("#elicit-count").inner_text()
        row.get_by_role("button", name=value, exact=True).click()
        expect(page.locator("#elicit-count")).not_to_have_text(before)
        rated_now += 1
    return rated_now


def test_a_participant_rates_15_titles_and_then_the_explanations_of_their_own_recommendations(
    page, live_server, celery_worker_process, tmp_path
) -> None:
    runs = explained_runs(run=catalogue_run(n_users=20, n_items=40, k=3), n_runs=2)
    build_tiny_llama(tmp_path / "tiny")
    Generator.objects.filter(pk__in=[run.generator_id for run in runs]).update(
        model=str(tmp_path / "tiny"), quantization="none", max_new_tokens=12
    )
    third_person = rated(runs, annotators=2)
    study = first_person_campaign(runs, name="Your own recommendations", elicit_count=15)
    UserFactory(username="viewer", role=ANNOTATOR)
    UserFactory(username="res", role=RESEARCHER)
    observed = Interaction.objects.of_dataset(study.recommender_run.dataset_id).count()

    log_in(page, live_server, "viewer")
    page.locator("li", has_text=study.name).get_by_role("button", name="Join").click()
    page.wait_for_url(f"**{reverse('annotation:elicit', args=[study.pk])}")
    expect(page.locator("#elicit-finish")).to_be_disabled()
    assert _rate_shown(page, 7, "5") + _rate_shown(page, 7, "2") == 14
    # One more found by title: htmx swaps the list in place as the participant types.
    page.get_by_label("Find a title").fill("Item 39")
    expect(page.locator("#items li.elicit-item")).to_have_count(1)
    expect(page.locator("#items .title")).to_have_text("Item 39")
    assert _rate_shown(page, 1, "4") == 1
    expect(page.locator("#elicit-count")).to_have_text("15")
    page.get_by_role("button", name="Recommend to me").click()

    page.wait_for_url(f"**{reverse('annotation:waiting', args=[study.pk])}")
    expect(page.locator("#progress progress")).to_be_visible()
    expect(page.locator("#progress-total")).to_have_text("6")  # 3 recommendations x 2 generators
    # The worker writes them; the polling page moves on by itself to the first item.
    page.wait_for_url("**/annotate/items/**", timeout=120_000)
    participant = Participant.objects.get(campaign=study, user__username="viewer")
    own = CampaignItem.objects.filter(participant=participant)
    assert own.count() == 6
    written = Explanation.objects.filter(generation_run__recommender_run_id=participant.recommender_run_id)
    assert written.filter(status=Explanation.Status.DONE).count() == 6
    assert set(GenerationRun.objects.filter(recommender_run_id=participant.recommender_run_id).values_list(
        "parent_id", flat=True
    )) == {run.pk for run in runs}  # fmt: skip

    for done in range(6):
        page.locator("#task fieldset.criterion.current").wait_for()
        expect(page.locator("#task")).not_to_contain_text("secret-generator")  # blind
        before = page.locator("#task").get_attribute("data-assignment")
        for _ in range(page.locator("#task fieldset.criterion").count()):
            page.keyboard.press(str(6 + done % 3))
        page.keyboard.press("Enter")
        page.locator(f"#task:not([data-assignment='{before}']) fieldset.current, #finished").first.wait_for()
    expect(page.locator("#finished")).to_be_visible()
    assert Assignment.objects.filter(participant=participant, status=Assignment.Status.SUBMITTED).count() == 6
    # The elicited user stayed out of every dataset-wide read.
    assert DatasetUser.objects.filter(participant=participant, elicited=True).exists()
    assert Interaction.objects.of_dataset(study.recommender_run.dataset_id).count() == observed

    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server, "res")
    query = "&".join(f"runs={run.pk}" for run in runs)
    page.goto(f"{live_server.url}{reverse('annotation:study')}?recommender_run={study.recommender_run_id}&{query}")
    table = page.locator("#table-first_person")
    expect(table).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2 * study.criteria.count())  # each generator, each criterion
    expect(rows.first).to_contain_text(f"#{study.pk} Your own recommendations")
    expect(rows.first).to_contain_text(f"#{third_person.pk} ")
    expect(page.locator("#table-human_likert")).to_contain_text(third_person.name)
    expect(page.locator("#table-ranking tbody tr")).to_have_count(2)  # settled or not, both campaigns


def test_a_refused_rating_says_why_and_changes_nothing(page, live_server, tmp_path) -> None:
    from tests.annotation.first_person import parent_runs

    study = first_person_campaign(parent_runs(catalogue_run(n_users=12, n_items=20), tmp_path / "tiny"))
    UserFactory(username="viewer", role=ANNOTATOR)
    log_in(page, live_server, "viewer")
    page.locator("li", has_text=study.name).get_by_role("button", name="Join").click()
    page.wait_for_url(f"**{reverse('annotation:elicit', args=[study.pk])}")
    assert _rate_shown(page, 1, "4") == 1
    expect(page.locator("#elicit-error")).to_be_hidden()

    study.close()  # closed while the participant is on the page
    page.locator("#items li.elicit-item").nth(1).get_by_role("button", name="5", exact=True).click()
    expect(page.locator("#elicit-error")).to_have_text("This campaign is closed.")
    expect(page.locator("#elicit-count")).to_have_text("1")
    assert Interaction.objects.filter(user__elicited=True).count() == 1
