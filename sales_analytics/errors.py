"""API errors with stable codes: every refusal is `{"detail": "...", "code": "..."}`."""

from django.http import HttpRequest

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
