"""Claims campaigns: the split, its review, labelling claims with marked words, gold claims,
agreement and exports."""

import csv
import io
import json
import uuid

import pytest
from django.urls import reverse

from annotation.agreement import campaign_agreement
from annotation.models import Assignment, Campaign, CampaignItem, ClaimLabel, ItemClaim
from annotation.services.assignments import SubmitError, rating_submit
from annotation.services.campaigns import campaign_create, campaign_open, campaign_reference_item_add, participant_join
from annotation.services.claims import item_claims_set
from annotation.services.errors import CampaignError
from explanations.models import Explanation
from tests.annotation.factories import campaign, claim_runs, take
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Campaign:
    return campaign(runs=claim_runs(n_users=4, n_runs=2), mode=Campaign.Mode.CLAIMS, items_per_annotator=3)


def in_review(**options) -> Campaign:
    runs = claim_runs(n_users=3, n_runs=1)
    return campaign_create(
        created_by=None, name="claims", generation_runs=runs, mode=Campaign.Mode.CLAIMS, attention_checks=0, **options
    )


def first_item(study: Campaign) -> CampaignItem:
    """The campaign's first pool item, with its explanation."""
    return study.items.filter(kind=CampaignItem.Kind.REGULAR).select_related("explanation").order_by("pk")[0]


def labels_for(assignment: Assignment, *labels: str) -> dict[str, str]:
    claims = list(assignment.item.claims.all())
    chosen = list(labels) + ["supported"] * (len(claims) - len(labels))
    return {claim.field_name: label for claim, label in zip(claims, chosen, strict=True)}


def test_a_claims_campaign_cuts_every_explanation_into_claims_and_uses_no_rubric(study) -> None:
    item = first_item(study)

    claims = [claim.text for claim in item.claims.all()]

    title = item.recommendation.item.title
    assert claims[1:] == [f"{title} is a drama", "it keeps you guessing", "its plot twists."]
    assert claims[0].startswith("Version") and claims[0].endswith(".")
    assert not study.criteria.exists()
    assert ItemClaim.objects.filter(item__campaign=study).count() == 4 * study.items.count()
    for claim in item.claims.all():
        assert item.explanation.text[claim.start : claim.end] == claim.text


def test_the_researcher_resplits_an_item_in_review_and_not_once_open() -> None:
    study = in_review()
    item = first_item(study)
    first, second = item.explanation.text.split(". ", 1)

    claims = item_claims_set(item=item, pieces=[second, "  "])

    assert [claim.text for claim in item.claims.all()] == [second]
    assert claims[0].start == len(first) + 2
    with pytest.raises(CampaignError, match="not found after claim 1"):
        item_claims_set(item=item, pieces=[second, first])
    assert [claim.text for claim in item.claims.all()] == [second]  # a refused split changes nothing
    campaign_open(campaign=study)
    with pytest.raises(CampaignError, match="fixed once the campaign is open"):
        item_claims_set(item=item, pieces=[first])


def test_the_split_page_previews_claims_and_saves_a_new_split(researcher) -> None:
    study = in_review()
    item = first_item(study)
    client = client_for(researcher)
    url = reverse("annotation:campaign_claims", args=[study.pk])

    page = client.get(url).content.decode()
    assert "Adjust the split" in page and "<sup>4</sup>" in page

    lines = "\n".join(piece for piece in item.explanation.text.split(". ") if piece)
    response = client.post(reverse("annotation:item_claims_split", args=[study.pk, item.pk]), {"claims": lines})

    assert response.status_code == 302 and response["Location"].endswith(f"#item-{item.pk}")
    assert item.claims.count() == 2
    refused = client.post(
        reverse("annotation:item_claims_split", args=[study.pk, item.pk]),
        {"claims": "words that are not there"},
        follow=True,
    )
    assert "is not found in the explanation" in refused.content.decode()
    assert item.claims.count() == 2


def test_the_split_page_escapes_explanation_text(researcher) -> None:
    study = in_review()
    item = first_item(study)
    Explanation.objects.filter(pk=item.explanation_id).update(text="<script>alert(1)</script> is great.")
    item.explanation.refresh_from_db()
    item_claims_set(item=item, pieces=["<script>alert(1)</script> is great."])

    page = client_for(researcher).get(reverse("annotation:campaign_claims", args=[study.pk])).content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_annotators_and_other_modes_cannot_reach_the_split_page(annotator, researcher) -> None:
    study = in_review()
    likert = campaign(runs=list(study.generation_runs.all()))

    assert client_for(annotator).get(reverse("annotation:campaign_claims", args=[study.pk])).status_code == 403
    assert client_for(researcher).get(reverse("annotation:campaign_claims", args=[likert.pk])).status_code == 404
    item = first_item(study)
    response = client_for(annotator).post(
        reverse("annotation:item_claims_split", args=[study.pk, item.pk]), {"claims": "x"}
    )
    assert response.status_code == 403


def test_the_claims_page_shows_each_claim_with_its_words_and_the_shortcuts(annotator, study) -> None:
    assignment = take(participant_join(campaign=study, user=annotator))

    page = client_for(annotator).get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()

    assert 'data-kind="claim"' in page
    for claim in assignment.item.claims.all():
        assert f'data-claim="{claim.pk}"' in page and f'name="{claim.field_name}"' in page
        assert f'name="spans_{claim.pk}"' in page
    assert '<span class="word" data-start="0" data-end="7">Version</span>' in page
    assert "<kbd>S</kbd> or <kbd>1</kbd> supported" in page
    assert 'class="claim-span" data-claim-number="4"' in page


def test_labels_and_marked_words_are_stored_per_claim_and_a_revision_keeps_the_old_label(annotator, study) -> None:
    assignment = take(participant_join(campaign=study, user=annotator))
    claims = list(assignment.item.claims.all())
    client = client_for(annotator)
    data = {claim.field_name: "supported" for claim in claims} | {"submission_id": str(uuid.uuid4())}
    data[claims[2].field_name] = "contradicted"
    data[f"spans_{claims[2].pk}"] = json.dumps([[3, 8], [0, 3], [9, 12]])
    data[f"spans_{claims[0].pk}"] = json.dumps([[0, 3]])  # on a supported claim: dropped

    response = client.post(reverse("annotation:submit", args=[assignment.pk]), data)

    assert response.status_code == 302
    stored = {label.claim_id: label for label in ClaimLabel.objects.filter(assignment=assignment)}
    assert stored[claims[2].pk].label == "contradicted"
    assert stored[claims[2].pk].spans == [[0, 8], [9, 12]]  # sorted, touching spans merged
    assert stored[claims[0].pk].spans == []
    revised = data | {claims[2].field_name: "unsupported", "submission_id": str(uuid.uuid4())}
    client.post(reverse("annotation:submit", args=[assignment.pk]), revised)
    label = ClaimLabel.objects.get(assignment=assignment, claim=claims[2])
    assert label.label == "unsupported" and label.previous[0]["label"] == "contradicted"
    page = client.get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()
    assert 'value="unsupported" id="id_claim_' in page and "checked" in page
    assert "[[0, 8], [9, 12]]" in page.replace("&quot;", '"')


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"missing": True}, "This field is required"),
        ({"spans": "[[5, 1]]"}, "within the claim"),
        ({"spans": "not json"}, "Expecting value"),
        ({"label": "maybe"}, "Select a valid choice"),
    ],
)
def test_a_bad_claims_submission_is_refused_and_stores_nothing(annotator, study, change, error) -> None:
    assignment = take(participant_join(campaign=study, user=annotator))
    claims = list(assignment.item.claims.all())
    data = {claim.field_name: "supported" for claim in claims} | {"submission_id": str(uuid.uuid4())}
    if change.get("missing"):
        del data[claims[1].field_name]
    if "spans" in change:
        data[claims[1].field_name] = "unsupported"
        data[f"spans_{claims[1].pk}"] = change["spans"]
    if "label" in change:
        data[claims[1].field_name] = change["label"]

    response = client_for(annotator).post(reverse("annotation:submit", args=[assignment.pk]), data)

    assert response.status_code == 400 and error in response.content.decode()
    assert not ClaimLabel.objects.exists()
    assert Assignment.objects.get(pk=assignment.pk).status == Assignment.Status.ACTIVE


def test_the_service_refuses_labels_for_claims_of_another_item(annotator, study) -> None:
    assignment = take(participant_join(campaign=study, user=annotator))
    other = ItemClaim.objects.exclude(item=assignment.item)[0]

    with pytest.raises(SubmitError, match="Label every claim"):
        rating_submit(assignment=assignment, answers={other.field_name: "supported"}, submission_id=uuid.uuid4())
    assert not ClaimLabel.objects.exists()


def test_gold_claims_pass_or_fail_by_their_accepted_labels(annotator, study) -> None:
    explanation = first_item(study).explanation
    gold = campaign_reference_item_add(
        campaign=study,
        explanation=explanation,
        kind=CampaignItem.Kind.GOLD,
        accepted={"2": "supported", "4": "unsupported"},
    )
    claims = list(gold.claims.all())
    assert gold.accepted == {claims[1].field_name: "supported", claims[3].field_name: "unsupported"}
    with pytest.raises(CampaignError, match="claims 1 to 4"):
        campaign_reference_item_add(
            campaign=study, explanation=explanation, kind=CampaignItem.Kind.GOLD, accepted={"5": "supported"}
        )
    with pytest.raises(CampaignError, match="label is one of"):
        campaign_reference_item_add(
            campaign=study, explanation=explanation, kind=CampaignItem.Kind.GOLD, accepted={"1": "true"}
        )
    participant = participant_join(campaign=study, user=annotator)
    assignment = Assignment.objects.create(
        campaign=study, participant=participant, item=gold, position=1, expires_at="2100-01-01T00:00:00Z"
    )

    wrong = rating_submit(assignment=assignment, answers=labels_for(assignment), submission_id=uuid.uuid4())
    assert wrong.assignment.check_passed is False
    right = rating_submit(
        assignment=assignment,
        answers=labels_for(assignment, "supported", "supported", "supported", "unsupported"),
        submission_id=uuid.uuid4(),
    )
    assert right.assignment.check_passed is True


def test_a_training_claim_item_shows_the_expected_label_afterwards(annotator, study) -> None:
    explanation = first_item(study).explanation
    campaign_reference_item_add(
        campaign=study,
        explanation=explanation,
        kind=CampaignItem.Kind.TRAINING,
        accepted={"1": "contradicted"},
        feedback="The history does not show that title.",
    )
    assignment = take(participant_join(campaign=study, user=annotator))
    assert assignment.item.kind == CampaignItem.Kind.TRAINING
    data = labels_for(assignment) | {"submission_id": str(uuid.uuid4())}

    page = client_for(annotator).post(reverse("annotation:submit", args=[assignment.pk]), data).content.decode()

    assert (
        "<b>Claim 1</b>: you answered Supported by the history or the item&#x27;s details; expected Contradicted."
        in page
    )


def test_agreement_is_computed_per_claim(study, django_user_model) -> None:
    from django.contrib.auth.models import Permission

    permission = Permission.objects.get(codename="annotate")
    for index, pattern in enumerate(
        [("supported", "unsupported"), ("supported", "unsupported"), ("supported", "contradicted")]
    ):
        user = django_user_model.objects.create_user(f"coder{index}")
        user.user_permissions.add(permission)
        participant = participant_join(campaign=study, user=user)
        for _ in range(3):
            assignment = take(participant)
            rating_submit(assignment=assignment, answers=labels_for(assignment, *pattern), submission_id=uuid.uuid4())

    rows = {row["criterion"]: row for row in campaign_agreement(study)}

    assert rows["claim label"]["answers"] == 36
    assert rows["claim label"]["units_paired"] > 0
    assert rows["supported or not"]["nominal"] is not None
    assert rows["supported or not"]["nominal"] >= rows["claim label"]["nominal"]


def test_the_export_has_a_row_per_claim_with_its_text_and_marked_words(annotator, researcher, study) -> None:
    assignment = take(participant_join(campaign=study, user=annotator))
    claims = list(assignment.item.claims.all())
    answers = labels_for(assignment, "supported", "unsupported")
    rating_submit(
        assignment=assignment, answers=answers, submission_id=uuid.uuid4(), spans={claims[1].field_name: [[0, 4]]}
    )

    body = client_for(researcher).get(reverse("annotation:campaign_export", args=[study.pk, "csv"])).getvalue()

    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [row["criterion"] for row in rows] == ["claim_1", "claim_2", "claim_3", "claim_4"]
    assert rows[1]["choice"] == "unsupported" and rows[1]["claim_text"] == claims[1].text
    assert rows[1]["marked_spans"] == "[[0, 4]]" and rows[1]["marked_text"] == claims[1].text[:4]
    assert rows[0]["campaign_mode"] == "claims" and rows[0]["claim_start"] == str(claims[0].start)


def test_an_explanation_without_a_claim_makes_no_item() -> None:
    runs = claim_runs(n_users=3, n_runs=1)
    empty = Explanation.objects.filter(generation_run=runs[0]).order_by("pk")[0]
    Explanation.objects.filter(pk=empty.pk).update(text="...")

    study = campaign(runs=runs, mode=Campaign.Mode.CLAIMS)

    assert not study.items.filter(explanation=empty).exists()
    assert study.items.filter(kind=CampaignItem.Kind.REGULAR).count() == 2
