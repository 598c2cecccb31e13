"""Who may see and change what in annotation, and what an annotator's page never shows.

A specification of the study's security guarantees: annotators reach only their own work
(anyone else's id is a 404 and changes nothing), researcher pages and user management are
closed to those without the permission, every state-changing POST needs its CSRF token,
crowd links sign in an account that can do nothing else and keep only a keyed hash of the
worker id, dataset text and researcher Markdown cannot run script, the rating page is
blind to the systems compared, and a closed campaign takes no more answers.
"""

import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from annotation.models import Assignment, Campaign, CampaignItem, Participant, Rating, RatingRevision, Submission
from annotation.querysets import task_context
from annotation.services.assignments import campaign_assign_next, rating_submit
from annotation.services.campaigns import campaign_close, participant_consent, participant_join
from explanations.models import Explanation, GenerationRun
from recommendations.models import DatasetUser, Item
from tests.annotation.factories import campaign, campaign_form_data, explained_runs
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory
from xrec_site.roles import ANNOTATOR

pytestmark = pytest.mark.django_db

User = get_user_model()


# --- Data ------------------------------------------------------------------------------------


@dataclass
class World:
    """Two campaigns over the same runs: the attacker (``annotator``) takes part in
    ``shared`` only; the victim takes part in both and has answered in each."""

    shared: Campaign
    foreign: Campaign
    attacker_assignment: Assignment
    victim_participant: Participant
    victim_active: Assignment
    victim_submitted: Assignment
    victim_foreign: Assignment


@pytest.fixture
def runs() -> list[GenerationRun]:
    # Twelve recommendations: enough pairwise items for the side order to vary.
    return explained_runs(n_users=12, n_runs=2)


@pytest.fixture
def victim(db):
    return UserFactory(username="victim", role=ANNOTATOR)


@pytest.fixture
def world(runs, annotator, victim) -> World:
    shared = campaign(runs=runs, name="shared")
    foreign = campaign(runs=runs, name="foreign", consent_text="I agree.", items_per_annotator=1)
    mine = participant_join(campaign=shared, user=annotator)
    theirs = participant_join(campaign=shared, user=victim)
    theirs_foreign = participant_join(campaign=foreign, user=victim)

    attacker_assignment = _served(mine)
    victim_submitted = _served(theirs)
    _answered(victim_submitted, 7)
    victim_active = _served(theirs)
    participant_consent(participant=theirs_foreign)
    victim_foreign = _served(theirs_foreign)
    _answered(victim_foreign, 3)
    assert campaign_assign_next(participant=theirs_foreign) is None  # quota of one: completed
    for assignment in (victim_submitted, victim_foreign):
        assignment.refresh_from_db()
    return World(
        shared=shared,
        foreign=foreign,
        attacker_assignment=attacker_assignment,
        victim_participant=theirs,
        victim_active=victim_active,
        victim_submitted=victim_submitted,
        victim_foreign=victim_foreign,
    )


def _served(participant: Participant) -> Assignment:
    assignment = campaign_assign_next(participant=participant)
    assert assignment is not None
    return assignment


def _answered(assignment: Assignment, value: int) -> None:
    criteria = assignment.campaign.criteria.all()
    rating_submit(assignment=assignment, answers={c.name: value for c in criteria}, submission_id=uuid.uuid4())


def _answers(assignment: Assignment, value: str = "5") -> dict[str, str]:
    """A valid POST body for ``annotation:submit``, with a fresh submission id."""
    data = {"submission_id": str(uuid.uuid4())}
    if assignment.item.kind == CampaignItem.Kind.ATTENTION:
        return data | {"fits_user": "yes"}
    pairwise = assignment.item.explanation_b_id is not None
    for criterion in assignment.campaign.criteria.all():
        data[criterion.name] = "left" if pairwise else value
    return data


def _annotation_rows() -> dict[str, list[dict[str, Any]]]:
    """Every annotation row, field by field: a refused request must leave this unchanged."""
    models = (Campaign, CampaignItem, Participant, Assignment, Rating, RatingRevision, Submission)
    return {model.__name__: [dict(row) for row in model.objects.order_by("pk").values()] for model in models}


class _ActiveContent(HTMLParser):
    """What a browser would run or fetch from a page: inline scripts, event handlers,
    ``javascript:`` URLs, and the injected tags no page of the site uses."""

    INJECTED_TAGS = frozenset({"img", "svg", "iframe", "object", "embed"})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("src"):
            self.found.append("inline <script>")
        if tag in self.INJECTED_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            # The parser has already decoded entities, so "java&#x73;cript:" is caught too.
            compact = "".join((value or "").split()).lower()
            if name in ("href", "src", "action", "formaction", "xlink:href") and compact.startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value}>")


def active_content(html: str) -> list[str]:
    parser = _ActiveContent()
    parser.feed(html)
    parser.close()
    return parser.found


# --- Annotators reach only their own work -----------------------------------------------------

# (method, URL name, what the id names); every one is another annotator's.
FOREIGN_REQUESTS = [
    pytest.param("get", "annotation:assignment", "victim_active", id="assignment-page-active"),
    pytest.param("get", "annotation:assignment", "victim_submitted", id="assignment-page-submitted"),
    pytest.param("get", "annotation:assignment", "victim_foreign", id="assignment-page-other-campaign"),
    pytest.param("post", "annotation:submit", "victim_active", id="submit-first-answer"),
    pytest.param("post", "annotation:submit", "victim_submitted", id="submit-revision"),
    pytest.param("post", "annotation:submit", "victim_foreign", id="submit-other-campaign"),
    pytest.param("get", "annotation:next", "foreign", id="next"),
    pytest.param("get", "annotation:consent", "foreign", id="consent-page"),
    pytest.param("post", "annotation:consent", "foreign", id="consent-given"),
    pytest.param("get", "annotation:done", "foreign", id="done"),
    pytest.param("get", "annotation:api_assignment", "victim_active", id="api-assignment-active"),
    pytest.param("get", "annotation:api_assignment", "victim_submitted", id="api-assignment-submitted"),
]


def _request_for(world: World, method: str, url_name: str, target: str) -> tuple[str, str, dict[str, str]]:
    obj = getattr(world, target)
    data: dict[str, str] = {}
    if url_name == "annotation:submit":
        data = _answers(obj)
    elif url_name == "annotation:consent" and method == "post":
        data = {"consent": "yes"}
    return method, reverse(url_name, args=[obj.pk]), data


@pytest.mark.parametrize(("method", "url_name", "target"), FOREIGN_REQUESTS)
def test_another_annotators_id_is_not_found_and_changes_nothing(
    method: str, url_name: str, target: str, world: World, annotator
) -> None:
    client = client_for(annotator)
    method, url, data = _request_for(world, method, url_name, target)
    before = _annotation_rows()

    response = getattr(client, method)(url, data)

    assert response.status_code == 404
    assert _annotation_rows() == before


def test_assignment_list_api_shows_only_the_annotators_own_assignments(world: World, annotator) -> None:
    response = client_for(annotator).get(reverse("annotation:api_assignments"))

    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [world.attacker_assignment.pk]


def test_annotator_reaches_their_own_assignment(world: World, annotator) -> None:
    # The control for the 404s above: the same pages work for the assignment's owner.
    client = client_for(annotator)
    own = world.attacker_assignment

    assert client.get(reverse("annotation:assignment", args=[own.pk])).status_code == 200
    assert client.get(reverse("annotation:api_assignment", args=[own.pk])).status_code == 200
    response = client.post(reverse("annotation:submit", args=[own.pk]), _answers(own))
    assert response.status_code == 302
    assert Rating.objects.filter(assignment=own).count() == own.campaign.criteria.count()


def test_another_annotators_submission_id_changes_nothing(world: World, annotator) -> None:
    # Ids are random, but a leaked one must still not let a form overwrite someone's answer.
    theirs = Submission.objects.get(assignment=world.victim_submitted)
    own = world.attacker_assignment
    before = _annotation_rows()

    response = client_for(annotator).post(
        reverse("annotation:submit", args=[own.pk]), _answers(own) | {"submission_id": str(theirs.submission_id)}
    )

    assert response.status_code == 400
    assert _annotation_rows() == before


ANONYMOUS_REQUESTS = [
    *FOREIGN_REQUESTS,
    pytest.param("post", "annotation:join", "shared", id="join"),
    pytest.param("get", "annotation:next", "shared", id="next-open-campaign"),
]


@pytest.mark.parametrize(("method", "url_name", "target"), ANONYMOUS_REQUESTS)
def test_anonymous_visitor_is_sent_to_login_and_changes_nothing(
    method: str, url_name: str, target: str, world: World
) -> None:
    method, url, data = _request_for(world, method, url_name, target)
    before = _annotation_rows()

    response = getattr(Client(), method)(url, data)

    if "api" in url_name:
        assert response.status_code in (403, 404)
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert _annotation_rows() == before


def test_anonymous_visitor_gets_no_assignment_list(world: World) -> None:
    assert Client().get(reverse("annotation:api_assignments")).status_code in (403, 404)


# --- Researcher pages and user management -----------------------------------------------------

CHANGES = {"create campaign", "close campaign", "add reference item", "exclude participant"}
RESEARCHER_PAGES = [
    "campaign list",
    "new campaign form",
    "create campaign",
    "campaign page",
    "close campaign",
    "add reference item",
    "exclude participant",
    "csv export",
    "jsonl export",
    "campaigns api",
    "ratings api",
]
RESEARCHER_READS = [page for page in RESEARCHER_PAGES if page not in CHANGES]


def _researcher_requests(world: World, runs: list[GenerationRun]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    shared = world.shared.pk
    return {
        "campaign list": ("get", reverse("annotation:campaign_list"), {}),
        "new campaign form": ("get", reverse("annotation:campaign_create"), {}),
        "create campaign": ("post", reverse("annotation:campaign_create"), campaign_form_data(runs)),
        "campaign page": ("get", reverse("annotation:campaign_detail", args=[shared]), {}),
        "close campaign": ("post", reverse("annotation:campaign_close", args=[shared]), {}),
        "add reference item": (
            "post",
            reverse("annotation:reference_add", args=[shared]),
            {
                "kind": "gold",
                "explanation_id": world.victim_active.item.explanation_id,
                "accepted": "reasonability=1-3",
            },
        ),
        "exclude participant": (
            "post",
            reverse("annotation:participant_exclude", args=[shared, world.victim_participant.pk]),
            {"excluded": "1"},
        ),
        "csv export": ("get", reverse("annotation:campaign_export", args=[shared, "csv"]), {}),
        "jsonl export": ("get", reverse("annotation:campaign_export", args=[shared, "jsonl"]), {}),
        "campaigns api": ("get", reverse("annotation:api_campaigns"), {}),
        "ratings api": ("get", reverse("annotation:api_ratings", args=[shared]), {}),
    }


@pytest.mark.parametrize("page", RESEARCHER_PAGES)
def test_annotator_is_forbidden_on_researcher_pages_and_changes_nothing(
    page: str, world: World, runs, annotator
) -> None:
    method, url, data = _researcher_requests(world, runs)[page]
    client = client_for(annotator)
    before = _annotation_rows()

    response = getattr(client, method)(url, data)

    assert response.status_code == 403
    assert _annotation_rows() == before


@pytest.mark.parametrize("page", RESEARCHER_PAGES)
def test_anonymous_visitor_is_sent_to_login_from_researcher_pages(page: str, world: World, runs) -> None:
    method, url, data = _researcher_requests(world, runs)[page]
    before = _annotation_rows()

    response = getattr(Client(), method)(url, data)

    if "api" in page:
        assert response.status_code in (403, 404)
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert _annotation_rows() == before


@pytest.mark.parametrize("page", RESEARCHER_READS)
def test_researcher_reads_every_campaign_page(page: str, world: World, runs, researcher) -> None:
    method, url, data = _researcher_requests(world, runs)[page]

    response = getattr(client_for(researcher), method)(url, data)

    assert response.status_code == 200


def test_researcher_creates_a_campaign(runs, researcher) -> None:
    response = client_for(researcher).post(reverse("annotation:campaign_create"), campaign_form_data(runs, name="mine"))

    created = Campaign.objects.get(name="mine")
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:campaign_detail", args=[created.pk])
    assert created.created_by == researcher


def test_only_admins_add_or_change_site_accounts(researcher, admin_user, annotator) -> None:
    add_url = reverse("admin:auth_user_add")
    change_annotator = reverse("admin:auth_user_change", args=[annotator.pk])
    change_self = reverse("admin:auth_user_change", args=[researcher.pk])
    password_url = reverse("admin:auth_user_password_change", args=[annotator.pk])
    new_account = {"username": "intruder", "password1": "x-Long-pass-1", "password2": "x-Long-pass-1"}
    new_account |= {"usable_password": "true"}
    as_researcher = client_for(researcher)

    assert as_researcher.get(add_url).status_code == 403
    assert as_researcher.post(add_url, new_account).status_code == 403
    assert as_researcher.get(change_annotator).status_code == 403
    promote = {"username": researcher.username, "is_active": "on", "is_staff": "on", "is_superuser": "on"}
    assert as_researcher.post(change_self, promote).status_code == 403
    reset = {"password1": "x-Long-pass-1", "password2": "x-Long-pass-1"}
    assert as_researcher.post(password_url, reset).status_code == 403
    assert client_for(annotator).get(reverse("admin:index"))["Location"].startswith(reverse("admin:login"))

    researcher.refresh_from_db()
    annotator.refresh_from_db()
    assert not researcher.is_superuser
    assert annotator.check_password(PASSWORD)
    assert not User.objects.filter(username="intruder").exists()

    as_admin = client_for(admin_user)
    assert as_admin.get(change_annotator).status_code == 200
    assert as_admin.post(add_url, new_account).status_code == 302
    assert User.objects.filter(username="intruder").exists()


# --- CSRF -------------------------------------------------------------------------------------


def _csrf_posts(world: World, annotator, researcher) -> dict[str, tuple[Any, str, dict[str, str]]]:
    # Each POST would succeed with its token: the annotator owns the assignment, takes part in
    # ``shared`` (not yet consented) and not in ``foreign``; the researcher may close.
    return {
        "annotation:submit": (
            annotator,
            reverse("annotation:submit", args=[world.attacker_assignment.pk]),
            _answers(world.attacker_assignment),
        ),
        "annotation:join": (annotator, reverse("annotation:join", args=[world.foreign.pk]), {}),
        "annotation:consent": (annotator, reverse("annotation:consent", args=[world.shared.pk]), {"consent": "yes"}),
        "annotation:campaign_close": (researcher, reverse("annotation:campaign_close", args=[world.shared.pk]), {}),
    }


def _csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize(
    "url_name", ["annotation:submit", "annotation:join", "annotation:consent", "annotation:campaign_close"]
)
def test_post_without_csrf_token_is_refused_and_changes_nothing(
    url_name: str, world: World, annotator, researcher
) -> None:
    user, url, data = _csrf_posts(world, annotator, researcher)[url_name]
    client = _csrf_client(user)
    before = _annotation_rows()

    response = client.post(url, data)

    assert response.status_code == 403
    assert _annotation_rows() == before


def test_post_with_the_pages_csrf_token_is_accepted(world: World, annotator) -> None:
    # The control for the 403s above: the refusal is the missing token, nothing else.
    own = world.attacker_assignment
    client = _csrf_client(annotator)
    page = client.get(reverse("annotation:assignment", args=[own.pk]))

    response = client.post(
        reverse("annotation:submit", args=[own.pk]),
        _answers(own) | {"csrfmiddlewaretoken": str(page.context["csrf_token"])},
    )

    assert response.status_code == 302
    assert Submission.objects.filter(assignment=own).count() == 1


# --- Crowd links ------------------------------------------------------------------------------

PID = "5f0c9a1b2d3e4f5a6b7c8d9e"


def _crowd_enter(study: Campaign, pid: str | None = PID) -> tuple[Client, Any]:
    client = Client()
    query = {"STUDY_ID": "study1", "SESSION_ID": "session1"} | ({} if pid is None else {"PROLIFIC_PID": pid})
    return client, client.get(reverse("annotation:crowd_entry", args=[study.public_token]), query)


def test_crowd_account_reads_only_its_own_work_and_joins_nothing(world: World, runs) -> None:
    client, response = _crowd_enter(world.shared)
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:next", args=[world.shared.pk])
    own = client.get(response["Location"])
    assert own.status_code == 302  # to its first item
    crowd_user = Participant.objects.get(campaign=world.shared, platform="prolific").user
    before = _annotation_rows()

    for other in (world.victim_active, world.victim_submitted, world.victim_foreign, world.attacker_assignment):
        assert client.get(reverse("annotation:assignment", args=[other.pk])).status_code == 404
        assert client.get(reverse("annotation:api_assignment", args=[other.pk])).status_code == 404
        assert client.post(reverse("annotation:submit", args=[other.pk]), _answers(other)).status_code == 404
    for url_name in ("annotation:next", "annotation:consent", "annotation:done"):
        assert client.get(reverse(url_name, args=[world.foreign.pk])).status_code == 404
    listed = client.get(reverse("annotation:api_assignments")).json()
    assert {row["id"] for row in listed} == set(
        Assignment.objects.filter(participant__user=crowd_user).values_list("pk", flat=True)
    )
    for page, (method, url, data) in _researcher_requests(world, runs).items():
        assert getattr(client, method)(url, data).status_code == 403, page
    for admin_page in ("admin:index", "admin:auth_user_changelist", "admin:annotation_participant_changelist"):
        assert client.get(reverse(admin_page))["Location"].startswith(reverse("admin:login")), admin_page
    assert client.post(reverse("annotation:join", args=[world.foreign.pk])).status_code == 403

    assert _annotation_rows() == before
    assert not crowd_user.is_staff and not crowd_user.has_usable_password()
    assert crowd_user.get_all_permissions() == set()


def test_crowd_id_is_stored_only_as_a_hash_keyed_per_campaign(world: World) -> None:
    _crowd_enter(world.shared)
    _crowd_enter(world.foreign)

    crowd = list(Participant.objects.filter(platform="prolific"))
    assert len(crowd) == 2
    assert crowd[0].crowd_hash != crowd[1].crowd_hash
    assert crowd[0].user_id != crowd[1].user_id
    for row in [*Participant.objects.values(), *User.objects.values()]:
        assert PID.lower() not in str(row).lower(), row
    for session in Session.objects.all():
        assert PID not in session.session_data and PID not in str(session.get_decoded())


@pytest.mark.parametrize(
    "pid",
    [
        pytest.param("<script>alert(1)</script>", id="html"),
        pytest.param("a" * 200, id="200-chars"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
        pytest.param("abc def", id="space"),
        pytest.param("abc\n", id="trailing-newline"),
        pytest.param("naïve", id="non-ascii"),
    ],
)
def test_malformed_crowd_id_is_refused_and_creates_nothing(pid: str | None, world: World) -> None:
    users, before = User.objects.count(), _annotation_rows()

    client, response = _crowd_enter(world.shared, pid)

    assert response.status_code == 400
    assert "<script>alert" not in response.content.decode()
    assert User.objects.count() == users
    assert _annotation_rows() == before
    assert client.get(reverse("annotation:next", args=[world.shared.pk]))["Location"].startswith(reverse("login"))


def test_same_crowd_id_resumes_the_same_participant(world: World) -> None:
    first, entry = _crowd_enter(world.shared)
    first_item = first.get(entry["Location"])["Location"]

    second, entry = _crowd_enter(world.shared)
    second_item = second.get(entry["Location"])["Location"]

    assert Participant.objects.filter(campaign=world.shared, platform="prolific").count() == 1
    assert first.session["_auth_user_id"] == second.session["_auth_user_id"]
    assert second_item == first_item
    assert first_item.startswith("/annotate/items/")


# --- Escaping ---------------------------------------------------------------------------------

TARGET_TITLE = "<img src=x onerror=alert(1)>"
HISTORY_TITLE = "<b onmouseover=alert(2)>Heat</b>"
SCRIPT_TEXT = "<script>alert(1)</script>"
PROFILE_VALUE = "<svg onload=alert(3)>"
ATTRIBUTE_VALUE = "<iframe src=javascript:alert(4)>"


def test_html_in_titles_texts_and_history_renders_as_text(runs, annotator) -> None:
    study = campaign(runs=runs, name="<u>study</u>", items_per_annotator=1)
    Campaign.objects.filter(pk=study.pk).update(profile_fields=["occupation"])
    study.refresh_from_db()
    assignment = _served(participant_join(campaign=study, user=annotator))
    history_item = task_context(assignment)["history"][0]["interaction"].item
    recommendation = assignment.item.recommendation
    Item.objects.filter(pk=recommendation.item_id).update(title=TARGET_TITLE, attributes={"note": ATTRIBUTE_VALUE})
    Item.objects.filter(pk=history_item.pk).update(title=HISTORY_TITLE)
    DatasetUser.objects.filter(pk=recommendation.user_id).update(profile={"occupation": PROFILE_VALUE})
    Explanation.objects.filter(pk=assignment.item.explanation_id).update(
        text=f"{SCRIPT_TEXT} Since you enjoyed {HISTORY_TITLE}, you may like {TARGET_TITLE}."
    )
    client = client_for(annotator)

    page = client.get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()

    assert active_content(page) == []
    for shown in (TARGET_TITLE, HISTORY_TITLE, SCRIPT_TEXT, PROFILE_VALUE, ATTRIBUTE_VALUE, "<u>study</u>"):
        assert shown not in page
        assert escape(shown) in page
    assert f"<mark>{escape(HISTORY_TITLE)}</mark>" in page  # named in the text: highlighted, still escaped

    assert client.post(reverse("annotation:submit", args=[assignment.pk]), _answers(assignment)).status_code == 302
    done = client.get(reverse("annotation:done", args=[study.pk]))
    html = done.content.decode()
    assert done.status_code == 200
    assert active_content(html) == []
    assert TARGET_TITLE not in html and escape(TARGET_TITLE) in html
    assert "<u>study</u>" not in html


MALICIOUS_MARKDOWN = "\n\n".join(
    [
        "**Read carefully.**",
        "<script>alert('md')</script>",
        '<img src="x" onerror="alert(1)">',
        "[plain link](javascript:alert(2)) and [encoded](java&#x73;cript:alert(3))",
        '<a href="javascript:alert(4)" onclick="alert(5)">raw link</a>',
        '<p onmouseover="alert(6)">hover</p>',
        "[mixed case](JaVaScRiPt:alert(7)) <svg onload=alert(8)></svg>",
    ]
)


def test_campaign_markdown_is_sanitised_on_the_rating_and_consent_pages(runs, annotator) -> None:
    study = campaign(runs=runs, instructions=MALICIOUS_MARKDOWN, consent_text=MALICIOUS_MARKDOWN)
    participant = participant_join(campaign=study, user=annotator)
    client = client_for(annotator)

    consent = client.get(reverse("annotation:consent", args=[study.pk])).content.decode()
    participant_consent(participant=participant)
    rating = client.get(reverse("annotation:assignment", args=[_served(participant).pk])).content.decode()

    for name, html in (("consent", consent), ("rating", rating)):
        assert active_content(html) == [], name
        assert "<script>alert" not in html, name
        assert "<strong>Read carefully.</strong>" in html, name  # Markdown still renders


# --- Blind rating -----------------------------------------------------------------------------


def _explanations_renumbered() -> set[int]:
    """Move every explanation to an id no other number on a page can equal by chance, so
    "the id is not on the page" is a meaningful check. Returns the new ids."""
    renumbered = set()
    for old in sorted(Explanation.objects.values_list("pk", flat=True)):
        new = 7_654_000 + old
        # Foreign keys are deferred on both databases, so the pair of updates is consistent.
        Explanation.objects.filter(pk=old).update(id=new)
        CampaignItem.objects.filter(explanation_id=old).update(explanation_id=new)
        CampaignItem.objects.filter(explanation_b_id=old).update(explanation_b_id=new)
        renumbered.add(new)
    return renumbered


@pytest.mark.parametrize("mode", [Campaign.Mode.LIKERT, Campaign.Mode.PAIRWISE])
def test_rating_page_never_names_generators_models_prompts_or_explanation_ids(mode: str, runs, annotator) -> None:
    study = campaign(runs=runs, mode=mode)
    explanation_ids = _explanations_renumbered()
    assignment = _served(participant_join(campaign=study, user=annotator))
    client = client_for(annotator)
    hidden = {"secret-"}  # the factory's generator names and model paths all contain it
    for run in GenerationRun.objects.filter(pk__in=[r.pk for r in runs]).select_related("generator", "template"):
        hidden |= {run.generator.name, run.generator.model, run.template.name, str(run.template)}
    hidden |= {str(pk) for pk in explanation_ids}
    submit = reverse("annotation:submit", args=[assignment.pk])

    pages = {
        "rating page": client.get(reverse("annotation:assignment", args=[assignment.pk])),
        "refused submit": client.post(submit, {"submission_id": str(uuid.uuid4())}),
        "api": client.get(reverse("annotation:api_assignment", args=[assignment.pk])),
    }

    assert pages["refused submit"].status_code == 400
    for name, response in pages.items():
        html = response.content.decode()
        for secret in hidden:
            assert secret not in html, (name, secret)


def test_pairwise_sides_vary_across_items_and_are_recorded(runs, annotator) -> None:
    study = campaign(runs=runs, mode=Campaign.Mode.PAIRWISE, seed=7, overlap=1, items_per_annotator=12)
    participant = participant_join(campaign=study, user=annotator)
    client = client_for(annotator)

    for _ in range(12):
        assignment = Assignment.objects.select_related("item").get(pk=_served(participant).pk)
        page = client.get(reverse("annotation:assignment", args=[assignment.pk])).content.decode()
        # The factory's texts start "Version <run index>:"; run 0 is the item's explanation (a).
        left, right = ("Version 1:", "Version 0:") if assignment.swapped else ("Version 0:", "Version 1:")
        assert page.index(left) < page.index(right)
        response = client.post(reverse("annotation:submit", args=[assignment.pk]), _answers(assignment))
        assert response.status_code == 302

    answered = Assignment.objects.filter(participant=participant).prefetch_related("ratings")
    assert {assignment.swapped for assignment in answered} == {True, False}
    for assignment in answered:
        # "left" was answered every time: stored as whichever explanation was on the left.
        assert {rating.choice for rating in assignment.ratings.all()} == {"b" if assignment.swapped else "a"}


# --- Closed campaigns -------------------------------------------------------------------------


def test_closed_campaign_refuses_first_answers_and_revisions(world: World, annotator) -> None:
    client = client_for(annotator)
    own = world.attacker_assignment
    answered = _served(participant_join(campaign=world.foreign, user=annotator))
    _answered(answered, 4)
    campaign_close(campaign=world.shared)
    campaign_close(campaign=world.foreign)
    before = _annotation_rows()

    first = client.post(reverse("annotation:submit", args=[own.pk]), _answers(own))
    revision = client.post(reverse("annotation:submit", args=[answered.pk]), _answers(answered, "9"))

    for response in (first, revision):
        assert response.status_code == 400
        assert "This campaign is closed" in response.content.decode()
    assert _annotation_rows() == before
    assert client.post(reverse("annotation:join", args=[world.shared.pk])).status_code == 404
    done = client.get(reverse("annotation:done", args=[world.foreign.pk])).content.decode()
    assert reverse("annotation:assignment", args=[answered.pk]) not in done  # no revise link
