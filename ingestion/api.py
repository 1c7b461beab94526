"""REST endpoints under /api/ingest."""

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import paginate
from pydantic import WithJsonSchema

from accounts.roles import Capability
from analytics.models import DATASOURCE_NAME_PATTERN, Datasource
from ingestion import errors
from ingestion.downloads import error_report_response
from ingestion.models import IngestionTask
from ingestion.selectors import ingestion_task_get, ingestion_task_list
from ingestion.services import (
    DATE_FORMAT_MAX_CHARS,
    HEADER_ROW_MAX,
    UploadOptions,
    datasource_name_check,
    ingestion_task_cancel,
    ingestion_task_retry,
    ingestion_tasks_reap,
    ingestion_upload_receive,
    upload_options_parse,
)
from ingestion.uploads import upload_disk_refusal_raise
from sales_analytics.csvsafe import CSV_CONTENT_TYPE
from sales_analytics.errors import ApiError, error_responses, require_capability
from sales_analytics.pagination import BoundedLimitOffsetPagination
from sales_analytics.query_params import unknown_parameters_refused

router = Router(tags=["ingestion"])
router.add_decorator(unknown_parameters_refused, mode="operation")


class TaskOut(Schema):
    task_id: UUID
    datasource: str
    status: str
    stage: str
    progress: int
    message: str
    error_code: str  # the stable code of a failed task's refusal, "" otherwise
    original_filename: str
    rows_total: int | None
    rows_valid: int | None
    rows_rejected: int | None
    errors: list[dict]
    notes: list[str]
    error_report_url: str | None
    engine_task_id: str
    timings: dict[str, float]
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def resolve_task_id(task: IngestionTask) -> UUID:
        return task.pk

    @staticmethod
    def resolve_datasource(task: IngestionTask) -> str:
        return task.datasource.name

    @staticmethod
    def resolve_errors(task: IngestionTask) -> list[dict]:
        return task.errors[:20]

    @staticmethod
    def resolve_error_report_url(task: IngestionTask) -> str | None:
        return f"/api/ingest/tasks/{task.pk}/error-report" if task.error_report_key else None


# A Literal, not the TextChoices class: OpenAPI components are named by class, and other apps have a `Status` too.
TaskStatusName = Literal[tuple(IngestionTask.Status.values)]


class TaskFilters(Schema):
    status: TaskStatusName | None = None
    datasource: str | None = None


def _task_or_404(request: HttpRequest, task_id: UUID) -> IngestionTask:
    task = ingestion_task_get(user=request.user, task_id=str(task_id))
    if task is None:
        raise ApiError(404, "task_not_found", f"No ingestion task {task_id}.")
    return task


@router.get("/tasks", response={200: list[TaskOut], **error_responses(400, 422)})
@paginate(BoundedLimitOffsetPagination)
def list_tasks(request: HttpRequest, filters: Query[TaskFilters]):
    """Ingestion tasks, newest first."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    ingestion_tasks_reap()  # a task whose worker is gone shows as failed, not `running` forever
    return ingestion_task_list(user=request.user, status=filters.status, datasource=filters.datasource)


@router.get(
    "/status/{task_id}", response={200: TaskOut, **error_responses(400, 404, 422)}, url_name="ingestion_task_status"
)
def task_status(request: HttpRequest, task_id: UUID):
    """One task's status, stage, progress, counts and first errors."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    ingestion_tasks_reap()  # a task whose worker is gone shows as failed, not `running` forever
    return _task_or_404(request, task_id)


@router.get("/tasks/{task_id}", response={200: TaskOut, **error_responses(400, 404, 422)})
def task_detail(request: HttpRequest, task_id: UUID):
    """The same as `/status/{task_id}`, beside the task's retry and cancel."""
    return task_status(request, task_id)


class UploadAccepted(Schema):
    task_id: UUID
    status: str
    status_url: str


def _documented(description: str, **schema) -> WithJsonSchema:
    """How an upload option is documented. The fields stay text here: `upload_options_parse` reads
    them (400 `invalid_option` when wrong), and an empty or missing one means "not given"."""
    return WithJsonSchema({**schema, "description": description})


# Typed options travel as JSON text (`5`, `0.3`, `true`, `{"Total": "revenue"}`), as the `encoding`
# below tells clients; a browser form's plain `5` or `true` is the same text.
JSON_ENCODED_OPTIONS = ("mapping", "header_row", "max_rejected_ratio", "force")
# Text options hold no NUL character (refused with 400: no file has one, PostgreSQL stores none);
# lone surrogates, which JSON can escape but no pattern can name, are refused too.
NO_NUL = "^[^\\u0000]*$"


class OptionsForm(Schema):
    """How to read a file; an upload's fields, and the options a retry may change."""

    mode: Annotated[
        str | None,
        _documented(
            "append adds rows (default, also when empty); replace swaps out the file's date range.",
            enum=["append", "replace", ""],
        ),
    ] = None
    mapping: Annotated[
        str | None,
        _documented(
            'Source column → canonical field, e.g. {"Total": "revenue"}; "" or null ignores a column.',
            type="object",
            propertyNames={"pattern": NO_NUL},
            additionalProperties={"type": ["string", "null"], "pattern": NO_NUL},
        ),
    ] = None
    date_format: Annotated[
        str | None,
        _documented(
            "strftime format of the date column, e.g. %d/%m/%y.",
            type=["string", "null"],
            pattern=NO_NUL,
            maxLength=DATE_FORMAT_MAX_CHARS,
        ),
    ] = None
    decimal: Annotated[
        str | None,
        _documented(
            'Decimal mark of the numbers: "." (12.50) or "," (12,50); default: detected.',
            type="string",
            enum=[".", ",", ""],
        ),
    ] = None
    sheet: Annotated[
        str | None,
        _documented("Excel sheet to read (default: the best match).", type=["string", "null"], pattern=NO_NUL),
    ] = None
    header_row: Annotated[
        str | None,
        _documented("1-based row of the header (default: found).", type="integer", minimum=1, maximum=HEADER_ROW_MAX),
    ] = None
    max_rejected_ratio: Annotated[
        str | None,
        _documented(
            "Largest share of rejected rows that still publishes the valid ones (default 0.25).",
            type="number",
            minimum=0,
            maximum=1,
        ),
    ] = None
    force: Annotated[
        str | None, _documented("Load even if this exact file was published before (default false).", type="boolean")
    ] = None


class UploadForm(OptionsForm):
    datasource_name: Annotated[
        str,
        _documented(
            "Datasource to load into: lowercase letters, digits and underscores (empty: sales).",
            type=["string", "null"],  # any text is a name to check; a null arrives as the text "null"
            pattern=rf"^\s*({DATASOURCE_NAME_PATTERN.strip('^$')})?\s*$",  # surrounding spaces are trimmed
            default="sales",
        ),
    ] = "sales"


class PreviewValidation(Schema):
    rows_checked: int
    rows_rejected: int
    errors: list[dict]


class PreviewProblem(Schema):
    code: str
    detail: str
    # Values of the option that would settle it (ambiguous_dates: the candidate date formats).
    choices: list[str] = []


class PreviewOut(Schema):
    detected_format: str
    detected_encoding: str
    detected_delimiter: str
    detected_sheet: str
    detected_header_row: int | None
    decimal_comma: bool
    columns: list[str]
    sample_rows: list[dict]
    proposed_mapping: dict[str, str | None]
    date_format: str | None
    schema_drift: list[str]
    validation: PreviewValidation | None
    problems: list[PreviewProblem]
    # How the file was read where the uploader may want to act: a guessed decimal mark, sheets
    # left out, an option that does not apply.
    notes: list[str]


def uploaded_file_or_error(request: HttpRequest, file: UploadedFile | None) -> UploadedFile:
    """The streamed upload, or the precise reason there is none (413 past the size limit, 507 when
    the server's disk refused it)."""
    upload_disk_refusal_raise(request)
    if getattr(request, "upload_too_large", False):
        raise ApiError(
            413,
            errors.FILE_TOO_LARGE,
            f"The file is larger than the {settings.MAX_UPLOAD_MB} MB limit (MAX_UPLOAD_MB).",
        )
    if file is None:
        raise ApiError(400, "file_required", "Send the file as multipart form field 'file'.")
    return file


def upload_options_from(form: UploadForm) -> UploadOptions:
    return upload_options_parse(
        mode=form.mode,
        mapping=form.mapping,
        date_format=form.date_format,
        decimal=form.decimal,
        sheet=form.sheet,
        header_row=form.header_row,
        max_rejected_ratio=form.max_rejected_ratio,
        force=form.force,
    )


# The file is optional to the handler only so that a body past MAX_UPLOAD_MB (dropped while streaming)
# answers 413 instead of a validation error; every request must send it (400 `file_required`).
UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                # Fields it does not take are refused (sales_analytics.query_params), not ignored.
                "schema": {"required": ["file"], "additionalProperties": False},
                "encoding": {name: {"contentType": "application/json"} for name in JSON_ENCODED_OPTIONS},
            }
        }
    }
}


@router.post(
    "/upload",
    response={202: UploadAccepted, **error_responses(400, 409, 413, 415, 422, 507)},
    url_name="upload",
    openapi_extra=UPLOAD_BODY,
)
def upload(request: HttpRequest, form: Form[UploadForm], file: UploadedFile | None = File(None)):
    """Store the raw file, queue its ingestion and answer at once; follow `status_url`."""
    require_capability(request, Capability.UPLOAD_DATA)
    uploaded = uploaded_file_or_error(request, file)
    task = ingestion_upload_receive(
        local_path=Path(uploaded.temporary_file_path()),
        original_filename=uploaded.name or "upload",
        sha256=uploaded.sha256,
        size_bytes=uploaded.size,
        datasource_name=form.datasource_name,
        options=upload_options_from(form),
        user=request.user,
        owned=True,
    )
    return Status(
        202,
        {
            "task_id": task.pk,
            "status": task.status,
            "status_url": reverse("api:ingestion_task_status", kwargs={"task_id": task.pk}),
        },
    )


@router.post(
    "/preview",
    response={200: PreviewOut, **error_responses(400, 413, 415, 422, 507)},
    url_name="preview",
    openapi_extra=UPLOAD_BODY,
)
def preview(request: HttpRequest, form: Form[UploadForm], file: UploadedFile | None = File(None)):
    """Detected format, proposed mapping, date format, sample rows and a validation summary. Publishes nothing.

    `problems` lists, with the codes the upload or its task would give, what would refuse it: this exact
    file already published (`duplicate_upload`, unless `force`), a mapping or date problem, and more
    rejected rows among those checked than `max_rejected_ratio` allows (`too_many_rejected_rows`)."""
    from ingestion.pipeline import ingestion_preview

    require_capability(request, Capability.UPLOAD_DATA)
    uploaded = uploaded_file_or_error(request, file)
    name = datasource_name_check(name=form.datasource_name)
    options = upload_options_from(form)
    return ingestion_preview(
        local_path=Path(uploaded.temporary_file_path()),
        original_filename=uploaded.name or "upload",
        datasource=Datasource.objects.filter(name=name).first(),
        options=asdict(options),
        sha256=uploaded.sha256,
        user=request.user,
    )


RETRY_BODY = {
    "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"additionalProperties": False}}}}
}


@router.post(
    "/tasks/{task_id}/retry",
    response={202: TaskOut, **error_responses(400, 404, 409, 415, 422)},
    openapi_extra=RETRY_BODY,
)
def retry_task(request: HttpRequest, task_id: UUID, form: Form[OptionsForm]):
    """Run a failed or cancelled task again from its stored raw file. Options sent (form fields, as
    an upload takes them: `date_format=%d/%m/%Y`, `force=true`…) change for this run and later
    ones; every option not sent stays as the upload chose it."""
    require_capability(request, Capability.UPLOAD_DATA)
    overrides = {name: value for name, value in form.dict().items() if value is not None}
    task = _task_or_404(request, task_id)
    return Status(202, ingestion_task_retry(task=task, overrides=overrides, user=request.user))


@router.post("/tasks/{task_id}/cancel", response={200: TaskOut, **error_responses(404, 409, 422)})
def cancel_task(request: HttpRequest, task_id: UUID):
    """Cancel a queued task now, or a running one at its next checkpoint."""
    require_capability(request, Capability.UPLOAD_DATA)
    return ingestion_task_cancel(task=_task_or_404(request, task_id))


@router.get(
    "/tasks/{task_id}/error-report",
    response={200: None, **error_responses(400, 404, 422)},
    url_name="ingestion_task_error_report",
    openapi_extra={
        "responses": {
            200: {
                "description": "The error report (CSV, cells neutralised against formula injection).",
                "content": {CSV_CONTENT_TYPE: {"schema": {"type": "string"}}},
            }
        }
    },
)
def error_report(request: HttpRequest, task_id: UUID):
    """The rejected rows as CSV: source row number, column, value and reason."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    task = _task_or_404(request, task_id)
    if not task.error_report_key:
        raise ApiError(404, "no_error_report", "This task has no rejected rows, so no error report.")
    return error_report_response(task=task)
