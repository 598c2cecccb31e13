"""Login throttling (django-axes through xrec_site.auth_backends): a username guessed at from one
address is locked out, right password included, on the site's login form and the admin's."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
from axes.utils import reset
from django.contrib.auth import authenticate
from django.test import Client
from django.urls import reverse

from tests.annotation.factories import campaign
from tests.factories import PASSWORD, UserFactory
from xrec_site.roles import ADMIN

pytestmark = pytest.mark.django_db

LOGIN_FORMS = ["login", "admin:login"]


def _log_in(client: Client, url_name: str, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(reverse(url_name), {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url_name", LOGIN_FORMS)
def test_thirty_wrong_passwords_then_the_right_one_is_refused_with_the_lockout_page(url_name: str) -> None:
    UserFactory(username="adm", role=ADMIN)  # staff, so the admin's form would accept the password
    client = Client()

    statuses = [_log_in(client, url_name, "adm", f"guess-{n}").status_code for n in range(30)]
    right = _log_in(client, url_name, "adm", PASSWORD)

    # The first four failures show the form again; from the fifth on every attempt is refused.
    assert statuses[:4] == [200] * 4 and set(statuses[4:]) == {429}
    assert right.status_code == 429
    assert "Too many failed logins" in right.content.decode()
    assert not _signed_in(client)


def test_the_lock_holds_for_that_username_and_address_only() -> None:
    UserFactory(username="ann")
    UserFactory(username="other")
    for n in range(5):
        _log_in(Client(), "login", "ann", f"guess-{n}")

    assert _log_in(Client(), "login", "ann", PASSWORD).status_code == 429
    assert _log_in(Client(), "login", "other", PASSWORD).status_code == 302  # another account
    assert _log_in(Client(), "login", "ann", PASSWORD, address="10.0.0.2").status_code == 302  # another address


def test_after_the_cool_off_the_right_password_is_accepted_again() -> None:
    UserFactory(username="ann")
    for n in range(5):
        _log_in(Client(), "login", "ann", f"guess-{n}")
    assert _log_in(Client(), "login", "ann", PASSWORD).status_code == 429

    # Sixteen minutes pass (the cool-off is fifteen).
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= timedelta(minutes=16)
        attempt.save()
    client = Client()

    assert _log_in(client, "login", "ann", PASSWORD).status_code == 302
    assert _signed_in(client)


def test_an_administrator_reset_lifts_the_lock_at_once() -> None:
    UserFactory(username="ann")
    for n in range(5):
        _log_in(Client(), "login", "ann", f"guess-{n}")

    reset(username="ann")

    assert _log_in(Client(), "login", "ann", PASSWORD).status_code == 302


def test_a_success_before_the_limit_clears_the_count() -> None:
    UserFactory(username="ann")
    for n in range(4):
        _log_in(Client(), "login", "ann", f"guess-{n}")
    assert _log_in(Client(), "login", "ann", PASSWORD).status_code == 302

    for n in range(4):
        _log_in(Client(), "login", "ann", f"again-{n}")

    assert _log_in(Client(), "login", "ann", PASSWORD).status_code == 302


def test_code_on_the_server_authenticates_without_a_request_and_is_not_throttled() -> None:
    user = UserFactory(username="ann")
    for n in range(5):
        _log_in(Client(), "login", "ann", f"guess-{n}")

    # Client.login and a shell call authenticate() with no request: no client to lock out.
    assert authenticate(username="ann", password=PASSWORD) == user
    assert authenticate(username="ann", password="wrong") is None
    assert Client().login(username="ann", password=PASSWORD)


def test_a_crowd_worker_entering_leaves_no_address_or_browser_in_the_access_log() -> None:
    study = campaign()
    client = Client()

    response = client.get(
        reverse("annotation:crowd_entry", args=[study.public_token]),
        {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": "s", "SESSION_ID": "t"},
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT="Mozilla/5.0 (worker's browser)",
    )

    # Signed in (the crowd entry logs the pseudonymous user in), and nothing about the worker's
    # address or browser kept: axes' lockout needs failed attempts only.
    assert response.status_code == 302 and _signed_in(client)
    assert not AccessLog.objects.exists()


def test_behind_a_trusted_proxy_each_client_is_locked_out_by_its_own_address(settings) -> None:
    settings.XREC_TRUSTED_PROXIES = 1
    UserFactory(username="ann")

    def through_proxy(client_address: str, password: str, claimed: str = "") -> int:
        forwarded = f"{claimed}, {client_address}" if claimed else client_address
        return (
            Client()
            .post(
                reverse("login"),
                {"username": "ann", "password": password},
                REMOTE_ADDR="10.0.0.1",  # the proxy, the same for everyone
                HTTP_X_FORWARDED_FOR=forwarded,
            )
            .status_code
        )

    for n in range(5):
        through_proxy("203.0.113.7", f"guess-{n}")

    assert through_proxy("203.0.113.7", PASSWORD) == 429
    # Claiming another address in front of the proxy's entry changes nothing.
    assert through_proxy("203.0.113.7", PASSWORD, claimed="198.51.100.1") == 429
    # Another client behind the same proxy is not locked out by the first one's guesses.
    assert through_proxy("203.0.113.8", PASSWORD) == 302
