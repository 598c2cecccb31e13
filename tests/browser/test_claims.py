"""A claims campaign in a real browser: the researcher reviews privacy and the split before it
opens, three annotators label every claim by keyboard only (marking the words that make a claim
unsupported), and the researcher reads the agreement and the export.

Keys (static/js/annotate.js): S/N/C or 1/2/3 label the highlighted claim; "supported" moves on,
another label stays so that ←/→ and Space can mark words; ↓ moves on; Enter submits.
"""

import csv
import io
import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation.models import Campaign, CampaignItem, ClaimLabel
from annotation.services.campaigns import campaign_create
from tests.annotation.factories import claim_runs
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from xrec_site.roles import ANNOTATOR, RESEARCHER

pytestmark = pytest.mark.browser


def _ready(page, after: str | None = None) -> None:
    task = "#task" if after is None else f"#task:not([data-assignment='{after}'])"
    page.locator(f"{task} fieldset.criterion.current, #finished").first.wait_for()


def _label_claims(page, doubter: bool) -> list[str]:
    """Label each claim of the item on screen by keyboard: the first supported, the second
    supported (not supported by the doubter), the third not supported with its second word
    marked, the rest contradicted. Returns the labels given, in claim order."""
    given = []
    count = page.locator("fieldset.claim").count()
    for position in range(count):
        expect(page.locator("fieldset.claim").nth(position)).to_have_class(re.compile(r"\bcurrent\b"))
        if position == 0 or (position == 1 and not doubter):
            page.keyboard.press("s")
            given.append("supported")
        elif position == 2 or position == 1:
            page.keyboard.press("n")
            if position == 2:
                page.keyboard.press("ArrowRight")
                page.keyboard.press("Space")
            page.keyboard.press("ArrowDown")
            given.append("unsupported")
        else:
            page.keyboard.press("c")
            page.keyboard.press("ArrowDown")
            given.append("contradicted")
    return given


def test_researcher_reviews_and_opens_a_claims_campaign_and_three_annotators_label_it_by_keyboard(
    browser, page, live_server
) -> None:
    runs = claim_runs(n_users=3, n_runs=1)
    study = campaign_create(
        created_by=None,
        name="claims study",
        generation_runs=runs,
        mode=Campaign.Mode.CLAIMS,
        overlap=3,
        items_per_annotator=3,
        attention_checks=0,
        history_length=5,
    )
    UserFactory(username="res", role=RESEARCHER)
    log_in(page, live_server, "res")
    page.goto(live_server.url + reverse("annotation:campaign_detail", args=[study.pk]))
    expect(page.locator("#campaign-status")).to_have_text("In review (not open yet)")
    expect(page.locator("#privacy-clean")).to_be_visible()
    page.get_by_role("button", name="Estimate re-identification by the history shown").click()
    expect(page.locator("#privacy-reidentification, #privacy-result p").first).to_be_visible()

    # The split: merge the last two claims of the first item into one.
    page.locator("#claims-link").click()
    first = study.items.filter(kind=CampaignItem.Kind.REGULAR).order_by("kind", "id").first()
    assert first is not None
    claims = [claim.text for claim in first.claims.all()]
    section = page.locator(f"#item-{first.pk}")
    section.get_by_text("Adjust the split").click()
    merged = first.explanation.text[first.claims.all()[2].start :]
    section.get_by_label("Claims, one per line").fill("\n".join([*claims[:2], merged]))
    section.get_by_role("button", name="Save the split").click()
    expect(page.locator(".messages")).to_contain_text(f"Item {first.pk}: 3 claims.")
    assert [claim.text for claim in first.claims.all()] == [*claims[:2], merged]

    page.goto(live_server.url + reverse("annotation:campaign_detail", args=[study.pk]))
    page.locator("#open-campaign").click()
    expect(page.locator("#campaign-status")).to_have_text("Open")

    expected: dict[tuple[str, int], str] = {}
    for index in range(3):
        UserFactory(username=f"claimer{index}", role=ANNOTATOR)
        context = browser.new_context()
        annotator_page = context.new_page()
        annotator_page.set_default_timeout(20_000)
        log_in(annotator_page, live_server, f"claimer{index}")
        annotator_page.locator("#annotation-campaigns li", has_text="claims study").get_by_role(
            "button", name="Join"
        ).click()
        _ready(annotator_page)
        items = 0
        while not annotator_page.locator("#finished").count():
            assignment = annotator_page.locator("#task").get_attribute("data-assignment")
            assert annotator_page.locator("#answer-form").get_attribute("data-kind") == "claim"
            given = _label_claims(annotator_page, doubter=index == 2)
            marked = annotator_page.locator("fieldset.claim").nth(2).locator(".word.marked")
            expect(marked).to_have_count(1)
            for position, given_label in enumerate(given):
                expected[(f"claimer{index}", int(assignment or 0) * 100 + position)] = given_label
            annotator_page.keyboard.press("Enter")
            _ready(annotator_page, after=assignment)
            items += 1
        assert items == 3
        context.close()

    stored = {
        (label.assignment.participant.user.username, label.assignment_id * 100 + label.claim.position): label.label
        for label in ClaimLabel.objects.select_related("assignment__participant__user", "claim")
    }
    assert stored == expected
    assert len(stored) == 3 * (4 + 4 + 3)
    for marked_label in ClaimLabel.objects.filter(claim__position=2).select_related("claim"):
        ((start, end),) = marked_label.spans
        assert marked_label.claim.text[start:end] == re.findall(r"[\w'-]+", marked_label.claim.text)[1]

    page.goto(live_server.url + reverse("annotation:campaign_detail", args=[study.pk]))
    expect(page.locator("#submitted")).to_have_text("9 / 9")
    rows = page.locator("#agreement tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("claim label")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text(str(len(stored)))
    response = page.request.get(live_server.url + reverse("annotation:campaign_export", args=[study.pk, "csv"]))
    exported = list(csv.DictReader(io.StringIO(response.text())))
    assert len(exported) == len(stored)
    marked_rows = [row for row in exported if row["marked_spans"]]
    assert len(marked_rows) == 9 and all(json.loads(row["marked_spans"]) for row in marked_rows)
