"""API errors with stable codes: every refusal is `{"detail": "...", "code": "..."}`."""

from collections.abc import Callable

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


class ApiMethodNotAllowedMiddleware:
    """A method an /api/ path does not take answers 405 in the API's JSON shape, with its `Allow` header.

    django-ninja answers a bare "Method not allowed" as HTML: a program reading `code` found none.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code != 405
            or not request.path_info.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        allowed = response.get("Allow", "")
        refusal = JsonResponse(
            {
                "detail": f"{request.method} is not allowed on {request.path_info}: use {allowed or 'another method'}.",
                "code": "method_not_allowed",
            },
            status=405,
        )
        refusal["Allow"] = allowed
        return refusal
