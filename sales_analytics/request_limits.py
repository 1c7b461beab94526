"""Refuse request bodies that must not reach the disk, before anything reads them.

Django parses a multipart body on first access to `request.POST` or `request.FILES`, and the CSRF
check does that for every unsafe request: without this guard an anonymous client could have any
multipart body spooled to disk, and anyone a body far past the upload limit.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from accounts.authentication import bearer_token_from, refused_token_detail
from accounts.selectors import api_token_user
from ingestion.errors import FILE_TOO_LARGE
from ingestion.uploads import request_body_limit_bytes

_API_PREFIX = "/api/"
_GRAPHQL_PREFIX = "/graphql"


def request_content_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def request_is_multipart(request: HttpRequest) -> bool:
    return request.META.get("CONTENT_TYPE", "").lower().startswith("multipart/")


def request_has_known_caller(request: HttpRequest) -> bool:
    """A session user, or a valid API token (a request with an Authorization header is judged by it)."""
    raw_token = bearer_token_from(request)
    if raw_token is not None:
        return bool(raw_token) and api_token_user(raw_token=raw_token) is not None
    return request.user.is_authenticated


def _refusal(request: HttpRequest, *, status: int, code: str, detail: str) -> HttpResponse:
    """The refusal in the shape the path's callers read: REST error, GraphQL error, or a page."""
    if request.path_info.startswith(_API_PREFIX):
        response = JsonResponse({"detail": detail, "code": code}, status=status)
    elif request.path_info.startswith(_GRAPHQL_PREFIX):
        response = JsonResponse({"errors": [{"message": detail, "extensions": {"code": code}}]}, status=status)
    else:
        response = render(request, "request_refused.html", {"detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class RequestBodyGuardMiddleware:
    """Multipart bodies only from known callers; no body past the upload limit, by its Content-Length.

    Listed after the authentication and messages middleware; its refusals come before any view
    or `process_view` hook (the CSRF check among them) can parse the body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request_is_multipart(request) and not request_has_known_caller(request):
            return _refusal(
                request,
                status=401,
                code="not_authenticated",
                detail=refused_token_detail(request)
                or "Log in, or send 'Authorization: Bearer <API token>' with a valid token, before sending files.",
            )
        if request_content_length(request) > request_body_limit_bytes():
            return _refusal(
                request,
                status=413,
                code=FILE_TOO_LARGE,
                detail=f"The file is larger than the {settings.MAX_UPLOAD_MB} MB limit (MAX_UPLOAD_MB).",
            )
        return self.get_response(request)
