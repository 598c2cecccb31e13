"""The API's one pagination class (REST_FRAMEWORK's default; a module of its own, as DRF
imports it while it is still loading)."""

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

# The largest value either database's LIMIT/OFFSET holds is a 64-bit signed integer.
_MAX_OFFSET = 2**62


class ApiPagination(LimitOffsetPagination):
    """At most ``max_limit`` rows a page, and an offset clamped below what a database's OFFSET
    holds (``?limit=2**63`` or ``?offset=2**63`` was a 500 on both databases)."""

    default_limit = 50
    max_limit = 1000

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), _MAX_OFFSET)
