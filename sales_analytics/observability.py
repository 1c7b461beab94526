"""Request and task ids on every log line, and one access-log line per request."""

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

# One id per unit of work: an HTTP request id ("r-…") or a background task id ("t-…").
_NO_CONTEXT_ID = "-"
current_context_id: ContextVar[str] = ContextVar("current_context_id", default=_NO_CONTEXT_ID)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators. (Escaping is
# idempotent: the access log escapes its path, and the handler's filter escapes every argument.)
_UNSAFE_IN_LOG = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
access_logger = logging.getLogger("sales_analytics.access")


def _escape_character(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def log_text_escape(text: str) -> str:
    """`text` on one log line: a request-supplied newline cannot start a forged line."""
    return _UNSAFE_IN_LOG.sub(_escape_character, text)


def _log_arg_escape(value: object) -> object:
    """A value whose text holds a control character is logged as escaped text; any other keeps its
    type (for %d, %.1f and %r)."""
    text = value if isinstance(value, str) else str(value)
    return log_text_escape(text) if _UNSAFE_IN_LOG.search(text) else value


def _record_context_id(record: logging.LogRecord) -> str:
    """The id of the unit of work `record` was written in.

    Django logs a response's 4xx/5xx status (django.request: "Not Found", "Bad Request") after the
    middleware chain has returned, so outside RequestIdMiddleware's log_context; such a record
    carries the request itself, and with it the id the middleware gave it.
    """
    context_id = current_context_id.get()
    if context_id == _NO_CONTEXT_ID:
        request_id = getattr(getattr(record, "request", None), "request_id", None)
        if isinstance(request_id, str):
            return request_id
    return context_id


class ContextFilter(logging.Filter):
    """Adds `request_id` (request or task id) to every record, and escapes the record's arguments.

    Arguments are where request-derived text (paths, file names, error messages) enters a line;
    the message template itself is ours.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _record_context_id(record)
        if isinstance(record.args, tuple):
            record.args = tuple(_log_arg_escape(value) for value in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _log_arg_escape(value) for key, value in record.args.items()}
        return True


@contextmanager
def log_context(context_id: str) -> Iterator[None]:
    """Tag log lines written inside the block with `context_id` (used by background tasks)."""
    token = current_context_id.set(context_id)
    try:
        yield
    finally:
        current_context_id.reset(token)


def request_id_from(request: HttpRequest) -> str:
    """A caller's X-Request-ID when it is a safe token, else a fresh one."""
    incoming = request.headers.get("X-Request-ID", "")
    return incoming if _SAFE_ID.fullmatch(incoming) else f"r-{uuid.uuid4().hex[:16]}"


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request)
        request.request_id = request_id
        started = time.perf_counter()
        with log_context(request_id):
            response = self.get_response(request)
            elapsed_ms = (time.perf_counter() - started) * 1000
            access_logger.info(
                "%s %s %s %.1fms",
                log_text_escape(request.method),
                log_text_escape(request.path),
                response.status_code,
                elapsed_ms,
                extra={"status": response.status_code, "duration_ms": round(elapsed_ms, 1)},
            )
        response["X-Request-ID"] = request_id
        return response
