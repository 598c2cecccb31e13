"""What crowd annotators see of a dataset user: no demographics unless the campaign chooses them,
and as much history as it says; the choice is on the campaign page and in the export. The
privacy check lists the personal data they would see and how often the history singles a user out."""

import csv
import io
import re

import pytest
from django.urls import reverse

from annotation.models import Campaign
from annotation.privacy import longest_below
from annotation.services.assignments import campaign_assign_next
from annotation.services.campaigns import CampaignError, participant_join
from annotation.services.privacy import campaign_privacy_check
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


def test_the_privacy_check_lists_what_annotators_would_see_and_the_reidentification_curve(
    researcher, annotator
) -> None:
    runs = _profiled_runs()
    study = campaign(runs=runs, instructions="Questions? Call +44 20 7946 0958.", history_length=3)
    item = study.items.select_related("explanation", "recommendation__item").order_by("pk").first()
    assert item is not None
    Explanation.objects.filter(pk=item.explanation_id).update(
        text="<script>x</script> Mail me at fan@example.com, fellow artist."
    )
    Item.objects.filter(pk=item.recommendation.item_id).update(title="Visit www.example.org")
    url = reverse("annotation:campaign_privacy", args=[study.pk])

    check = campaign_privacy_check(study)
    fragment = client_for(researcher).get(url).content.decode()

    found = {(f["source"], f["kind"], f["match"]) for f in check["findings"]}
    assert {
        ("instructions", "phone", "+44 20 7946 0958"),
        ("explanation", "email", "fan@example.com"),
        ("explanation", "profile_echo", "artist"),
        ("item title", "url", "www.example.org"),
    } <= found
    assert all(item.pk in f["items"] for f in check["findings"] if f["source"] == "explanation")
    curve = check["reidentification"]
    assert [point["length"] for point in curve] == [1, 2, 3] and all(0 <= p["unique_share"] <= 1 for p in curve)
    assert check["longest_safe_length"] == longest_below(curve, 0.05)
    assert "&lt;script&gt;x&lt;/script&gt;" in fragment and "<script>x" not in fragment
    assert 'id="privacy-reidentification"' in fragment and "fan@example.com" in fragment
    assert client_for(annotator).get(url).status_code == 403


def test_a_campaign_that_shows_no_history_cannot_single_anyone_out_by_it(researcher) -> None:
    study = campaign(runs=_profiled_runs(), history_length=0)

    check = campaign_privacy_check(study)
    fragment = client_for(researcher).get(reverse("annotation:campaign_privacy", args=[study.pk])).content.decode()

    assert check["reidentification"] == [] and check["longest_safe_length"] is None
    assert "Annotators see no history" in fragment
