"""The one NinjaAPI: a router per app, shared auth and error shapes."""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.authentication import (
    CSRF_FAILED_DETAIL,
    BearerTokenAuth,
    BrowserSessionAuth,
    CsrfFailed,
    refused_token_detail,
    request_authenticate,
)
from analytics.engines import EngineError
from ingestion.errors import TOO_MANY_FILES, IngestionError
from ingestion.uploads import TOO_MANY_FILES_DETAIL
from sales_analytics.errors import ApiError
from sales_analytics.health import health_report


class SalesAnalyticsAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        _query_values_not_null(schema)
        return schema


def _query_values_not_null(schema: dict) -> None:
    """A query parameter is text: null cannot be sent, only left out.

    Pydantic documents `x: T | None = None` as `anyOf: [T, null]` with `default: null`; for a query
    parameter that would promise the server accepts the text "null". Left out is what None means.
    A file part is likewise sent or left out. (The other multipart fields are documented one by one:
    see ingestion.api.UploadForm.)
    """
    for methods in schema["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    parameter["schema"] = _without_null(parameter["schema"])
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
            fields = form.get("schema", {}).get("properties", {})
            for name, field in fields.items():
                if {"type": "string", "format": "binary"} in field.get("anyOf", []):
                    fields[name] = _without_null(field)


def _without_null(field: dict) -> dict:
    options = field.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        field = {key: value for key, value in field.items() if key != "anyOf"}
        field = {**rest[0], **field} if len(rest) == 1 else {**field, "anyOf": rest}
    if "default" in field and field["default"] is None:
        field = {key: value for key, value in field.items() if key != "default"}
    return field


def _docs_for_known_callers(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`/api/docs` and `/api/openapi.json`, like every API call but health, need a session or an API token."""

    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            user = request_authenticate(request)
        except CsrfFailed:
            user = None
        if user is None:
            return not_authenticated_response(request)
        return view(request, *args, **kwargs)

    return guarded


api = SalesAnalyticsAPI(
    title="Sales Analytics API",
    version="1.0",
    description="Upload sales files, follow their ingestion and read every dashboard number.",
    auth=[BearerTokenAuth(), BrowserSessionAuth()],
    urls_namespace="api",
    docs_url="/docs",
    docs_decorator=_docs_for_known_callers,
)

HTTP_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


def error_response(request: HttpRequest, status: int, code: str, detail: str, **extra) -> HttpResponse:
    return api.create_response(request, {"detail": detail, "code": code, **extra}, status=status)


@api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(request, exc.status, exc.code, exc.detail)


@api.exception_handler(IngestionError)
def on_ingestion_error(request: HttpRequest, exc: IngestionError) -> HttpResponse:
    return error_response(request, exc.status, exc.code, exc.detail)


@api.exception_handler(TooManyFilesSent)
def on_too_many_files(request: HttpRequest, exc: TooManyFilesSent) -> HttpResponse:
    return error_response(request, 400, TOO_MANY_FILES, TOO_MANY_FILES_DETAIL)


@api.exception_handler(EngineError)
def on_engine_error(request: HttpRequest, exc: EngineError) -> HttpResponse:
    # The engine is down or refused the query: a service problem, said plainly, never a stack trace.
    return error_response(request, 503, exc.code, exc.detail)


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return not_authenticated_response(request)


def not_authenticated_response(request: HttpRequest) -> HttpResponse:
    response = error_response(
        request,
        401,
        "not_authenticated",
        refused_token_detail(request)
        or "Authentication required: log in, or send 'Authorization: Bearer <API token>' with a valid token.",
    )
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 403 and "CSRF" in str(exc):
        # ninja's own words ("CSRF check Failed") tell the caller nothing to do.
        return error_response(request, 403, "csrf_failed", CSRF_FAILED_DETAIL)
    return error_response(request, exc.status_code, HTTP_STATUS_CODES.get(exc.status_code, "error"), str(exc))


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors
    )
    return error_response(request, 422, "invalid_request", f"Invalid request: {problems}", errors=exc.errors)


class HealthOut(Schema):
    status: str
    checks: dict[str, dict]


# HEAD too: uptime monitors probe with it, and a 405 read as "down".
@api.api_operation(["GET", "HEAD"], "/health", auth=None, response={200: HealthOut, 503: HealthOut}, tags=["health"])
def health(request: HttpRequest):
    """Public liveness and readiness: 503 only when the database or storage is unreachable (HEAD: the same, no body)."""
    report = health_report()
    return Status(report.http_status, {"status": report.status, "checks": report.checks})


def _register_routers() -> None:
    # Imported here so the app routers can import the error types above without a cycle.
    from analytics.api import router as metrics_router
    from dashboard.api import router as alerts_router
    from ingestion.api import router as ingestion_router

    api.add_router("/ingest", ingestion_router)
    api.add_router("/metrics", metrics_router)
    api.add_router("/alerts", alerts_router)


_register_routers()
