"""API authentication: a bearer token for programs, the session (with CSRF) for the browser.

A request that carries an Authorization header is judged by that header alone: a bad or
revoked token is a 401 even if a session cookie rides along.
"""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth
from ninja.utils import check_csrf

from accounts.selectors import api_token_expired, api_token_user

EXPIRED_BEARER_DETAIL = (
    "Your API token has expired: ask an administrator for a new one (Django admin, or "
    "manage.py create_api_token) and send that instead."
)


# What a session caller does about a refused write: REST and GraphQL say the same.
CSRF_FAILED_DETAIL = (
    "CSRF check failed: send the X-CSRFToken header (from the csrftoken cookie) with "
    "session-authenticated writes, or use an API token."
)


class CsrfFailed(Exception):
    """A session-authenticated unsafe request without a valid CSRF token."""


def bearer_token_from(request: HttpRequest) -> str | None:
    """The raw token of an `Authorization: Bearer …` header; "" for any other Authorization value."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()


def refused_token_detail(request: HttpRequest) -> str | None:
    """Why the request's bearer token was refused, when the caller can act on it (it expired); else None,
    and the refusal keeps its general wording."""
    raw_token = bearer_token_from(request)
    if raw_token and api_token_expired(raw_token=raw_token):
        return EXPIRED_BEARER_DETAIL
    return None


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser | None:
        user = api_token_user(raw_token=token) if token else None
        if user is not None:
            request.user = user
        return user


class BrowserSessionAuth(SessionAuth):
    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        if "Authorization" in request.headers:
            return None
        return super().authenticate(request, key)


def request_authenticate(request: HttpRequest) -> AbstractBaseUser | None:
    """The caller of a non-ninja endpoint (GraphQL), by token or by session + CSRF."""
    raw_token = bearer_token_from(request)
    if raw_token is not None:
        user = api_token_user(raw_token=raw_token) if raw_token else None
        if user is not None:
            request.user = user
        return user
    if not request.user.is_authenticated:
        return None
    if check_csrf(request) is not None:
        raise CsrfFailed
    return request.user
