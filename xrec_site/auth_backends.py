"""The first authentication backend: django-axes' lockout check, for requests over HTTP."""

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuse a locked-out username and IP pair before any password is checked.

    django-axes raises on an ``authenticate()`` without a request. Every login over HTTP
    passes one (the login form, the admin's, DRF), so the only callers without a request are
    programs on the server itself (``Client.login`` in tests, a shell): there is no client to
    throttle, and this backend then has no say, leaving the decision to ModelBackend.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
