"""Query-string conventions shared by the REST routers and the pages."""

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse


def blank_parameters_dropped(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view that sees `?branch=&start=` as if those parameters were not sent.

    A filter form or a script fills parameters it has no value for with "": the pages read that
    as "not given" (all branches, the default datasource), and so must the API, where a blank
    date was a 422 and a blank branch matched nothing. Applied before the parameters are validated.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if any(value == "" for _, values in request.GET.lists() for value in values):
            query = request.GET.copy()
            for name, values in request.GET.lists():
                given = [value for value in values if value != ""]
                if given:
                    query.setlist(name, given)
                else:
                    del query[name]
            query._mutable = False
            request.GET = query
        return view(request, *args, **kwargs)

    return wrapper
