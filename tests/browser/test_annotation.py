"""Annotators in a real browser: crowd entry, consent, training, keyboard rating, recovery
from reloads and network errors, and what the researcher then sees and exports.

The rating pages are driven by the keyboard only (static/js/annotate.js): digits answer the
highlighted criterion, L/T/R or 1/2/3 pick a side, Y/N answer an attention check, Enter
submits. htmx swaps the next item in place, so waits look for a new ``#task``.
"""

import csv
import io
import re
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from annotation.models import Assignment, CampaignItem, Participant, Rating, Submission
from annotation.services.campaigns import campaign_reference_item_add
from explanations.models import Explanation
from tests.annotation.factories import campaign, explained_runs
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from xrec_site.roles import ANNOTATOR, RESEARCHER

pytestmark = pytest.mark.browser

PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="
# Strings that name what generated an explanation (tests/annotation/factories.py): an
# annotator's page must never show them.
LINEAGE_MARKERS = ("secret-generator", "secret-model")


def _crowd_link(live_server, study, pid: str) -> str:
    return f"{live_server.url}/c/{study.public_token}/?PROLIFIC_PID={pid}&STUDY_ID=st-1&SESSION_ID=se-1"


def _assignment_id(page) -> int:
    return int(page.locator("#task").get_attribute("data-assignment"))


def _ready(page, after: int | None = None) -> int:
    """Wait until annotate.js has set up an item page (it highlights the first open
    criterion; keys pressed before that are lost) and return the assignment's id."""
    task = "#task" if after is None else f"#task:not([data-assignment='{after}'])"
    page.locator(f"{task} fieldset.criterion.current").wait_for()
    return _assignment_id(page)


def _press_scale(page, values: list[int]) -> None:
    """Answer the criteria in order: each digit answers the highlighted one and moves on."""
    for value in values:
        page.keyboard.press("0" if value == 10 else str(value))


def _submit(page) -> None:
    """Enter, then wait for the next item (set up by annotate.js), the training feedback or the end page."""
    before = page.locator("#task").get_attribute("data-assignment")
    page.keyboard.press("Enter")
    page.locator(f"#task:not([data-assignment='{before}']) fieldset.current, #feedback, #finished").first.wait_for()


def _checked(page) -> list[str]:
    """The selected answer of each criterion, in page order ("" where none)."""
    return [
        fieldset.locator("input:checked").get_attribute("value") if fieldset.locator("input:checked").count() else ""
        for fieldset in page.locator("fieldset.criterion").all()
    ]


def _stored_values(assignment_id: int) -> dict[str, int | None]:
    return dict(Rating.objects.filter(assignment_id=assignment_id).values_list("criterion__name", "value"))


def test_prolific_annotator_consents_trains_and_rates_five_items_by_keyboard_through_a_reload(
    page, live_server
) -> None:
    runs = explained_runs()
    study = campaign(runs=runs, consent_text="I agree that my answers are used for research.", items_per_annotator=5)
    criteria = list(study.criteria.values_list("name", flat=True))
    campaign_reference_item_add(
        campaign=study,
        explanation=Explanation.objects.filter(generation_run=runs[0]).earliest("pk"),
        kind=CampaignItem.Kind.TRAINING,
        accepted={"reasonability": [1, 10]},
        feedback="Any score is reasonable for this one.",
    )
    pid = "5f3a9c1e7b2d4a6f8e0c1b3d"
    shown_html: list[str] = []
    expected: dict[int, dict[str, int]] = {}

    page.goto(_crowd_link(live_server, study, pid))
    expect(page.locator("#consent")).to_contain_text("I agree that my answers are used for research.")
    shown_html.append(page.content())
    page.get_by_role("button", name="I agree, start").click()

    # Training first: it does not count, and the accepted answer is shown afterwards.
    training_id = _ready(page)
    expect(page.locator("#progress")).to_contain_text("Practice item")
    shown_html.append(page.content())
    _press_scale(page, [7, 7, 7, 7])
    _submit(page)
    expect(page.locator("#feedback")).to_contain_text("Any score is reasonable for this one.")
    expect(page.locator("#feedback")).to_contain_text("you answered 7; expected 1\u201310")  # an en dash
    shown_html.append(page.content())
    page.keyboard.press("Enter")  # follows "Continue"
    _ready(page, after=training_id)

    for done in range(5):
        expect(page.locator("#done-count")).to_have_text(str(done))
        assert page.locator("fieldset.criterion").count() == len(criteria)
        assignment_id = _assignment_id(page)
        values = [(done + position) % 10 + 1 for position in range(len(criteria))]
        expected[assignment_id] = dict(zip(criteria, values, strict=True))
        shown_html.append(page.content())
        if done == 2:
            # Half answered, then the tab reloads: nothing stored changes, the same item comes
            # back, and the half-given answers are still selected, the next one highlighted.
            _press_scale(page, values[:2])
            stored_before = sorted(Rating.objects.values_list("assignment_id", "criterion_id", "value"))
            page.reload()
            assert _ready(page) == assignment_id
            expect(page.locator("#done-count")).to_have_text("2")
            assert _checked(page) == [str(value) for value in values[:2]] + ["", ""]
            assert page.locator("fieldset.current").get_attribute("data-criterion") == criteria[2]
            assert sorted(Rating.objects.values_list("assignment_id", "criterion_id", "value")) == stored_before
            _press_scale(page, values[2:])
        else:
            _press_scale(page, values)
        if done < 4:
            _submit(page)
            assert page.url == f"{live_server.url}/annotate/items/{_assignment_id(page)}/"  # pushed by htmx
    # The last submit ends the study: the browser is sent to Prolific with the code. (There is
    # no internet, and a route cannot catch the target of a redirect, so the request is checked.)
    with page.expect_request(lambda request: request.url.startswith("https://app.prolific.com/")) as completion:
        page.keyboard.press("Enter")

    assert completion.value.url == PROLIFIC_COMPLETE + study.completion_code
    assert completion.value.is_navigation_request()
    participant = Participant.objects.get(campaign=study)
    assert participant.platform == "prolific" and participant.completed_at is not None
    assert participant.consented_at is not None and participant.training_done_at is not None
    training = Assignment.objects.get(pk=training_id)
    assert training.item.kind == CampaignItem.Kind.TRAINING and training.check_passed is True
    regular = Assignment.objects.filter(
        participant=participant, item__kind=CampaignItem.Kind.REGULAR, status=Assignment.Status.SUBMITTED
    )
    assert sorted(regular.values_list("pk", flat=True)) == sorted(expected)
    for assignment in regular:
        assert _stored_values(assignment.pk) == expected[assignment.pk]
        assert assignment.visible_seconds is not None and assignment.visible_seconds > 0
    # The Prolific id is kept only as a keyed hash; the study and session ids are kept as given.
    assert participant.crowd_hash and participant.crowd_hash != pid
    assert participant.crowd_session == {"STUDY_ID": "st-1", "SESSION_ID": "se-1"}
    stored_people = repr(list(Participant.objects.values())) + repr(list(get_user_model().objects.values()))
    assert pid not in stored_people
    for html in shown_html:
        assert not any(marker in html for marker in LINEAGE_MARKERS)


def test_pairwise_answers_are_stored_canonically_whichever_side_was_shown_left(page, live_server) -> None:
    # 16 pairs: the sides are drawn per item, so both orders turn up long before the end.
    runs = explained_runs(n_users=16)
    study = campaign(runs=runs, mode="pairwise", items_per_annotator=16, overlap=1)
    criteria = list(study.criteria.values_list("name", flat=True))
    keys_and_sides = (
        [("l", "left"), ("3", "right"), ("t", "tie"), ("1", "left")],
        [("2", "tie"), ("r", "right"), ("1", "left"), ("3", "right")],
    )
    expected: dict[int, dict[str, str]] = {}
    left_was_a: dict[int, bool] = {}
    first_side: dict[int, str] = {}

    page.goto(_crowd_link(live_server, study, "pairwise-worker-1"))
    while len(expected) < 3 or len(set(left_was_a.values())) < 2:
        assert len(expected) < 16, "every item showed the same side order"
        assignment_id = _ready(page)
        assert page.locator("#answer-form").get_attribute("data-kind") == "side"
        # Explanation a comes from the first generation run ("Version 0: ...").
        left_text = page.locator("#explanation-1 .explanation-text").inner_text()
        left_was_a[assignment_id] = left_text.startswith("Version 0:")
        canonical = {
            "left": "a" if left_was_a[assignment_id] else "b",
            "right": "b" if left_was_a[assignment_id] else "a",
            "tie": "tie",
        }
        pressed = keys_and_sides[len(expected) % 2]
        first_side[assignment_id] = pressed[0][1]
        expected[assignment_id] = {name: canonical[side] for name, (_, side) in zip(criteria, pressed, strict=True)}
        for key, _ in pressed:
            page.keyboard.press(key)
        assert _checked(page) == [side for _, side in pressed]
        _submit(page)

    for assignment_id, answers in expected.items():
        assignment = Assignment.objects.get(pk=assignment_id)
        assert assignment.swapped == (not left_was_a[assignment_id])
        stored = dict(Rating.objects.filter(assignment_id=assignment_id).values_list("criterion__name", "choice"))
        assert stored == answers
        if assignment.swapped and first_side[assignment_id] == "left":
            assert stored[criteria[0]] == "b"  # "left" was pressed, and B was on the left
    assert not Rating.objects.filter(value__isnull=False).exists()


def test_three_annotators_complete_a_k3_campaign_then_the_researcher_monitors_and_exports_it(
    browser, page, live_server
) -> None:
    runs = explained_runs(n_users=3, n_runs=1)
    study = campaign(
        runs=runs,
        name="k3 study",
        overlap=3,
        items_per_annotator=3,
        attention_checks=1,
        check_every=1,
        max_check_failures=0,
    )
    assert study.items.filter(kind=CampaignItem.Kind.REGULAR).count() == 3
    criteria = list(study.criteria.values_list("name", flat=True))
    UserFactory(username="res", role=RESEARCHER)

    for index in range(3):
        UserFactory(username=f"ann{index}", role=ANNOTATOR)
        context = browser.new_context()
        annotator_page = context.new_page()
        annotator_page.set_default_timeout(20_000)
        log_in(annotator_page, live_server, f"ann{index}")
        campaigns = annotator_page.locator("#annotation-campaigns li", has_text="k3 study")
        campaigns.get_by_role("button", name="Join").click()
        _ready(annotator_page)
        answered = 0
        while not annotator_page.locator("#finished").count():
            if annotator_page.locator("#answer-form").get_attribute("data-kind") == "fit":
                # The check shows another user's history; ann0 wrongly says it fits.
                annotator_page.keyboard.press("y" if index == 0 else "n")
            else:
                _press_scale(annotator_page, [(index + answered + c) % 10 + 1 for c in range(len(criteria))])
                answered += 1
            _submit(annotator_page)
        assert answered == 3
        expect(annotator_page.locator("#finished")).to_contain_text("You have finished k3 study")
        context.close()

    log_in(page, live_server, "res")
    page.goto(live_server.url + reverse("annotation:campaign_detail", args=[study.pk]))
    expect(page.locator("#items-complete")).to_have_text("3 / 3")
    expect(page.locator("#submitted")).to_have_text("9 / 9")
    agreement = page.locator("#agreement tbody tr")
    expect(agreement).to_have_count(len(criteria))
    for row in agreement.all():
        assert re.fullmatch(r"-?\d\.\d{3}", row.locator("td").nth(3).inner_text())
    participants = page.locator("#participants tbody tr")
    expect(participants).to_have_count(3)
    flagged = Participant.objects.get(campaign=study, user__username="ann0")
    expect(page.locator(f"#participant-{flagged.pseudonym} .flag")).to_have_text("flagged")
    expect(page.locator("#participants .flag")).to_have_count(1)
    expect(page.locator("#flagged-count")).to_contain_text("1 flagged")
    for row in participants.all():
        expect(row).to_contain_text("3 / 3")
        expect(row).to_contain_text("finished")

    response = page.request.get(live_server.url + reverse("annotation:campaign_export", args=[study.pk, "csv"]))
    assert response.ok
    rows = list(csv.DictReader(io.StringIO(response.text())))
    exported = Counter((int(row["assignment_id"]), row["criterion"]) for row in rows if row["criterion"] != "fits_user")
    stored = Counter(Rating.objects.filter(assignment__campaign=study).values_list("assignment_id", "criterion__name"))
    assert exported == stored and len(stored) == 3 * 3 * len(criteria)
    assert set(exported.values()) == {1}
    checks = [row for row in rows if row["criterion"] == "fits_user"]
    assert sorted(row["choice"] for row in checks) == ["no", "no", "yes"]
    generator = runs[0].generator.name
    prompt = f"{runs[0].template.name} v{runs[0].template.version}"
    for row in rows:
        assert row["recommender_run_id"] == str(study.recommender_run_id)
        assert row["generator_a"].startswith(f"{generator} (") and row["prompt_a"] == prompt
        assert row["annotator_flagged"] == str(row["annotator"] == flagged.pseudonym)


@pytest.mark.parametrize("server_stored_it", [False, True], ids=["request-lost", "response-lost"])
def test_a_failed_submit_keeps_the_answers_and_the_retry_stores_them_once(
    page, live_server, server_stored_it: bool
) -> None:
    study = campaign(items_per_annotator=2)
    criteria = list(study.criteria.values_list("name", flat=True))
    values = [3, 5, 7, 9]

    def fail_once(route) -> None:
        if server_stored_it:
            route.fetch()  # the server gets the answers, but its reply never arrives
        route.abort("connectionreset")

    # Routed before the page loads: Chromium may let through a request sent just after
    # interception is switched on in an open page.
    page.route(re.compile(r"/annotate/items/\d+/submit/$"), fail_once, times=1)
    page.goto(_crowd_link(live_server, study, "flaky-network-worker"))
    assignment_id = _ready(page)
    _press_scale(page, values)
    page.keyboard.press("Enter")

    expect(page.locator("#network-error")).to_be_visible()
    assert _assignment_id(page) == assignment_id
    assert _checked(page) == [str(value) for value in values]
    assert Submission.objects.filter(assignment_id=assignment_id).count() == int(server_stored_it)
    _submit(page)  # the same form, with the same submission id

    assert _assignment_id(page) != assignment_id
    expect(page.locator("#done-count")).to_have_text("1")
    assert Submission.objects.filter(assignment_id=assignment_id).count() == 1
    assert _stored_values(assignment_id) == dict(zip(criteria, values, strict=True))
    assignment = Assignment.objects.get(pk=assignment_id)
    assert assignment.status == Assignment.Status.SUBMITTED and assignment.revisions == 0
