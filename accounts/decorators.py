from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.roles import Capability, permission_name


def capability_required(capability: Capability) -> Callable:
    """Page decorator: 403 for a logged-in user whose role lacks `capability`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(permission_name(capability)):
                raise PermissionDenied(f"Your role does not allow this page (needs '{capability.value}').")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
