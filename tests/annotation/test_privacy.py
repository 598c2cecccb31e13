"""What crowd annotators see of a dataset user: no demographics unless the campaign chooses them,
and as much history as it says; the choice is on the campaign page and in the export. The
privacy check lists the personal data they would see and how often the history singles a user out."""

import csv
import io
import re

import pytest
from django.urls import reverse

from annotation.models import Campaign, PrivacyFlag
from annotation.privacy import longest_below
from annotation.services.assignments import campaign_assign_next
from annotation.services.campaigns import (
    campaign_create,
    campaign_open,
    campaign_reference_item_add,
    participant_join,
)
from annotation.services.errors import CampaignError
from annotation.services.privacy import campaign_reidentification, privacy_flag_decide
from explanations.models import Explanation
from recommendations.models import DatasetUser, Item
from tests.annotation.factories import campaign, campaign_form_data, explained_runs
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _profiled_runs():
    runs = explained_runs(n_users=4, n_runs=1)
    for user in DatasetUser.objects.filter(dataset_id=runs[0].recommender_run.dataset_id):
        user.profile |= {"gender": "F", "occupation": "artist", "zip_code": "85711"}
        user.save(update_fields=["profile"])
    return runs


def _rating_page(study, annotator) -> str:
    assignment = campaign_assign_next(participant=participant_join(campaign=study, user=annotator))
    assert assignment is not None
    return client_for(annotator).get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()


def test_annotators_see_no_demographics_by_default_and_the_prompts_history(annotator) -> None:
    study = campaign(runs=_profiled_runs())

    page = _rating_page(study, annotator)

    assert study.profile_fields == [] and study.history_length is None
    assert 'id="profile"' not in page and "85711" not in page and "artist" not in page
    # Factory runs' prompts show 10 history rows; each factory user has 7 train-side interactions.
    assert len(re.findall(r"<tr[^>]*>\s*<td", page.split('id="history"')[1].split("</table>")[0])) == 7


def test_a_campaign_shows_the_fields_and_history_it_chose_and_says_so(annotator, researcher) -> None:
    study = campaign(runs=_profiled_runs(), profile_fields=["occupation", " age ", "occupation"], history_length=2)

    page = _rating_page(study, annotator)

    assert study.profile_fields == ["occupation", "age"]
    profile = page.split('id="profile">')[1].split("</p>")[0]
    assert "occupation: artist" in profile and "age: " in profile and "85711" not in page and "gender" not in profile
    assert len(re.findall(r"<tr[^>]*>\s*<td", page.split('id="history"')[1].split("</table>")[0])) == 2
    detail = client_for(researcher).get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()
    assert "annotators see the profile fields occupation, age and 2 history rows" in detail


def test_the_export_says_what_annotators_were_shown(annotator, researcher) -> None:
    study = campaign(runs=_profiled_runs(), profile_fields=["age"], history_length=0, items_per_annotator=1)
    assignment = campaign_assign_next(participant=participant_join(campaign=study, user=annotator))
    assert assignment is not None
    client = client_for(annotator)
    answers = {criterion.name: "5" for criterion in study.criteria.all()} | {"submission_id": "0" * 32}
    assert client.post(reverse("annotation:submit", args=[assignment.pk]), answers).status_code == 302

    export = client_for(researcher).get(reverse("annotation:campaign_export", args=[study.pk, "csv"]))

    rows = list(csv.DictReader(io.StringIO(export.getvalue().decode())))
    assert rows and {(row["shown_profile_fields"], row["shown_history_length"]) for row in rows} == {("age", "0")}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"profile_fields": ["income"]}, "No user of this dataset has a profile field income."),
        ({"history_length": 51}, "Show 0 to 50 history rows."),
    ],
)
def test_unknown_fields_and_bad_history_lengths_are_refused(changes, message) -> None:
    with pytest.raises(CampaignError, match=re.escape(message)):
        campaign(runs=_profiled_runs(), **changes)


def test_the_form_takes_comma_separated_fields(admin_user) -> None:
    runs = _profiled_runs()
    client = client_for(admin_user)

    refused = client.post(reverse("annotation:campaign_create"), campaign_form_data(runs, profile_fields="zip, age"))
    made = client.post(reverse("annotation:campaign_create"), campaign_form_data(runs, profile_fields="age, gender"))

    assert "No user of this dataset has a profile field zip." in refused.content.decode()
    assert made.status_code == 302
    assert Campaign.objects.get().profile_fields == ["age", "gender"]


def _review_campaign():
    """A campaign made with an e-mail address and the user's occupation in one explanation, a web
    address in a recommended title and a phone number in the instructions."""
    runs = _profiled_runs()
    explanation = Explanation.objects.filter(generation_run=runs[0]).select_related("recommendation").order_by("pk")[0]
    Explanation.objects.filter(pk=explanation.pk).update(text="<script>x</script> Mail fan@example.com, fellow artist.")
    Item.objects.filter(pk=explanation.recommendation.item_id).update(title="Visit www.example.org")
    study = campaign_create(
        created_by=None, name="review", generation_runs=runs, instructions="Questions? Call +44 20 7946 0958.",
        history_length=3, attention_checks=0,
    )  # fmt: skip
    return study, explanation


def test_a_new_campaign_stays_in_review_until_every_finding_is_decided(researcher, annotator) -> None:
    study, explanation = _review_campaign()
    flags = {(f.source, f.kind, f.match): f for f in study.privacy_flags.all()}
    items = study.items.count()

    assert study.status == Campaign.Status.REVIEW and not study.is_open
    assert set(flags) == {
        ("instructions", "phone", "+44 20 7946 0958"),
        ("explanation", "email", "fan@example.com"),
        ("explanation", "profile_echo", "artist"),
        ("item title", "url", "www.example.org"),
        ("history title", "url", "www.example.org"),  # the same film is in other users' histories
    }
    shown = flags[("explanation", "email", "fan@example.com")]
    assert list(shown.items.values_list("explanation_id", flat=True)) == [explanation.pk] and shown.n_items == 1
    with pytest.raises(CampaignError, match=r"This campaign is not open yet\."):
        participant_join(campaign=study, user=annotator)
    with pytest.raises(CampaignError, match=r"Decide the 5 privacy findings first\."):
        campaign_open(campaign=study)
    page = client_for(researcher).get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page and 'id="crowd-link"' not in page
    decide = reverse("annotation:privacy_flag_decide", args=[study.pk, shown.pk])
    assert client_for(annotator).post(decide, {"decision": "excluded"}).status_code == 403

    assert client_for(researcher).post(decide, {"decision": "excluded"}).status_code == 302
    with pytest.raises(CampaignError, match="No item shows this finding"):
        privacy_flag_decide(
            flag=flags[("instructions", "phone", "+44 20 7946 0958")], decision="excluded", decided_by=None
        )
    for flag in study.privacy_flags.filter(decision=PrivacyFlag.Decision.PENDING):
        privacy_flag_decide(flag=flag, decision="accepted", decided_by=researcher)
    opened = client_for(researcher).post(reverse("annotation:campaign_open", args=[study.pk]))

    study.refresh_from_db()
    shown.refresh_from_db()
    assert opened.status_code == 302 and study.status == Campaign.Status.OPEN
    assert shown.decision == PrivacyFlag.Decision.EXCLUDED and shown.n_items == 1
    assert study.items.count() == items - 1 and not study.items.filter(explanation=explanation).exists()
    with pytest.raises(CampaignError, match="decided before the campaign opens"):
        privacy_flag_decide(flag=shown, decision="accepted", decided_by=None)
    assert participant_join(campaign=study, user=annotator).campaign_id == study.pk


def test_reference_items_that_show_personal_data_are_refused() -> None:
    study, explanation = _review_campaign()
    explanation.refresh_from_db()

    with pytest.raises(CampaignError, match=r"an e-mail address: fan@example\.com"):
        campaign_reference_item_add(
            campaign=study, explanation=explanation, kind="gold", accepted={"reasonability": [1, 10]}
        )


def test_the_reidentification_estimate_follows_the_history_shown(researcher, annotator) -> None:
    study = campaign(runs=_profiled_runs(), history_length=3)
    url = reverse("annotation:campaign_privacy", args=[study.pk])

    check = campaign_reidentification(study)
    fragment = client_for(researcher).get(url).content.decode()

    curve = check["reidentification"]
    assert [point["length"] for point in curve] == [1, 2, 3] and all(0 <= p["unique_share"] <= 1 for p in curve)
    assert check["longest_safe_length"] == longest_below(curve, 0.05)
    assert 'id="privacy-reidentification"' in fragment and 'id="privacy-safe-length"' in fragment
    assert client_for(annotator).get(url).status_code == 403


def test_the_researcher_chooses_the_threshold_and_a_bad_one_is_refused(researcher) -> None:
    study = campaign(runs=_profiled_runs(), history_length=3)
    url = reverse("annotation:campaign_privacy", args=[study.pk])
    curve = campaign_reidentification(study)["reidentification"]

    lenient = client_for(researcher).get(url, {"threshold": "1"}).content.decode()
    refused = client_for(researcher).get(url, {"threshold": "2"})

    safe = longest_below(curve, 1.0)
    expected = f"Up to {safe} history row" if safe else "a share of items of 1.0 or more"
    assert expected in lenient and "1.0" in lenient
    assert refused.status_code == 400 and 'id="privacy-threshold-error"' in refused.content.decode()
    page = client_for(researcher).get(reverse("annotation:campaign_detail", args=[study.pk])).content.decode()
    assert 'name="threshold"' in page and 'value="0.05"' in page


def test_a_campaign_that_shows_no_history_cannot_single_anyone_out_by_it(researcher) -> None:
    study = campaign(runs=_profiled_runs(), history_length=0)

    check = campaign_reidentification(study)
    fragment = client_for(researcher).get(reverse("annotation:campaign_privacy", args=[study.pk])).content.decode()

    assert check["reidentification"] == [] and check["longest_safe_length"] is None
    assert "Annotators see no history" in fragment


def test_a_campaign_whose_every_item_was_excluded_does_not_open() -> None:
    runs = _profiled_runs()
    Explanation.objects.filter(generation_run=runs[0]).update(text="Write to fan@example.com for more.")
    study = campaign_create(created_by=None, name="all flagged", generation_runs=runs, attention_checks=0)
    (flag,) = study.privacy_flags.all()

    privacy_flag_decide(flag=flag, decision="excluded", decided_by=None)

    assert flag.n_items == 4 and not study.items.exists()
    with pytest.raises(CampaignError, match="Every item was excluded"):
        campaign_open(campaign=study)
