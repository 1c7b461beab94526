"""API errors with stable codes: every refusal is `{"detail": "...", "code": "..."}`."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from ninja import Schema

from accounts.roles import Capability, permission_name


class ApiError(Exception):
    """Raised by endpoints and services that face the API; rendered with its status and code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def require_capability(request: HttpRequest, capability: Capability) -> None:
    """403 unless the caller's role grants `capability`."""
    if not request.user.has_perm(permission_name(capability)):
        raise ApiError(
            403,
            "permission_denied",
            f"Your role does not allow this (needs the '{capability.value}' permission).",
        )


class ErrorOut(Schema):
    """Every refusal's body. `errors` lists each invalid field of a 422 `invalid_request`."""

    detail: str
    code: str
    errors: list[dict] | None = None


def error_responses(*statuses: int) -> dict[int, type[ErrorOut]]:
    """OpenAPI responses of an authenticated endpoint: 401 and 403 always, plus `statuses`."""
    return dict.fromkeys(sorted({401, 403, *statuses}), ErrorOut)


# Programs get JSON from the API and GraphQL prefixes, even for a URL that matches no route.
_API_PREFIXES = ("/api/", "/graphql")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path_info.startswith(_API_PREFIXES):
        return JsonResponse({"detail": f"No API endpoint at {request.path_info}.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith(_API_PREFIXES):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return defaults.server_error(request)
