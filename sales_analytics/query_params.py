"""Query-string conventions shared by the REST routers and the pages."""

import datetime as dt
import re
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# Exactly YYYY-MM-DD (ASCII digits): pydantic alone read `start=0` as 1970-01-01 (a Unix time)
# and `2019-01-01T00:00:00` as a day, and Python's fromisoformat takes `20190101` and `2019-W01-1`.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def iso_date_parse(value: str) -> dt.date:
    """A day written YYYY-MM-DD; ValueError with a message for people otherwise."""
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD, e.g. 2019-01-31).")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: there is no such day (use YYYY-MM-DD).") from None


def _iso_date_validate(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return iso_date_parse(value if isinstance(value, str) else repr(value))
    except ValueError as exc:
        # The value goes in as context, never as the template: braces in it are not placeholders.
        raise PydanticCustomError("iso_date", "{reason}", {"reason": str(exc)}) from None


# A query parameter that is a day: YYYY-MM-DD only, else a 422 naming the value.
IsoDate = Annotated[
    dt.date,
    PlainValidator(_iso_date_validate),
    WithJsonSchema({"type": "string", "format": "date", "description": "A day, written YYYY-MM-DD."}),
]


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
