"""A routed campaign in a real browser: an annotator rates by keyboard the items routing gives
them, and the researcher's campaign page turns from "not settled yet" to "settled" by itself
(the monitor polls) as more ratings arrive, without a reload."""

import uuid

import pytest
from playwright.sync_api import expect

from annotation import agreement
from annotation.models import Assignment, Campaign
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import participant_join
from annotation.services.routing import routing_refresh
from tests.annotation.factories import campaign, explained_runs
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from xrec_site.roles import ANNOTATOR, RESEARCHER

pytestmark = pytest.mark.browser


def _rate_all(study: Campaign, annotators: int, start: int, better: int, worse: int) -> None:
    """Annotators who rate run 1's explanations ``better`` and run 0's ``worse``, every item they get."""
    for index in range(start, start + annotators):
        participant = participant_join(campaign=study, user=UserFactory(username=f"crowd{index}"))
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            value = better if "Version 1" in assignment.item.explanation.text else worse
            answers = {c.name: value for c in study.criteria.all()}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())


def test_an_annotator_rates_routed_items_and_the_campaign_page_shows_the_ranking_settle_live(
    browser, page, live_server, monkeypatch
) -> None:
    monkeypatch.setattr(agreement, "RANKING_SECONDS", 1)  # the monitor's cache, in this server thread
    runs = explained_runs(n_users=12, n_runs=2)
    study = campaign(runs=runs, routing=Campaign.Routing.UNCERTAINTY, overlap=3, items_per_annotator=24)
    UserFactory(username="rater", role=ANNOTATOR)
    UserFactory(username="res", role=RESEARCHER)
    _rate_all(study, annotators=1, start=0, better=5, worse=5)  # no difference yet
    routing_refresh(campaign=study)

    log_in(page, live_server, "res")
    page.goto(f"{live_server.url}/campaigns/{study.pk}/")
    expect(page.locator("#routing")).to_contain_text("routed")
    expect(page.locator("#ranking-state")).to_have_text("not settled yet")

    annotator = browser.new_context().new_page()
    log_in(annotator, live_server, "rater")
    annotator.locator("li", has_text=study.name).get_by_role("button", name="Join").click()
    for _ in range(3):
        annotator.locator("#task fieldset.criterion.current").wait_for()
        before = annotator.locator("#task").get_attribute("data-assignment")
        version_one = "Version 1" in annotator.locator("#task").inner_text()
        for _ in range(annotator.locator("#task fieldset.criterion").count()):
            annotator.keyboard.press("8" if version_one else "3")
        annotator.keyboard.press("Enter")
        annotator.locator(f"#task:not([data-assignment='{before}']) fieldset.current, #finished").first.wait_for()
    rater = Assignment.objects.filter(participant__user__username="rater", status=Assignment.Status.SUBMITTED)
    assert rater.count() == 3
    # Routed: the highest priority the refresh gave is what the annotator was given first.
    best = study.items.order_by("-priority").values_list("priority", flat=True).first()
    assert best and rater.order_by("position").first().item.priority == best  # type: ignore[union-attr]

    _rate_all(study, annotators=2, start=1, better=8, worse=3)
    # No reload: the monitor region polls every 5 s and swaps itself.
    expect(page.locator("#ranking-state")).to_have_text("settled", timeout=30_000)
    expect(page.locator("#ranking-order li").first).to_contain_text(f"#{runs[1].pk}")
