"""REST endpoints under /api/ingest."""

from datetime import datetime
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from accounts.roles import Capability
from ingestion.models import IngestionTask
from ingestion.selectors import ingestion_task_get, ingestion_task_list
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


@router.get("/status/{task_id}", response=TaskOut)
def task_status(request: HttpRequest, task_id: UUID):
    """One task's status, stage, progress, counts and first errors."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    return _task_or_404(task_id)
