"""Query-string conventions shared by the REST routers and the pages."""

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import wraps
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from django.http import HttpRequest, HttpResponse
from ninja.signature import ViewSignature
from pydantic import BaseModel, PlainValidator, WithJsonSchema
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
    """An operation that refuses request fields it would not read, instead of ignoring them.

    - a query parameter it does not declare, or a single-valued one sent twice: 400 `invalid_query`
      (`?branhc=A` answered every branch's total as if filtered; `?datasource=a&datasource=b`
      answered b's, silently);
    - a form field it does not declare, or one sent twice: 400 `invalid_form` (an upload with
      `datasource=t2` for `datasource_name` published into the default datasource);
    - fields in a body its form does not read (JSON to a form endpoint): 415 `unsupported_media_type`
      (a retry sent `{"force": true}` ran again with its old options).

    Applied as an operation decorator (`mode="operation"`): after authentication and the
    declared parameters' own validation, so a caller without access still gets 401/403 first.
    """
    query = _declared_fields(view, "query")
    form = _declared_fields(view, "form")
    files = frozenset(_declared_fields(view, "file").names)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        _fields_check(request.GET.lists(), query, code="invalid_query", what="query parameter")
        if request.method not in ("GET", "HEAD") and not _body_fields_readable(request, form):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"This endpoint reads form fields (multipart/form-data or application/x-www-form-urlencoded), "
                f"not a {request.content_type} body: send each option as a form field (e.g. force=true).",
            )
        if request.method not in ("GET", "HEAD"):
            sent = [(name, values) for name, values in request.POST.lists() if name != CSRF_FORM_FIELD]
            sent += [(name, values) for name, values in request.FILES.lists() if name not in files]
            _fields_check(sent, form, code="invalid_form", what="form field", also=files)
        return view(request, *args, **kwargs)

    return wrapper


# Django's CSRF token field, which a session-authenticated form post carries beside its own fields.
CSRF_FORM_FIELD = "csrfmiddlewaretoken"
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class _Fields:
    names: frozenset[str]
    repeatable: frozenset[str]  # list-valued: sent once per value


def _fields_check(
    sent: Iterable[tuple[str, list]], declared: _Fields, *, code: str, what: str, also: frozenset[str] = frozenset()
) -> None:
    sent = list(sent)
    unknown = sorted({name for name, _ in sent} - declared.names - also)
    if unknown:
        known = ", ".join(sorted(declared.names | also)) or "none"
        raise ApiError(
            400, code, f"Unknown {_counted_words(what, unknown)} {_quoted(unknown)}: this endpoint takes {known}."
        )
    repeated = sorted(name for name, values in sent if len(values) > 1 and name not in declared.repeatable)
    if repeated:
        raise ApiError(
            400,
            code,
            f"{_counted_words(what, repeated).capitalize()} {_quoted(repeated)} sent more than once: send one value.",
        )


def _counted_words(what: str, names: list[str]) -> str:
    return what if len(names) == 1 else f"{what}s"


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _body_fields_readable(request: HttpRequest, form: _Fields) -> bool:
    """False for a non-empty body, not form-encoded, sent to an operation that reads form fields.
    (Operations without form fields take no body: one sent to them, `{}` say, changes nothing.)"""
    if not form.names or not request.META.get("CONTENT_LENGTH", "").strip("0 "):
        return True
    return request.content_type in _FORM_TYPES


def _declared_fields(view: Callable[..., HttpResponse], source: str) -> _Fields:
    """The parameter names ninja reads for `view` from `source` ("query", "form", "file"): a
    schema's fields flattened, and which of them take a list."""
    names: set[str] = set()
    repeatable: set[str] = set()
    for model in ViewSignature("", view).models:
        if getattr(model, "__ninja_param_source__", None) != source:
            continue
        for name, annotation in _leaf_fields(model):
            names.add(name)
            if _is_list(annotation):
                repeatable.add(name)
    return _Fields(frozenset(names), frozenset(repeatable))


def _leaf_fields(model: type[BaseModel]) -> Iterator[tuple[str, Any]]:
    """(name as sent, annotation) of every leaf field: a nested Query/Form schema's fields flattened."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaf_fields(annotation)
        else:
            yield field.alias or name, annotation


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_list(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_is_list(arg) for arg in get_args(annotation))
    return origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset)
