"""The client's address behind trusted proxies (xrec_site.client_address), as login throttling sees it."""

import pytest
from django.test import RequestFactory

from xrec_site.client_address import client_ip

PROXY = "10.0.0.1"


def _request(forwarded: str | None = None):
    request = RequestFactory().get("/accounts/login/", REMOTE_ADDR=PROXY)
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return request


def test_with_no_trusted_proxy_a_forwarded_header_is_ignored(settings) -> None:
    settings.XREC_TRUSTED_PROXIES = 0

    assert client_ip(_request("198.51.100.9")) == PROXY


@pytest.mark.parametrize(
    ("trusted", "forwarded", "client"),
    [
        (1, "203.0.113.7", "203.0.113.7"),  # one proxy appended the client
        (1, "1.2.3.4, 203.0.113.7", "203.0.113.7"),  # the client's own claim, before it, is not believed
        (2, "203.0.113.7, 10.0.0.2", "203.0.113.7"),  # the outer proxy saw the client, the inner one the outer
        (2, "1.2.3.4, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
    ],
)
def test_the_client_is_the_entry_the_outermost_trusted_proxy_appended(
    settings, trusted: int, forwarded: str, client: str
) -> None:
    settings.XREC_TRUSTED_PROXIES = trusted

    assert client_ip(_request(forwarded)) == client


@pytest.mark.parametrize("forwarded", [None, "", "203.0.113.7"])
def test_a_request_that_did_not_pass_every_trusted_proxy_is_known_by_its_remote_address(
    settings, forwarded: str | None
) -> None:
    settings.XREC_TRUSTED_PROXIES = 2

    assert client_ip(_request(forwarded)) == PROXY
