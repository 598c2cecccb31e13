"""The claims campaign in the study report: support per run with intervals, and how the automatic
checker and the hallucinated-title metric agree with the annotators."""

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from annotation.models import Campaign
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import campaign_create, campaign_open, participant_join
from annotation.services.claims import item_claims_set
from annotation.study.cross import cross_study_tables
from annotation.study.report import study_report
from annotation.study.tables import report_tables
from explanations.models import CheckedClaim, ClaimCheck
from explanations.services.claims import CLAIM_CHECK, claim_check_start
from tests.annotation.factories import campaign, claim_runs
from tests.conftest import client_for
from tests.explanations.scripted import scripted_judge

pytestmark = pytest.mark.django_db

# Per claim position: what the annotators answer; the third annotator doubts the second claim.
AGREED = ["supported", "supported", "unsupported", "contradicted"]
DOUBTING = ["supported", "unsupported", "unsupported", "contradicted"]


def _checker_verdict(prompt: str) -> str:
    claim = prompt.split("A claim from an explanation of this recommendation:\n")[1].split("\n")[0]
    return "Supported: yes" if claim.startswith("Version") or claim.endswith("is a drama") else "Supported: no"


def _labelled(django_user_model) -> tuple[Campaign, list]:
    runs = claim_runs(n_users=4, n_runs=2)
    study = campaign(runs=runs, mode=Campaign.Mode.CLAIMS, overlap=3, items_per_annotator=8)
    permission = Permission.objects.get(codename="annotate")
    for index, pattern in enumerate([AGREED, AGREED, DOUBTING]):
        user = django_user_model.objects.create_user(f"claims-coder-{index}")
        user.user_permissions.add(permission)
        participant = participant_join(campaign=study, user=user)
        while (assignment := campaign_assign_next(participant=participant)) is not None:
            claims = list(assignment.item.claims.all())
            answers = {claim.field_name: pattern[claim.position] for claim in claims}
            rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    return study, runs


def test_the_report_gives_support_per_run_and_the_checkers_agreement_with_annotators(django_user_model) -> None:
    study, runs = _labelled(django_user_model)
    checker, _ = scripted_judge(_checker_verdict, name="scripted-claim-checker")
    check = claim_check_start(created_by=None, checker=checker, generation_run=runs[0], enqueue=False)
    CLAIM_CHECK.run_here(check)

    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)

    assert [section["campaign"] for section in report["human_claims"]] == [study.pk]
    assert all(section["campaign"] != study.pk for section in report["human"])
    section = report["human_claims"][0]
    assert section["annotators"] == 3 and len(section["runs"]) == 2
    for run in section["runs"]:
        # Claims 1 and 2 are supported by the majority, 3 and 4 are not: every explanation has one.
        assert run["verified_claims"]["estimate"] == pytest.approx(0.5)
        assert run["unsupported_explanations"]["estimate"] == 1.0
        assert 0.25 < run["support"]["estimate"] < 0.5
        assert run["support"]["low"] <= run["support"]["estimate"] <= run["support"]["high"]
        assert run["contradicted"]["estimate"] == pytest.approx(0.25)
    assert section["agreement"]["labels"]["estimate"] is not None
    (checked,) = section["checkers"]
    assert checked["matched"] == 4 * 4 and checked["unmatched"] == 0
    assert checked["kappa"]["estimate"] == pytest.approx(1.0) and checked["auroc"]["estimate"] == pytest.approx(1.0)
    titles = section["hallucinated_titles"]
    assert titles["n"] == 8 and titles["true"] == 8 and titles["flagged"] == 0  # no title outside the prompt
    assert titles["auroc"]["estimate"] is None  # every explanation has an unsupported claim: one class

    tables = {table.name: table for table in report_tables(report)}
    assert len(tables["human_claims"].rows) == 2
    signals = [row[1] for row in tables["claim_agreement"].rows]
    assert signals[:2] == ["annotators: alpha on the three labels", "annotators: alpha on supported or not"]
    assert signals[2].startswith("checker scripted-claim-checker") and signals[3].startswith("hallucinated title")
    cross = {table.name: table for table in cross_study_tables([report])}
    assert len(cross["cross_human_claim_support"].rows) == 2  # one row per generator


def test_the_study_page_shows_the_claims_tables(django_user_model, researcher) -> None:
    study, runs = _labelled(django_user_model)
    query = f"recommender_run={runs[0].recommender_run_id}&" + "&".join(f"runs={run.pk}" for run in runs)

    page = client_for(researcher).get(f"{reverse('annotation:study')}?{query}").content.decode()

    assert "Claims campaigns: share of claim labels saying supported" in page
    assert f"#{study.pk} {study.name}" in page


def test_a_check_of_the_campaigns_own_split_matches_every_claim_after_a_resplit(django_user_model, admin_user) -> None:
    runs = claim_runs(n_users=3, n_runs=1)
    study = campaign_create(
        created_by=None, name="resplit", generation_runs=runs, mode=Campaign.Mode.CLAIMS, attention_checks=0
    )
    item = study.items.select_related("explanation").order_by("pk")[0]
    first, second = item.explanation.text.split(". ", 1)
    item_claims_set(item=item, pieces=[f"{first}.", second])  # four claims become two
    campaign_open(campaign=study)
    checker, _ = scripted_judge(_checker_verdict, name="scripted-claim-checker")
    default = claim_check_start(created_by=None, checker=checker, generation_run=runs[0], enqueue=False)
    CLAIM_CHECK.run_here(default)

    response = client_for(admin_user).post(
        reverse("annotation:campaign_claim_check", args=[study.pk]),
        {"checker": checker.pk, "answer_mode": "likelihood"},
    )
    (own,) = ClaimCheck.objects.exclude(pk=default.pk)
    CLAIM_CHECK.run_here(own)
    participant = participant_join(campaign=study, user=admin_user)
    while (assignment := campaign_assign_next(participant=participant)) is not None:
        answers = {claim.field_name: "supported" for claim in assignment.item.claims.all()}
        rating_submit(assignment=assignment, answers=answers, submission_id=uuid.uuid4())
    report = study_report(recommender_run=runs[0].recommender_run, generation_runs=runs)

    assert response.status_code == 302 and own.lineage["claims_from"] == f"campaign #{study.pk}"
    assert CheckedClaim.objects.filter(claim_check=own).count() == 2 + 4 + 4
    by_check = {section["claim_check"]: section for section in report["human_claims"][0]["checkers"]}
    assert by_check[own.pk]["matched"] == 10 and by_check[own.pk]["unmatched"] == 0
    assert by_check[default.pk]["matched"] == 9 and by_check[default.pk]["unmatched"] == 3  # its cuts differ
