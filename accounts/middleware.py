from collections.abc import Callable

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse

# These answer 401 JSON themselves: a program must never be redirected to a login page.
_SELF_AUTHENTICATING_PREFIXES = ("/api/", "/graphql")


class LoginRequiredForPagesMiddleware(LoginRequiredMiddleware):
    """Every page requires login; the APIs do their own authentication."""

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if request.path_info.startswith(_SELF_AUTHENTICATING_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
