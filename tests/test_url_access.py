"""Every URL pattern, as every role, with every method: the status each one must answer.

The patterns come from the resolver, so a new view without a row in ``RULES`` fails this test
("a new view without a check fails CI"), and so does any 500. Each request runs inside a
savepoint that is rolled back, so a POST that changes something (closing a campaign, a
logout) does not change what the next request sees.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.site_objects import ROLES, SiteObjects, site_objects

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
LOGIN = "login"  # a redirect to the login page
# DRF answers an anonymous API request with 403 while session authentication comes first in
# DEFAULT_AUTHENTICATION_CLASSES and with 401 once token authentication does.
ANON_API = frozenset({401, 403})
Expected = int | str | frozenset[int]

ANYONE = ("anonymous", "annotator", "researcher", "admin")
SIGNED_IN = ("annotator", "researcher", "admin")
STAFF = ("researcher", "admin")
ADMIN = ("admin",)


def walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, Any]]:
    """(route, namespaced name, callback) of every URL pattern, recursively.

    Django admin's own patterns (its model pages, served and permission-checked by
    ``django.contrib.admin``) are left out; the admin index stands for them and is walked.
    """
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                yield prefix + str(pattern.pattern), "admin:index", None
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern), namespace + (pattern.name or ""), pattern.callback


def page(allowed: tuple[str, ...], *, ok: int = 200) -> dict[str, Expected]:
    """A signed-in page: the login page for visitors, ``ok`` for ``allowed``, 403 for the rest."""
    return {role: (LOGIN if role == "anonymous" else ok if role in allowed else 403) for role in ANYONE}


def api(allowed: tuple[str, ...], *, ok: int = 200) -> dict[str, Expected]:
    return {role: (ANON_API if role == "anonymous" else ok if role in allowed else 403) for role in ANYONE}


def everyone(status: Expected) -> dict[str, Expected]:
    return dict.fromkeys(ANYONE, status)


def roles(**statuses: Expected) -> dict[str, Expected]:
    assert set(statuses) == set(ANYONE), statuses
    return statuses


# URL name (with ``[variant]`` for a second set of path values) → method → role → status.
# A method not listed answers 405 to everyone (API views: after authentication, so an
# anonymous caller gets ANON_API first). POSTs carry an empty body: forms answer with their
# errors (200, or 400 where the view says so), actions that need no input act and redirect.
RULES: dict[str, dict[str, dict[str, Expected]]] = {
    # Public: login, health check, crowd links.
    "login": {
        "GET": roles(anonymous=200, annotator=302, researcher=302, admin=302),
        "POST": roles(anonymous=200, annotator=302, researcher=302, admin=302),
        # FormView treats PUT as POST; a signed-in account is sent home whatever the method.
        "PUT": roles(anonymous=200, annotator=302, researcher=302, admin=302),
        "PATCH": roles(anonymous=405, annotator=302, researcher=302, admin=302),
        "DELETE": roles(anonymous=405, annotator=302, researcher=302, admin=302),
    },
    "logout": {"POST": everyone(302)},
    "healthz": {"GET": everyone(200)},
    # The link lacks a participant id: 400 with the reason. A signed-in account is asked first.
    "annotation:crowd_entry": {
        "GET": roles(anonymous=400, annotator=200, researcher=200, admin=200),
        "POST": everyone(400),
    },
    "home": {"GET": page(SIGNED_IN)},
    # Django's admin: staff accounts get the index, anyone else its own login page.
    "admin:index": dict.fromkeys(METHODS, roles(anonymous=302, annotator=302, researcher=200, admin=200)),
    # The schema views check their permission (staff) before the method.
    "api_schema": {"GET": api(STAFF)} | dict.fromkeys(METHODS[1:], api(STAFF, ok=405)),
    "api_docs": {"GET": page(STAFF)} | dict.fromkeys(METHODS[1:], page(STAFF, ok=405)),
    # --- recommendations
    "recommendations:dataset_list": {"GET": page(STAFF)},
    "recommendations:dataset_detail": {"GET": page(STAFF)},
    "recommendations:import": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "recommendations:import_job": {"GET": page(STAFF)},
    "recommendations:run_list": {"GET": page(STAFF)},
    "recommendations:run_create": {"GET": page(STAFF), "POST": page(STAFF)},
    "recommendations:run_import": {"GET": page(STAFF), "POST": page(STAFF)},
    "recommendations:run_detail": {"GET": page(STAFF)},
    "recommendations:run_retry": {"POST": page(STAFF, ok=302)},
    "recommendations:api_dataset_list": {"GET": api(STAFF)},
    "recommendations:api_dataset_detail": {"GET": api(STAFF)},
    "recommendations:api_run_list": {"GET": api(STAFF)},
    "recommendations:api_user_recommendations": {"GET": api(STAFF)},
    "recommendations:api_import_job": {"GET": api(STAFF)},
    # --- explanations
    "explanations:run_list": {"GET": page(STAFF)},
    "explanations:run_create": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:run_detail": {"GET": page(STAFF)},
    # Job actions act, or say in a message why they cannot, and go back to the job's page.
    **{
        f"explanations:{kind}_{action}": {"POST": page(ADMIN, ok=302)}
        for kind in ("run", "judge", "probe", "text_metrics", "claim_check")
        for action in ("cancel", "resume", "retry")
    },
    "explanations:adapter_create": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:adapter_detail": {"GET": page(STAFF)},
    "explanations:template_list": {"GET": page(STAFF)},
    "explanations:template_edit": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:generator_list": {"GET": page(STAFF)},
    "explanations:prepare_bundled": {"POST": page(ADMIN, ok=302)},
    "explanations:judge_list": {"GET": page(STAFF)},
    "explanations:judge_create": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:judge_detail": {"GET": page(STAFF)},
    "explanations:judge_tune": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:probe_list": {"GET": page(STAFF)},
    "explanations:probe_create": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:probe_detail": {"GET": page(STAFF)},
    "explanations:claim_check_list": {"GET": page(STAFF)},
    "explanations:claim_check_create": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "explanations:claim_check_detail": {"GET": page(STAFF)},
    "explanations:text_metrics_list": {"GET": page(STAFF)},
    "explanations:text_metrics_detail": {"GET": page(STAFF)},
    # Cancelling the PENDING text metrics job succeeds (each request is rolled back).
    "explanations:api_job_action": {"POST": api(ADMIN)},
    "explanations:api_judge_detail": {"GET": api(STAFF)},
    "explanations:api_judge_verdicts": {"GET": api(STAFF)},
    # An empty body is a 400 for the one role allowed to start runs.
    "explanations:api_run_start": {"POST": api(ADMIN, ok=400)},
    "explanations:api_run_detail": {"GET": api(STAFF)},
    "explanations:api_explanations": {"GET": api(STAFF)},
    # --- annotation: researchers' pages
    "annotation:campaign_list": {"GET": page(STAFF)},
    "annotation:campaign_create": {"GET": page(STAFF), "POST": page(STAFF)},
    "annotation:campaign_detail": {"GET": page(STAFF)},
    "annotation:campaign_close": {"POST": page(STAFF, ok=302)},
    "annotation:campaign_privacy": {"GET": page(STAFF)},
    "annotation:privacy_flag_decide": {"POST": page(STAFF, ok=302)},
    "annotation:campaign_open": {"POST": page(STAFF, ok=302)},
    # Only a claims campaign has a split to show or change.
    "annotation:campaign_claims": {"GET": page(STAFF, ok=404)},
    "annotation:campaign_claims[claims]": {"GET": page(STAFF)},
    "annotation:item_claims_split": {"POST": page(STAFF, ok=404)},
    "annotation:campaign_claim_check": {"POST": page(ADMIN, ok=404)},
    "annotation:campaign_claim_check[claims]": {"POST": page(ADMIN, ok=302)},
    "annotation:item_claims_split[claims]": {"POST": page(STAFF, ok=302)},
    "annotation:reference_add": {"POST": page(STAFF, ok=302)},
    "annotation:participant_exclude": {"POST": page(STAFF, ok=302)},
    "annotation:participant_delete": {"POST": page(STAFF, ok=302)},
    "annotation:campaign_export": {"GET": page(STAFF)},
    # Preferences and judge tuning are for pairwise campaigns; a Likert one is a 400 / 404.
    "annotation:campaign_preferences": {"GET": page(STAFF, ok=400)},
    "annotation:campaign_preferences[pairwise]": {"GET": page(STAFF)},
    "annotation:campaign_tune_judge": {"GET": page(ADMIN, ok=404), "POST": page(ADMIN, ok=404)},
    "annotation:campaign_tune_judge[pairwise]": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "annotation:campaign_tune_generator": {"GET": page(ADMIN), "POST": page(ADMIN)},
    "annotation:campaign_tune_generator[pairwise]": {"GET": page(ADMIN, ok=404), "POST": page(ADMIN, ok=404)},
    "annotation:study": {"GET": page(STAFF)},
    "annotation:study_export": {"GET": page(STAFF, ok=400)},
    "annotation:cross_study": {"GET": page(STAFF)},
    "annotation:cross_study_export": {"GET": page(STAFF, ok=400)},
    "annotation:api_study_report": {"GET": api(STAFF, ok=400)},
    "annotation:api_campaigns": {"GET": api(STAFF)},
    "annotation:api_ratings": {"GET": api(STAFF)},
    # --- annotation: taking part. Only participants reach their campaign's pages (others: 404);
    # researchers and admins hold the annotate permission too but have not joined.
    "annotation:join": {"POST": page(SIGNED_IN, ok=302)},
    "annotation:next": {"GET": roles(anonymous=LOGIN, annotator=302, researcher=404, admin=404)},
    "annotation:consent": {
        "GET": roles(anonymous=LOGIN, annotator=200, researcher=404, admin=404),
        "POST": roles(anonymous=LOGIN, annotator=200, researcher=404, admin=404),
    },
    "annotation:done": {"GET": roles(anonymous=LOGIN, annotator=302, researcher=404, admin=404)},
    # First-person pages exist only in a first-person campaign: the site's campaign is not one.
    "annotation:elicit": {"GET": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:elicit_rate": {"POST": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:elicit_finish": {"POST": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:waiting": {"GET": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:waiting_retry": {"POST": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:withdraw": {
        "GET": roles(anonymous=LOGIN, annotator=200, researcher=404, admin=404),
        "POST": roles(anonymous=LOGIN, annotator=200, researcher=404, admin=404),
    },
    "annotation:assignment": {"GET": roles(anonymous=LOGIN, annotator=200, researcher=404, admin=404)},
    "annotation:assignment[other]": {"GET": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:submit": {"POST": roles(anonymous=LOGIN, annotator=400, researcher=404, admin=404)},
    "annotation:submit[other]": {"POST": roles(anonymous=LOGIN, annotator=404, researcher=404, admin=404)},
    "annotation:api_assignments": {"GET": api(SIGNED_IN)},
    "annotation:api_assignment": {"GET": roles(anonymous=ANON_API, annotator=200, researcher=404, admin=404)},
    "annotation:api_assignment[other]": {"GET": roles(anonymous=ANON_API, annotator=404, researcher=404, admin=404)},
}
# Routes whose page any visitor may see (every other one gives an anonymous visitor no 2xx).
PUBLIC = {"login", "healthz", "annotation:crowd_entry"}


def url_kwargs(name: str, objects: SiteObjects) -> list[tuple[str, dict[str, Any]]]:
    """(row key, path values) for the route: objects that exist; for routes where ownership
    matters, also ``[other]``: the same route with the other annotator's object."""
    generation_run, recommender_run = objects.generation_runs[0], objects.recommender_run
    run_ids = {
        "recommendations": recommender_run.pk,
        "explanations": generation_run.pk,
    }
    namespace = name.split(":")[0]
    values: dict[str, Any] = {
        "job_id": objects.text_metrics.pk if name == "explanations:api_job_action" else objects.import_job.pk,
        "kind": "text_metrics",
        "action": "cancel",
        "metrics_id": objects.text_metrics.pk,
        "dataset_id": objects.dataset.pk,
        "external_id": objects.dataset_user.external_id,
        "training_id": objects.adapter_training.pk,
        "template_id": objects.template.pk,
        "probe_id": objects.probe.pk,
        "check_id": objects.claim_check.pk,
        "campaign_id": objects.campaign.pk,
        "flag_id": objects.privacy_flag.pk,
        "item_id": objects.claims_item.pk,
        "participant_id": objects.participant.pk,
        "token": objects.campaign.public_token,
        "assignment_id": objects.assignment.pk,
        "fmt": "json" if name == "annotation:study_export" else "csv",
        "run_id": objects.judge_run.pk if "judge" in name else run_ids.get(namespace),
    }
    route_kwargs = _route_parameters(name)
    kwargs = {key: values[key] for key in route_kwargs}
    variants = [(name, kwargs)]
    if "assignment_id" in kwargs:
        variants.append((f"{name}[other]", kwargs | {"assignment_id": objects.other_assignment.pk}))
    if f"{name}[pairwise]" in RULES:
        variants.append((f"{name}[pairwise]", kwargs | {"campaign_id": objects.pairwise_campaign.pk}))
    if f"{name}[claims]" in RULES:
        variants.append((f"{name}[claims]", kwargs | {"campaign_id": objects.claims_campaign.pk}))
    return variants


def _route_parameters(name: str) -> list[str]:
    if name == "admin:index":
        return []
    namespace, _, url_name = name.rpartition(":")
    resolver = get_resolver()
    if namespace:
        resolver = resolver.namespace_dict[namespace][1]
    possibilities = resolver.reverse_dict.getlist(url_name)
    assert possibilities, name
    return list(possibilities[0][0][0][1])


def _matches(expected: Expected, response: Any) -> bool:
    if expected == LOGIN:
        return response.status_code == 302 and response["Location"].startswith(reverse("login"))
    if isinstance(expected, frozenset):
        return response.status_code in expected
    return response.status_code == expected


def _expected(rules: dict[str, dict[str, Expected]], method: str, role: str, is_api: bool) -> Expected:
    if method in rules:
        return rules[method][role]
    if is_api and role == "anonymous":
        return ANON_API
    return 405


@pytest.mark.django_db
def test_every_url_pattern_has_a_rule_and_answers_it_for_every_role_and_method() -> None:
    objects = site_objects()
    names = [name for _route, name, _callback in walk(get_resolver().url_patterns)]
    unnamed = [route for route, name, _callback in walk(get_resolver().url_patterns) if not name.split(":")[-1]]
    assert not unnamed, f"URL patterns without a name cannot have a rule: {unnamed}"
    described = {key.split("[")[0] for key in RULES}
    missing = sorted(set(names) - described)
    assert not missing, f"URL patterns without a row in RULES (add one with the status each role must get): {missing}"
    stale = sorted(described - set(names))
    assert not stale, f"RULES rows for URL names that no longer exist: {stale}"

    sessions = {role: _session_key(user) for role, user in objects.users.items()}
    # One client for every request: each new one would build its middleware again (whitenoise
    # indexes every static file, a tenth of a second).
    client = Client(raise_request_exception=False)
    failures = []
    seen_keys = set()
    for name in dict.fromkeys(names):
        for key, kwargs in url_kwargs(name, objects):
            seen_keys.add(key)
            url = reverse(name, kwargs=kwargs)
            callback = get_resolver().resolve(url).func
            is_api = hasattr(callback, "cls")  # a DRF view
            for role in ROLES:
                for method in METHODS:
                    expected = _expected(RULES[key], method, role, is_api)
                    response = _request(client, sessions[role], method, url)
                    if response.status_code >= 500 or not _matches(expected, response):
                        where = response.get("Location", "")
                        failures.append(
                            f"{method} {url} as {role}: {response.status_code} {where} (expected {expected})"
                        )
                    if role == "anonymous" and name not in PUBLIC and 200 <= response.status_code < 300:
                        failures.append(f"{method} {url} as anonymous: {response.status_code} on a non-public route")
    assert seen_keys == set(RULES), sorted(set(RULES) - seen_keys)
    assert not failures, "\n".join(failures)


def _session_key(user: Any) -> str | None:
    if user is None:
        return None
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _request(client: Client, session_key: str | None, method: str, url: str) -> Any:
    # Each request runs in a savepoint that is rolled back, with only the role's session
    # cookie: a logout or a crowd link's sign-in (which end or replace the session) is undone
    # before the next request.
    with transaction.atomic():
        client.cookies.clear()
        if session_key is not None:
            client.cookies[settings.SESSION_COOKIE_NAME] = session_key
        response = client.generic(method, url, data=b"", content_type="application/x-www-form-urlencoded")
        transaction.set_rollback(True)
    return response
