"""Issue 12's findings, each tried again as the attacker or operator who found it.

Roles mean what they say in the Django admin, bad numbers get a form error rather than a
500, every CSV neutralises formulas, and a completion URL must be http(s).
"""

import csv
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from annotation.exports import csv_safe, csv_text
from annotation.models import Campaign
from annotation.services.campaigns import campaign_create
from annotation.services.errors import CampaignError
from annotation.study.tables import Table, to_csv
from explanations.models import GenerationRun
from recommendations.models import RecommenderRun
from tests.annotation.factories import campaign, campaign_form_data, explained_runs
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory
from xrec_site.roles import ADMIN, ANNOTATOR, RESEARCHER

pytestmark = pytest.mark.django_db

User = get_user_model()


# --- Roles in the Django admin ----------------------------------------------------------------


def _campaign_admin_form(study: Campaign, **changes: Any) -> dict[str, Any]:
    data = {
        "name": study.name,
        "items_per_annotator": study.items_per_annotator,
        "lease_minutes": study.lease_minutes,
        "instructions": "",
        "consent_text": "",
        "attention_checks": study.attention_checks,
        "check_every": study.check_every,
        "max_check_failures": study.max_check_failures,
        "completion_url": study.completion_url,
        "completion_code": study.completion_code,
        "criteria-TOTAL_FORMS": "0",
        "criteria-INITIAL_FORMS": "0",
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "1000",
    }
    return data | changes


def test_researcher_only_views_campaigns_in_the_admin(researcher) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), overlap=2)
    campaign_close_url = reverse("admin:annotation_campaign_change", args=[study.pk])
    as_researcher = client_for(researcher)

    page = as_researcher.get(campaign_close_url)
    assert page.status_code == 200 and b'name="name"' not in page.content  # the view-only page
    reopen = _campaign_admin_form(study, status="closed", overlap=50, name="renamed")
    assert as_researcher.post(campaign_close_url, reopen).status_code == 403
    assert as_researcher.get(reverse("admin:annotation_campaign_add")).status_code == 403

    study.refresh_from_db()
    assert (study.name, study.overlap, study.status) == (study.name, 2, Campaign.Status.OPEN)
    assert study.name != "renamed"


def test_the_admin_edits_a_campaigns_texts_but_not_its_status_or_overlap(admin_user) -> None:
    study = campaign(runs=explained_runs(n_users=3, n_runs=1), overlap=2)
    url = reverse("admin:annotation_campaign_change", args=[study.pk])

    response = client_for(admin_user).post(
        url, _campaign_admin_form(study, status="closed", overlap=50, name="renamed")
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    study.refresh_from_db()
    assert (study.name, study.overlap, study.status) == ("renamed", 2, Campaign.Status.OPEN)


def test_researchers_still_run_campaigns_and_train_from_the_site(researcher) -> None:
    assert researcher.has_perm("annotation.run_campaign") and researcher.has_perm("recommendations.train_recommender")
    assert not researcher.has_perm("annotation.add_campaign") and not researcher.has_perm("annotation.change_campaign")
    assert not researcher.has_perm("recommendations.add_recommenderrun")
    assert client_for(researcher).get(reverse("annotation:campaign_create")).status_code == 200
    assert client_for(researcher).get(reverse("recommendations:run_create")).status_code == 200


@pytest.fixture
def other_admin(db):
    return UserFactory(username="adm2", role=ADMIN)


def _user_change_form(user: Any, **changes: Any) -> dict[str, Any]:
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    return data | changes


def test_the_admin_role_cannot_grant_superuser_staff_admin_or_single_permissions(admin_user, annotator) -> None:
    url = reverse("admin:auth_user_change", args=[annotator.pk])
    as_admin = client_for(admin_user)
    admin_group = Group.objects.get(name=ADMIN)
    annotator_group = Group.objects.get(name=ANNOTATOR)

    page = as_admin.get(url).content.decode()
    assert 'name="is_superuser"' not in page and 'name="user_permissions"' not in page and 'name="is_staff"' not in page
    escalate = _user_change_form(
        annotator, is_superuser="on", is_staff="on", groups=[admin_group.pk], user_permissions=["1", "2"]
    )
    refused = as_admin.post(url, escalate)
    # The admin group is not among the choices: the form refuses it and saves nothing.
    assert refused.status_code == 200 and "groups" in refused.context["adminform"].form.errors

    sneaky = _user_change_form(annotator, is_superuser="on", is_staff="on", groups=[annotator_group.pk])
    assert as_admin.post(url, sneaky).status_code == 302
    annotator.refresh_from_db()
    assert not annotator.is_superuser and not annotator.is_staff
    assert not annotator.user_permissions.exists()
    assert set(annotator.groups.values_list("name", flat=True)) == {ANNOTATOR}


def test_the_admin_role_makes_a_researcher_who_becomes_staff(admin_user, annotator) -> None:
    url = reverse("admin:auth_user_change", args=[annotator.pk])
    researcher_group = Group.objects.get(name=RESEARCHER)

    response = client_for(admin_user).post(url, _user_change_form(annotator, groups=[researcher_group.pk]))

    assert response.status_code == 302
    annotator.refresh_from_db()
    assert annotator.is_staff and not annotator.is_superuser
    assert set(annotator.groups.values_list("name", flat=True)) == {RESEARCHER}


def test_the_admin_role_cannot_touch_other_admins_or_superusers(admin_user, other_admin) -> None:
    root = User.objects.create_superuser("root", "root@example.org", PASSWORD)
    as_admin = client_for(admin_user)
    reset = {"password1": "x-Long-pass-1", "password2": "x-Long-pass-1", "usable_password": "true"}

    for target in (other_admin, root):
        assert as_admin.get(reverse("admin:auth_user_change", args=[target.pk])).status_code in (302, 404)
        assert as_admin.post(reverse("admin:auth_user_password_change", args=[target.pk]), reset).status_code == 404
        target.refresh_from_db()
        assert target.check_password(PASSWORD)
    listed = as_admin.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "adm2" not in listed and ">root<" not in listed


def test_the_admin_role_cannot_reach_accounts_with_single_permissions_or_other_groups(admin_user) -> None:
    carol: Any = UserFactory(username="carol", role=RESEARCHER)
    carol.user_permissions.add(Permission.objects.get(codename="add_token"))
    auditor: Any = UserFactory(username="dave")
    auditor.groups.add(Group.objects.create(name="auditors"))
    reset = {"password1": "x-Long-pass-1", "password2": "x-Long-pass-1", "usable_password": "true"}
    as_admin = client_for(admin_user)

    for target in (carol, auditor):
        assert as_admin.post(reverse("admin:auth_user_password_change", args=[target.pk]), reset).status_code == 404
        assert as_admin.post(
            reverse("admin:auth_user_change", args=[target.pk]), _user_change_form(target)
        ).status_code in (302, 404)
        target.refresh_from_db()
        assert target.check_password(PASSWORD)
    assert auditor.groups.filter(name="auditors").exists()


def test_a_superuser_keeps_the_whole_user_admin(annotator) -> None:
    root = User.objects.create_superuser("root", "root@example.org", PASSWORD)
    url = reverse("admin:auth_user_change", args=[annotator.pk])

    assert 'name="is_superuser"' in client_for(root).get(url).content.decode()


# --- Bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": str(10**20)},
        {"seed": "-1"},
        {"items_per_annotator": str(2**31)},
        {"sample_size": str(10**30)},
        {"check_every": "40000"},
        {"max_check_failures": "40000"},
        {"completion_url": "javascript:alert(document.cookie)//{code}"},
        {"completion_url": "data:text/html,<script>alert(1)</script>"},
        {"completion_url": "ftp://example.org/{code}"},
        {"completion_url": "http://example.org/done?cc={code}"},
    ],
    ids=lambda changes: next(iter(changes)) + "=" + next(iter(changes.values()))[:12],
)
def test_out_of_range_numbers_and_non_http_urls_get_a_form_error_and_write_nothing(changes, researcher) -> None:
    runs = explained_runs(n_users=3, n_runs=1)

    response = client_for(researcher).post(
        reverse("annotation:campaign_create"), campaign_form_data(runs, name="bounds", **changes)
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == set(changes)
    assert not Campaign.objects.exists()


def test_an_https_completion_url_is_kept(researcher) -> None:
    runs = explained_runs(n_users=3, n_runs=1)
    url = "https://example.org/done?cc={code}"

    response = client_for(researcher).post(
        reverse("annotation:campaign_create"), campaign_form_data(runs, name="bounds", completion_url=url)
    )

    assert response.status_code == 302
    assert Campaign.objects.get(name="bounds").completion_url == url


def test_the_service_refuses_a_javascript_completion_url() -> None:
    runs = explained_runs(n_users=3, n_runs=1)

    with pytest.raises(CampaignError, match="https://"):
        campaign_create(created_by=None, name="x", generation_runs=runs, completion_url="javascript:alert(1)")
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    ("url_name", "data"),
    [
        ("recommendations:run_create", {"seed": str(10**20), "k": "10", "min_interactions": "5"}),
        ("explanations:run_create", {"seed": str(10**20), "sample_size": str(10**20)}),
    ],
)
def test_other_forms_bound_their_integers(url_name: str, data: dict[str, str], admin_user) -> None:
    response = client_for(admin_user).post(reverse(url_name), data)

    assert response.status_code == 200
    assert {"seed"} <= set(response.context["form"].errors)
    assert not RecommenderRun.objects.exists() and not GenerationRun.objects.exists()


@pytest.mark.parametrize("query", ["runs", "recommender_run", "reference_run", "seed"])
def test_the_study_page_answers_an_id_past_64_bits_with_a_form_error(query: str, researcher) -> None:
    response = client_for(researcher).get(reverse("annotation:study"), {query: str(10**25)})

    assert response.status_code == 200
    assert query in response.context["form"].errors


def test_a_campaign_of_runs_past_64_bits_is_a_form_error(researcher) -> None:
    response = client_for(researcher).post(reverse("annotation:campaign_create"), {"generation_runs": [str(10**25)]})

    assert response.status_code == 200 and "generation_runs" in response.context["form"].errors


@pytest.mark.parametrize("dataset", ["abc", "true", str(10**25), "-1"])
def test_a_runs_filter_that_is_not_a_dataset_id_is_a_400_with_a_message(dataset: str, researcher) -> None:
    response = client_for(researcher).get("/api/runs/", {"dataset": dataset})

    assert response.status_code == 400
    assert "dataset" in response.json()


@pytest.mark.parametrize("query", [{"limit": str(2**63)}, {"offset": str(2**63)}, {"limit": "5000"}])
def test_api_lists_cap_limit_and_offset_instead_of_failing(query: dict[str, str], researcher) -> None:
    explained_runs(n_users=3, n_runs=1)

    response = client_for(researcher).get("/api/runs/", query)

    assert response.status_code == 200
    assert response.json()["count"] == 1 and len(response.json()["results"]) <= 1000


# --- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-0.12", "-0.12"),
        ("-3", "-3"),
        ("1e-5", "1e-5"),
        ("-0.12 [-0.30, 0.10]", "'-0.12 [-0.30, 0.10]"),
        ("Toy Story (1995)", "Toy Story (1995)"),
        (-0.5, -0.5),
        (None, None),
    ],
)
def test_csv_safe_neutralises_every_formula_start(cell: Any, expected: Any) -> None:
    assert csv_safe(cell) == expected


def test_report_csv_and_rating_csv_both_neutralise_formulas(researcher) -> None:
    table = Table(name="runs", caption="Runs", header=["generator", "mean"], rows=[["-2+3+cmd|' /C calc'!A0", "-0.5"]])

    for text in (to_csv(table), csv_text(table.header, table.rows)):
        rows = list(csv.reader(io.StringIO(text)))
        assert rows == [["generator", "mean"], ["'-2+3+cmd|' /C calc'!A0", "-0.5"]]
