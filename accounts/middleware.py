import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

from sales_analytics.plural import counted

# These answer 401 JSON themselves: a program must never be redirected to a login page.
_SELF_AUTHENTICATING_PREFIXES = ("/api/", "/graphql")

SESSION_LAST_ACTIVITY_KEY = "last_activity"
# Pages that refresh themselves (an upload's progress) send this header: what a screen does on its
# own is not the user being there, or an open upload page would keep a session alive forever.
BACKGROUND_REFRESH_HEADER = "X-Background-Refresh"
# Writing the session on every request would make each page view a session write.
_ACTIVITY_RESOLUTION_SECONDS = 60


class LoginRequiredForPagesMiddleware(LoginRequiredMiddleware):
    """Every page requires login; the APIs do their own authentication."""

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if request.path_info.startswith(_SELF_AUTHENTICATING_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request: HttpRequest, view_func: Callable) -> HttpResponse:
        if not getattr(request, "htmx", False):
            return super().handle_no_permission(request, view_func)
        # htmx follows a 302 inside its request and would swap the login page into the panel:
        # HX-Redirect makes the browser load the login page instead, back to the page it was on.
        login_url = resolve_url(self.get_login_url(view_func))
        page = request.htmx.current_url_abs_path
        if page is None:
            return HttpResponseClientRedirect(login_url)
        return HttpResponseClientRedirect(
            redirect_to_login(page, login_url, self.get_redirect_field_name(view_func))["Location"]
        )


class SessionIdleTimeoutMiddleware:
    """Logs out a browser session unused for SESSION_IDLE_MINUTES; the login page says why.

    Listed after the authentication and messages middleware: the login-required middleware then
    sends the logged-out request to the login page (or the API answers 401).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            session_idle_enforce(request=request, now=time.time())
        return self.get_response(request)


def session_idle_enforce(*, request: HttpRequest, now: float) -> None:
    """Log the request's user out if their session has been idle too long, else note the activity."""
    session = request.session
    last_activity = session.get(SESSION_LAST_ACTIVITY_KEY)
    if last_activity is not None and now - last_activity > settings.SESSION_IDLE_MINUTES * 60:
        logout(request)
        messages.info(
            request,
            f"You were logged out after {_idle_duration_text(settings.SESSION_IDLE_MINUTES)} without activity. "
            "Log in again to continue.",
        )
        return
    background = request.headers.get(BACKGROUND_REFRESH_HEADER) == "true"
    if last_activity is None or (not background and now - last_activity >= _ACTIVITY_RESOLUTION_SECONDS):
        session[SESSION_LAST_ACTIVITY_KEY] = now


def _idle_duration_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if hours and not rest:
        return counted(hours, "hour")
    return counted(minutes, "minute")
