"""The annotator and researcher pages through Django's test client."""

import csv
import io
import json
import re
import uuid

import pytest
from django.urls import reverse

from annotation.models import Assignment, Campaign, Participant, Rating
from annotation.services.assignments import campaign_assign_next
from annotation.services.campaigns import participant_join
from explanations.models import Explanation
from tests.annotation.factories import campaign, explained_runs, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def answers_for(study: Campaign, value: str = "6") -> dict[str, str]:
    return {criterion.name: value for criterion in study.criteria.all()} | {"submission_id": str(uuid.uuid4())}


@pytest.fixture
def study() -> Campaign:
    return campaign(runs=explained_runs(n_users=5, n_runs=2), items_per_annotator=3)


def current(annotator, study: Campaign) -> Assignment:
    participant = participant_join(campaign=study, user=annotator)
    return take(participant)


def test_next_sends_a_participant_to_their_current_item(annotator, study) -> None:
    participant_join(campaign=study, user=annotator)
    client = client_for(annotator)

    response = client.get(reverse("annotation:next", args=[study.pk]))

    assignment = Assignment.objects.get(participant__user=annotator)
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:assignment", args=[assignment.pk])


def test_rating_page_shows_the_explanation_history_and_shortcuts_and_highlights_named_titles(annotator, study) -> None:
    assignment = current(annotator, study)

    page = client_for(annotator).get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()

    explanation = assignment.item.explanation
    named = explanation.text.split("since you enjoyed ")[1].split(", you may like")[0]
    assert f"<mark>{named}</mark>" in page  # in the explanation and in the history pane
    assert 'class="mentioned"' in page
    assert "Keyboard shortcuts" in page and "<kbd>Enter</kbd>" in page
    assert 'name="submission_id"' in page
    assert '<b id="done-count">0</b> of <b id="quota">3</b> done' in page


def test_htmx_submit_swaps_in_the_next_item_and_pushes_its_url(annotator, study) -> None:
    assignment = current(annotator, study)

    response = client_for(annotator).post(
        reverse("annotation:submit", args=[assignment.pk]), answers_for(study), HTTP_HX_REQUEST="true"
    )

    following = Assignment.objects.get(participant__user=annotator, status=Assignment.Status.ACTIVE)
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("annotation:assignment", args=[following.pk])
    assert response.content.decode().lstrip().startswith('<section id="task"')
    assert Rating.objects.filter(assignment=assignment).count() == 4


def test_plain_submit_redirects_to_the_next_item_without_javascript(annotator, study) -> None:
    assignment = current(annotator, study)

    response = client_for(annotator).post(reverse("annotation:submit", args=[assignment.pk]), answers_for(study))

    following = Assignment.objects.get(participant__user=annotator, status=Assignment.Status.ACTIVE)
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:assignment", args=[following.pk])


def test_an_incomplete_submit_keeps_the_given_answers_on_screen_with_an_error(annotator, study) -> None:
    assignment = current(annotator, study)
    data = answers_for(study, "4")
    del data["faithfulness"]

    response = client_for(annotator).post(reverse("annotation:submit", args=[assignment.pk]), data)

    page = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'value="4"[^>]*checked', page)
    assert "This field is required" in page
    assert data["submission_id"] in page  # a retry carries the same id
    assert Rating.objects.count() == 0


def test_a_double_post_stores_the_answers_once(annotator, study) -> None:
    assignment = current(annotator, study)
    client = client_for(annotator)
    data = answers_for(study)

    client.post(reverse("annotation:submit", args=[assignment.pk]), data)
    client.post(reverse("annotation:submit", args=[assignment.pk]), data)

    assert Rating.objects.count() == 4
    assert Assignment.objects.filter(participant__user=annotator).count() == 2  # one answered, one current


def test_revising_from_the_done_page_prefills_and_replaces_the_answer(annotator, study) -> None:
    assignment = current(annotator, study)
    client = client_for(annotator)
    client.post(reverse("annotation:submit", args=[assignment.pk]), answers_for(study, "2"))

    page = client.get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()
    client.post(reverse("annotation:submit", args=[assignment.pk]), answers_for(study, "9"))

    assert "submitting again revises your answer" in page and re.search(r'value="2"[^>]*checked', page)
    assert set(Rating.objects.filter(assignment=assignment).values_list("value", flat=True)) == {9}
    assert Assignment.objects.get(pk=assignment.pk).revisions == 1


def test_pairwise_answers_are_stored_in_canonical_order(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=6, n_runs=2), mode=Campaign.Mode.PAIRWISE, items_per_annotator=6)
    client = client_for(annotator)
    participant = participant_join(campaign=study, user=annotator)
    seen_swapped = set()
    for index in range(6):
        assignment = campaign_assign_next(participant=participant)
        if assignment is None:
            break
        # The side order is a seeded draw on the ids; alternate it so both orders are tested
        # whatever ids the database hands out.
        Assignment.objects.filter(pk=assignment.pk).update(swapped=bool(index % 2))
        assignment.refresh_from_db()
        page = client.get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()
        left_version = assignment.shown_explanations()[0].text.split(":")[0]  # "Version 0" or "Version 1"
        assert page.index("Left explanation") < page.index(left_version) < page.index("Right explanation")
        data = {c.name: "left" for c in study.criteria.all()} | {"submission_id": str(uuid.uuid4())}
        client.post(reverse("annotation:submit", args=[assignment.pk]), data)
        expected = "b" if assignment.swapped else "a"
        assert set(Rating.objects.filter(assignment=assignment).values_list("choice", flat=True)) == {expected}
        seen_swapped.add(assignment.swapped)
    assert seen_swapped == {True, False}


def test_consent_comes_first_and_declining_stores_nothing(annotator) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), consent_text="I agree to **take part**.")
    participant_join(campaign=study, user=annotator)
    client = client_for(annotator)

    assert client.get(reverse("annotation:next", args=[study.pk]))["Location"] == reverse(
        "annotation:consent", args=[study.pk]
    )
    page = client.get(reverse("annotation:consent", args=[study.pk])).content.decode()
    declined = client.post(reverse("annotation:consent", args=[study.pk]), {"consent": "no"})
    assert "<strong>take part</strong>" in page
    assert "did not consent" in declined.content.decode()
    assert not Assignment.objects.exists()

    client.post(reverse("annotation:consent", args=[study.pk]), {"consent": "yes"})
    assert Participant.objects.get(user=annotator).consented_at is not None
    assert client.get(reverse("annotation:next", args=[study.pk]))["Location"].startswith("/annotate/items/")


def test_a_prolific_link_signs_in_a_pseudonymous_worker_who_ends_at_the_completion_url(client) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), items_per_annotator=1)
    link = reverse("annotation:crowd_entry", args=[study.public_token])

    entered = client.get(link, {"PROLIFIC_PID": "5f0c0ffee", "STUDY_ID": "st1", "SESSION_ID": "se1"})
    assert entered["Location"] == reverse("annotation:next", args=[study.pk])
    item_url = client.get(entered["Location"]).url
    assignment = Assignment.objects.get()
    client.post(reverse("annotation:submit", args=[assignment.pk]), answers_for(study))
    done = client.get(reverse("annotation:done", args=[study.pk]))

    assert item_url == reverse("annotation:assignment", args=[assignment.pk])
    assert done.status_code == 302
    assert done["Location"] == f"https://app.prolific.com/submissions/complete?cc={study.completion_code}"
    participant = Participant.objects.get()
    assert participant.platform == "prolific" and participant.crowd_session == {"STUDY_ID": "st1", "SESSION_ID": "se1"}


def test_an_mturk_link_works_too_and_a_link_without_an_id_is_refused(client) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1))
    link = reverse("annotation:crowd_entry", args=[study.public_token])

    assert client.get(link).status_code == 400
    assert client.get(link, {"workerId": "A1B2C3", "assignmentId": "x", "hitId": "h"}).status_code == 302
    assert Participant.objects.get().platform == "mturk"


MTURK_FRAME = {"hitId": "H1", "turkSubmitTo": "https://workersandbox.mturk.com"}


def test_an_mturk_preview_shows_the_task_framed_by_mturk_only_and_creates_no_participant(client) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), instructions="Rate *carefully*.")
    link = reverse("annotation:crowd_entry", args=[study.public_token])

    preview = client.get(link, {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"} | MTURK_FRAME)

    assert preview.status_code == 200
    assert b'id="mturk-preview"' in preview.content and b"<em>carefully</em>" in preview.content
    assert "X-Frame-Options" not in preview
    policy = preview["Content-Security-Policy"]
    assert "frame-ancestors https://worker.mturk.com https://workersandbox.mturk.com https://www.mturk.com" in policy
    assert "script-src 'self'" in policy  # the rest of the site's policy still holds
    assert not Participant.objects.exists() and "_auth_user_id" not in client.session


def test_an_mturk_worker_opens_the_task_in_a_tab_and_ends_by_submitting_the_hit(client) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), items_per_annotator=1)
    link = reverse("annotation:crowd_entry", args=[study.public_token])
    frame = {"workerId": "A1B2C3", "assignmentId": "3AS1"} | MTURK_FRAME

    start = client.get(link, frame)
    assert start.status_code == 200 and not Participant.objects.exists()
    opened = client.get(link, frame | {"start": "1"})
    assert opened["Location"] == reverse("annotation:next", args=[study.pk])
    client.get(opened["Location"])
    client.post(reverse("annotation:submit", args=[Assignment.objects.get().pk]), answers_for(study))
    done = client.get(reverse("annotation:done", args=[study.pk]))

    # No redirect to the (Prolific) completion URL: a form that posts the assignment to MTurk.
    assert done.status_code == 200
    page = done.content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="3AS1"' in page
    participant = Participant.objects.get()
    assert participant.platform == "mturk" and participant.crowd_session["assignmentId"] == "3AS1"


@pytest.mark.parametrize(
    "submit_to", ["https://evil.example", "javascript:alert(1)", "https://www.mturk.com.evil.example"]
)
def test_an_mturk_link_that_submits_elsewhere_is_refused(submit_to: str, client) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1))
    link = reverse("annotation:crowd_entry", args=[study.public_token])
    query = {"workerId": "A1B2C3", "assignmentId": "3AS1", "hitId": "H1", "turkSubmitTo": submit_to, "start": "1"}

    refused = client.get(link, query)

    assert refused.status_code == 400 and b"not an MTurk address" in refused.content
    assert not Participant.objects.exists()


def test_annotator_home_lists_open_campaigns_to_join(annotator, study) -> None:
    client = client_for(annotator)

    home = client.get(reverse("home")).content.decode()
    joined = client.post(reverse("annotation:join", args=[study.pk]))

    assert study.name in home and "Join" in home
    assert joined["Location"] == reverse("annotation:next", args=[study.pk])
    assert Participant.objects.filter(user=annotator, campaign=study).exists()


def test_researcher_creates_a_campaign_in_the_browser(researcher) -> None:
    runs = explained_runs(n_users=4, n_runs=2)
    client = client_for(researcher)
    form = client.get(reverse("annotation:campaign_create")).content.decode()
    data = {
        "name": "pilot",
        "mode": "pairwise",
        "generation_runs": [run.pk for run in runs],
        "sample": "random",
        "sample_size": 3,
        "seed": 1,
        "overlap": 3,
        "items_per_annotator": 5,
        "lease_minutes": 20,
        "routing": "uncertainty",
        "close_when_settled": "on",
        "instructions": "Read *carefully*.",
        "consent_text": "",
        "attention_checks": 1,
        "check_every": 3,
        "max_check_failures": 1,
        "completion_url": "https://example.org/done?c={code}",
        "rubric": json.dumps([{"name": "overall", "question": "Which explanation is better?"}]),
    }

    response = client.post(reverse("annotation:campaign_create"), data)

    study = Campaign.objects.get()
    assert "reasonability" in form  # the default rubric is offered
    assert response["Location"] == reverse("annotation:campaign_detail", args=[study.pk])
    assert (study.mode, study.overlap, study.lease_minutes) == ("pairwise", 3, 20)
    assert (study.routing, study.close_when_settled) == ("uncertainty", True)
    assert study.items.filter(kind="regular").count() == 3
    assert [c.name for c in study.criteria.all()] == ["overall"]
    assert study.completion_redirect_url() == f"https://example.org/done?c={study.completion_code}"


def test_a_bad_rubric_is_a_form_error_and_creates_nothing(researcher) -> None:
    runs = explained_runs(n_users=2, n_runs=1)
    response = client_for(researcher).post(
        reverse("annotation:campaign_create"),
        {"name": "x", "mode": "likert", "generation_runs": [runs[0].pk], "sample": "all", "sample_size": 5,
         "seed": 0, "overlap": 1, "items_per_annotator": 1, "lease_minutes": 5, "attention_checks": 0,
         "check_every": 1, "max_check_failures": 0, "rubric": '[{"name": "Bad Name", "question": "?"}]'},
    )  # fmt: skip

    assert response.status_code == 200 and "unique lowercase identifiers" in response.content.decode()
    assert not Campaign.objects.exists()


def _complete(study: Campaign, users, value: str = "6") -> None:
    for user in users:
        client = client_for(user)
        participant = participant_join(campaign=study, user=user)
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            client.post(reverse("annotation:submit", args=[assignment.pk]), answers_for(study, value))


def test_campaign_page_shows_progress_agreement_and_flags_and_polls(researcher, annotator) -> None:
    from tests.factories import UserFactory

    study = campaign(runs=explained_runs(n_users=3, n_runs=1), overlap=2, items_per_annotator=3)
    _complete(study, [annotator, UserFactory(role="annotator")])
    Participant.objects.filter(user=annotator).update(flagged=True)
    client = client_for(researcher)

    page = client.get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()
    poll = client.get(
        reverse("annotation:campaign_detail", args=[study.pk]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="monitor"
    )

    assert '<span class="figure" id="items-complete">3 / 3</span>' in page
    assert 'id="agreement"' in page and "1 flagged" in page
    assert poll.status_code == 200 and poll.content.decode().lstrip().startswith('<div id="monitor"')
    study.close()
    closed = client.get(
        reverse("annotation:campaign_detail", args=[study.pk]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="monitor"
    )
    assert closed.status_code == 286  # polling stops once the campaign is closed


def test_exports_hold_every_rating_once_with_lineage(researcher, annotator) -> None:
    from tests.factories import UserFactory

    # One run: every item is a different dataset user, so no annotator can be left with only
    # items that would repeat the previous user (the no-two-in-a-row rule would end them early).
    study = campaign(runs=explained_runs(n_users=6, n_runs=1), overlap=2, items_per_annotator=6)
    other = UserFactory.create(role="annotator")
    _complete(study, [annotator, other])
    Participant.objects.filter(user_id=other.pk).update(excluded=True)
    client = client_for(researcher)

    csv_rows = list(csv.DictReader(io.StringIO(client.get(f"/campaigns/{study.pk}/ratings.csv").getvalue().decode())))
    everyone = list(
        csv.DictReader(
            io.StringIO(client.get(f"/campaigns/{study.pk}/ratings.csv?include_excluded=1").getvalue().decode())
        )
    )
    jsonl = [json.loads(line) for line in client.get(f"/campaigns/{study.pk}/ratings.jsonl").getvalue().splitlines()]
    api = client.get(reverse("annotation:api_ratings", args=[study.pk]), {"limit": 5, "offset": 0}).json()

    included = Rating.objects.filter(assignment__participant__excluded=False)
    assert len(csv_rows) == len(jsonl) == included.count() == 6 * 4
    assert len(everyone) == Rating.objects.count() == 12 * 4
    keys = {(row["assignment_id"], row["criterion"]) for row in everyone}
    assert len(keys) == len(everyone)  # every rating once
    row = jsonl[0]
    assert row["generator_a"].startswith("secret-generator-") and row["prompt_a"].startswith("xrec-default v")
    assert row["recommender_run_id"] == study.recommender_run_id and row["algorithm"] == "SVD"
    assert row["annotator"].startswith("S") and row["seconds_on_task"] is not None
    assert (
        api["has_more"]
        and len(api["results"]) == 5
        and api["results"][0]
        == jsonl[0]
        | {
            "served_at": api["results"][0]["served_at"],
            "submitted_at": api["results"][0]["submitted_at"],
        }
    )


def test_excluding_an_annotator_changes_the_flag(researcher, annotator) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    participant = participant_join(campaign=study, user=annotator)
    client = client_for(researcher)

    client.post(reverse("annotation:participant_exclude", args=[study.pk, participant.pk]), {"excluded": "1"})
    participant.refresh_from_db()
    assert participant.excluded
    client.post(reverse("annotation:participant_exclude", args=[study.pk, participant.pk]), {"excluded": "0"})
    participant.refresh_from_db()
    assert not participant.excluded


def test_researcher_adds_a_gold_item_and_bad_ranges_are_reported(researcher) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    explanation = Explanation.objects.earliest("pk")
    client = client_for(researcher)
    url = reverse("annotation:reference_add", args=[study.pk])

    client.post(url, {"kind": "gold", "explanation_id": explanation.pk, "accepted": "reasonability=1-3"})
    bad = client.post(
        url, {"kind": "gold", "explanation_id": explanation.pk, "accepted": "reasonability=1-30"}, follow=True
    )

    assert study.items.filter(kind="gold").count() == 1
    assert "within 1 to 10" in bad.content.decode()


def test_a_crowd_link_asks_before_replacing_a_signed_in_site_account(researcher) -> None:
    study = campaign(runs=explained_runs(n_users=2, n_runs=1))
    client = client_for(researcher)
    link = reverse("annotation:crowd_entry", args=[study.public_token]) + "?PROLIFIC_PID=abc123"

    asked = client.get(link)
    assert asked.status_code == 200 and "Continue as a participant" in asked.content.decode()
    assert not Participant.objects.exists()

    entered = client.post(link)
    assert entered["Location"] == reverse("annotation:next", args=[study.pk])
    assert Participant.objects.get().platform == "prolific"


def test_csv_export_defuses_spreadsheet_formulas_in_dataset_text(researcher, annotator) -> None:
    from recommendations.models import Item

    study = campaign(runs=explained_runs(n_users=2, n_runs=1), overlap=1, items_per_annotator=2)
    Item.objects.update(title='=HYPERLINK("http://evil","x")')
    _complete(study, [annotator])

    rows = list(
        csv.DictReader(
            io.StringIO(client_for(researcher).get(f"/campaigns/{study.pk}/ratings.csv").getvalue().decode())
        )
    )

    assert rows and all(row["item_title"] == '\'=HYPERLINK("http://evil","x")' for row in rows)
