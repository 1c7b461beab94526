"""REST endpoints under /api/ingest."""

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest
from django.urls import reverse
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from ninja.pagination import LimitOffsetPagination, paginate

from accounts.roles import Capability
from analytics.models import Datasource
from ingestion import errors
from ingestion.models import IngestionTask
from ingestion.selectors import ingestion_task_get, ingestion_task_list
from ingestion.services import (
    UploadOptions,
    datasource_name_check,
    ingestion_task_cancel,
    ingestion_task_retry,
    ingestion_upload_receive,
    upload_options_parse,
)
from sales_analytics.errors import ApiError, require_capability

router = Router(tags=["ingestion"])


class TaskOut(Schema):
    task_id: UUID
    datasource: str
    status: str
    stage: str
    progress: int
    message: str
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


class TaskFilters(Schema):
    status: IngestionTask.Status | None = None
    datasource: str | None = None


def _task_or_404(task_id: UUID) -> IngestionTask:
    task = ingestion_task_get(task_id=str(task_id))
    if task is None:
        raise ApiError(404, "task_not_found", f"No ingestion task {task_id}.")
    return task


@router.get("/tasks", response=list[TaskOut])
@paginate(LimitOffsetPagination)
def list_tasks(request: HttpRequest, filters: Query[TaskFilters]):
    """Ingestion tasks, newest first."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return ingestion_task_list(status=filters.status, datasource=filters.datasource)


@router.get("/status/{task_id}", response=TaskOut, url_name="ingestion_task_status")
def task_status(request: HttpRequest, task_id: UUID):
    """One task's status, stage, progress, counts and first errors."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return _task_or_404(task_id)


class UploadAccepted(Schema):
    task_id: UUID
    status: str
    status_url: str


class UploadForm(Schema):
    datasource_name: str = "sales"
    mode: str | None = None
    mapping: str | None = None
    date_format: str | None = None
    sheet: str | None = None
    header_row: str | None = None
    max_rejected_ratio: str | None = None
    force: str | None = None


def uploaded_file_or_error(request: HttpRequest, file: UploadedFile | None) -> UploadedFile:
    """The streamed upload, or the precise reason there is none (413 past the size limit)."""
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
        sheet=form.sheet,
        header_row=form.header_row,
        max_rejected_ratio=form.max_rejected_ratio,
        force=form.force,
    )


@router.post("/upload", response={202: UploadAccepted}, url_name="upload")
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
    )
    return Status(
        202,
        {
            "task_id": task.pk,
            "status": task.status,
            "status_url": reverse("api:ingestion_task_status", kwargs={"task_id": task.pk}),
        },
    )


@router.post("/preview", url_name="preview")
def preview(request: HttpRequest, form: Form[UploadForm], file: UploadedFile | None = File(None)):
    """Detected format, proposed mapping, date format, sample rows and a validation summary. Publishes nothing."""
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
    )


@router.post("/tasks/{task_id}/retry", response={202: TaskOut})
def retry_task(request: HttpRequest, task_id: UUID):
    """Run a failed or cancelled task again from its stored raw file."""
    require_capability(request, Capability.UPLOAD_DATA)
    return Status(202, ingestion_task_retry(task=_task_or_404(task_id)))


@router.post("/tasks/{task_id}/cancel", response=TaskOut)
def cancel_task(request: HttpRequest, task_id: UUID):
    """Cancel a queued task now, or a running one at its next checkpoint."""
    require_capability(request, Capability.UPLOAD_DATA)
    return ingestion_task_cancel(task=_task_or_404(task_id))


@router.get("/tasks/{task_id}/error-report", response={200: None}, url_name="ingestion_task_error_report")
def error_report(request: HttpRequest, task_id: UUID):
    """The rejected rows as CSV: source row number, column, value and reason."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    task = _task_or_404(task_id)
    if not task.error_report_key:
        raise ApiError(404, "no_error_report", "This task has no rejected rows, so no error report.")
    response = FileResponse(default_storage.open(task.error_report_key, "rb"), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="errors-{task.pk}.csv"'
    return response
