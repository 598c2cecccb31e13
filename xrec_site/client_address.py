"""The address a request came from, for login throttling (django-axes' AXES_CLIENT_IP_CALLABLE)."""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address: ``REMOTE_ADDR``, or behind trusted proxies the address the outermost saw.

    Each proxy appends the address it received the request from to ``X-Forwarded-For``, so of
    that list only the last ``XREC_TRUSTED_PROXIES`` entries were written by this site's own
    proxies; anything before them is whatever the client sent, and is never believed. The
    client is therefore the entry that many places from the end. A request with fewer entries
    did not come through the proxies as configured, and is known by ``REMOTE_ADDR`` alone.
    """
    remote = request.META.get("REMOTE_ADDR")
    trusted: int = settings.XREC_TRUSTED_PROXIES
    if trusted <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < trusted:
        return remote
    return forwarded[-trusted]
