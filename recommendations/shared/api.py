"""What every app's DRF endpoints share: the permission check, the error responses each
status answers with in the OpenAPI schema, and the paging schema."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from recommendations.shared.formfields import BIG_INT_MAX

# The largest id either database stores (a 64-bit signed integer): a bigger one in a query
# parameter is a 400, not an OverflowError from SQLite.
MAX_ID = BIG_INT_MAX


@extend_schema_serializer(component_name="Error")
class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()


_ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: each field's error messages."),
    401: OpenApiResponse(ErrorOutputSerializer, description="Not signed in (token authentication)."),
    403: OpenApiResponse(ErrorOutputSerializer, description="Not signed in, or the role lacks the permission."),
    404: OpenApiResponse(ErrorOutputSerializer, description="No such object, or not visible to this account."),
    409: OpenApiResponse(ErrorOutputSerializer, description="The object's state does not allow this now."),
    429: OpenApiResponse(ErrorOutputSerializer, description="Too many requests: throttled."),
}


def api_responses(ok: Any, *errors: int, status_code: int = 200) -> dict[int, Any]:
    """``extend_schema(responses=...)``: ``ok`` under ``status_code``, then 401, 403, 429 and
    the listed ``errors`` (400, 404, 409), which every endpoint shares with the same bodies."""
    return {status_code: ok} | {code: _ERRORS[code] for code in (*errors, 401, 403, 429)}


def paginated(serializer: type[serializers.Serializer], name: str) -> serializers.Serializer:
    """The schema of an ``ApiPagination`` page of ``serializer`` rows."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="Rows per page (default 50, at most 1000)."),
    OpenApiParameter("offset", int, description="Rows to skip."),
]


def require_permission(request: Request, permission: str) -> None:
    """403 unless the signed-in account has ``permission`` (shared by every app's APIs)."""
    if not request.user.has_perm(permission):
        raise PermissionDenied()
