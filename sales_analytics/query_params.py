"""Query-string conventions shared by the REST routers and the pages."""

import datetime as dt
import re
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja.signature import ViewSignature
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from sales_analytics.errors import ApiError

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


def unknown_parameters_refused(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A GET operation that answers 400 `invalid_query` to a query parameter it does not declare.

    A misspelt filter (`?branhc=A`) or one the endpoint does not have (`?sales_rep=…`) would
    otherwise be dropped, and the answer — every branch's total — read as the filtered one.
    Applied as an operation decorator (`mode="operation"`): after authentication and the
    declared parameters' own validation, so a caller without access still gets 401/403 first.
    """
    declared = _declared_query_names(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        unknown = sorted(set(request.GET) - declared) if request.method == "GET" else []
        if unknown:
            listed = ", ".join(f"'{name}'" for name in unknown)
            known = ", ".join(sorted(declared)) or "none"
            raise ApiError(
                400,
                "invalid_query",
                f"Unknown query parameter{'s' if len(unknown) > 1 else ''} {listed}: this endpoint takes {known}.",
            )
        return view(request, *args, **kwargs)

    return wrapper


def _declared_query_names(view: Callable[..., HttpResponse]) -> frozenset[str]:
    """The query parameter names ninja reads for `view` (a Query schema's fields flattened)."""
    names: set[str] = set()
    for model in ViewSignature("", view).models:
        if getattr(model, "__ninja_param_source__", None) != "query":
            continue
        # Every leaf, a Query schema's fields included; without one, the model's own fields.
        flattened = getattr(model, "__ninja_flatten_map__", None)
        names.update(flattened or (field.alias or name for name, field in model.model_fields.items()))
    return frozenset(names)
