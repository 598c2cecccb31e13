"""The API's authentication, throttling and renderers as configured in settings.REST_FRAMEWORK."""

import base64

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from tests.conftest import client_for
from tests.factories import PASSWORD

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _campaigns_url() -> str:
    return reverse("annotation:api_campaigns")


def test_basic_auth_with_the_right_password_is_not_accepted(researcher) -> None:
    credentials = base64.b64encode(f"{researcher.username}:{PASSWORD}".encode()).decode()

    response = Client().get(_campaigns_url(), HTTP_AUTHORIZATION=f"Basic {credentials}")

    assert response.status_code in (401, 403)


def test_a_token_authenticates_its_user(researcher) -> None:
    token = Token.objects.create(user=researcher)

    assert Client().get(_campaigns_url(), HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    assert Client().get(_campaigns_url(), HTTP_AUTHORIZATION="Token not-a-token").status_code in (401, 403)


def test_a_user_past_the_rate_gets_429_until_the_window_passes(researcher, monkeypatch) -> None:
    # DRF reads the rates once, into a class attribute; the counts live in the test's own cache.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"})
    client = client_for(researcher)

    statuses = [client.get(_campaigns_url()).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    assert "Retry-After" in client.get(_campaigns_url()).headers


def test_the_default_rates_leave_room_for_a_researcher_paging_through_exports(researcher) -> None:
    client = client_for(researcher)

    assert {client.get(_campaigns_url()).status_code for _ in range(100)} == {200}


@pytest.mark.parametrize("accept", ["text/html", BROWSER_ACCEPT])
def test_with_debug_off_a_browser_gets_json_not_the_browsable_api(researcher, accept: str) -> None:
    response = client_for(researcher).get(_campaigns_url(), HTTP_ACCEPT=accept)

    assert response["Content-Type"] == "application/json"
    assert not response.content.lstrip().startswith(b"<")
    # A browser's Accept (*/* at the end) gets the data; text/html alone is not acceptable.
    assert response.status_code == (406 if accept == "text/html" else 200)


@pytest.mark.parametrize(
    ("trusted", "forwarded", "ident"),
    [(0, "198.51.100.1", "10.0.0.1"), (1, "198.51.100.1, 203.0.113.7", "203.0.113.7")],
)
def test_the_anonymous_throttle_counts_the_address_a_trusted_proxy_saw_not_one_the_client_claims(
    monkeypatch, trusted: int, forwarded: str, ident: str
) -> None:
    monkeypatch.setattr(api_settings, "NUM_PROXIES", trusted)
    request = Request(RequestFactory().get(_campaigns_url(), REMOTE_ADDR="10.0.0.1"))
    request.META["HTTP_X_FORWARDED_FOR"] = forwarded

    assert AnonRateThrottle().get_ident(request) == ident


def test_the_api_trusts_as_many_proxies_as_the_login_lockout() -> None:
    assert api_settings.NUM_PROXIES == settings.XREC_TRUSTED_PROXIES == 0
