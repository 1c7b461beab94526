"""GraphQL types and mutations for uploads and ingestion tasks."""

from pathlib import Path

import graphene
from django.urls import reverse
from graphql import GraphQLError

from accounts.roles import Capability, permission_name
from analytics.graphql import invalid_argument
from ingestion.errors import IngestionError
from ingestion.models import IngestionTask
from ingestion.selectors import ingestion_task_get, ingestion_task_list
from ingestion.services import (
    ingestion_task_cancel,
    ingestion_task_retry,
    ingestion_tasks_reap,
    ingestion_upload_receive,
    upload_options_parse,
)
from sales_analytics.pagination import MAX_OFFSET

MAX_PAGE = 200


class Upload(graphene.Scalar):
    """A file sent with the GraphQL multipart request spec (the `map` part names the variable)."""

    @staticmethod
    def serialize(value):
        return None

    @staticmethod
    def parse_literal(node, _variables=None):
        return None

    @staticmethod
    def parse_value(value):
        return value


class TaskStatus(graphene.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class IngestionTaskType(graphene.ObjectType):
    id = graphene.ID(required=True)
    datasource = graphene.String(required=True)
    status = graphene.String(required=True)
    stage = graphene.String(required=True)
    progress = graphene.Int(required=True)
    message = graphene.String(required=True)
    error_code = graphene.String(
        required=True, description="The stable code of a failed task's refusal (REST's error_code); empty otherwise."
    )
    original_filename = graphene.String(required=True)
    rows_total = graphene.Int()
    rows_valid = graphene.Int()
    rows_rejected = graphene.Int()
    errors = graphene.JSONString(required=True)
    notes = graphene.List(graphene.NonNull(graphene.String), required=True)
    error_report_url = graphene.String()
    engine_task_id = graphene.String(required=True)
    timings = graphene.JSONString(required=True)
    created_at = graphene.DateTime(required=True)
    finished_at = graphene.DateTime()

    @staticmethod
    def resolve_id(task: IngestionTask, info) -> str:
        return str(task.pk)

    @staticmethod
    def resolve_datasource(task: IngestionTask, info) -> str:
        return task.datasource.name

    @staticmethod
    def resolve_errors(task: IngestionTask, info) -> list:
        return task.errors[:20]

    @staticmethod
    def resolve_error_report_url(task: IngestionTask, info) -> str | None:
        if not task.error_report_key:
            return None
        return reverse("api:ingestion_task_error_report", kwargs={"task_id": task.pk})


class IngestionTaskPage(graphene.ObjectType):
    total_count = graphene.Int(required=True)
    items = graphene.List(graphene.NonNull(IngestionTaskType), required=True)


def _task_or_error(info, task_id: str) -> IngestionTask:
    try:
        task = ingestion_task_get(user=info.context.user, task_id=task_id)
    except Exception:  # a malformed UUID is "not found", not a server error
        task = None
    if task is None:
        raise GraphQLError(f"No ingestion task {task_id}.", extensions={"code": "task_not_found"})
    return task


def _require_upload_permission(info) -> None:
    if not info.context.user.has_perm(permission_name(Capability.UPLOAD_DATA)):
        raise GraphQLError(
            "Your role does not allow uploads, retries or cancellations.", extensions={"code": "permission_denied"}
        )


def _ingestion_error(exc: IngestionError) -> GraphQLError:
    return GraphQLError(exc.detail, extensions={"code": exc.code, "status": exc.status})


class IngestionQuery(graphene.ObjectType):
    ingestion_task = graphene.Field(IngestionTaskType, id=graphene.ID(required=True))
    ingestion_tasks = graphene.Field(
        IngestionTaskPage,
        required=True,
        status=TaskStatus(),
        datasource=graphene.String(),
        limit=graphene.Int(default_value=50),
        offset=graphene.Int(default_value=0),
    )

    @staticmethod
    def resolve_ingestion_task(root, info, id: str) -> IngestionTask:
        ingestion_tasks_reap()  # a task whose worker is gone shows as failed, not `running` forever
        return _task_or_error(info, id)

    @staticmethod
    def resolve_ingestion_tasks(root, info, limit: int, offset: int, status=None, datasource=None):
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise invalid_argument(f"limit must be 1–{MAX_PAGE} and offset 0–{MAX_OFFSET}.", code="invalid_request")
        ingestion_tasks_reap()
        tasks = ingestion_task_list(
            user=info.context.user, status=status.value if status else None, datasource=datasource
        )
        return IngestionTaskPage(total_count=tasks.count(), items=list(tasks[offset : offset + limit]))


class UploadFile(graphene.Mutation):
    class Arguments:
        file = Upload(required=True)
        datasource_name = graphene.String(default_value="")
        mode = graphene.String()
        mapping = graphene.JSONString()
        date_format = graphene.String()
        decimal = graphene.String(description='Decimal mark of the numbers: "." or ","; default: detected.')
        sheet = graphene.String()
        header_row = graphene.Int()
        max_rejected_ratio = graphene.Float()
        force = graphene.Boolean(default_value=False)

    task = graphene.Field(IngestionTaskType, required=True)

    @staticmethod
    def mutate(root, info, file, datasource_name: str = "", **options):
        _require_upload_permission(info)
        if getattr(info.context, "upload_too_large", False) or not hasattr(file, "temporary_file_path"):
            raise GraphQLError(
                "Send the file with the GraphQL multipart request spec (within MAX_UPLOAD_MB).",
                extensions={"code": "file_required"},
            )
        try:
            task = ingestion_upload_receive(
                local_path=Path(file.temporary_file_path()),
                original_filename=file.name or "upload",
                sha256=file.sha256,
                size_bytes=file.size,
                datasource_name=datasource_name,
                options=upload_options_parse(**options),
                user=info.context.user,
                owned=True,
            )
        except IngestionError as exc:
            raise _ingestion_error(exc) from None
        return UploadFile(task=task)


def _task_action(info, task_id: str, action) -> IngestionTask:
    """Retry or cancel, with the same permission check and error shape."""
    _require_upload_permission(info)
    try:
        return action(_task_or_error(info, task_id))
    except IngestionError as exc:
        raise _ingestion_error(exc) from None


class RetryIngestionTask(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)
        force = graphene.Boolean(description="Load it even if this exact file was published before.")
        date_format = graphene.String(description="strftime format of the date column, e.g. %d/%m/%y.")
        decimal = graphene.String(description='Decimal mark of the numbers: "." or ",".')

    task = graphene.Field(IngestionTaskType, required=True)

    @staticmethod
    def mutate(
        root, info, id: str, force: bool | None = None, date_format: str | None = None, decimal: str | None = None
    ):
        overrides = {"force": force, "date_format": date_format, "decimal": decimal}
        sent = {name: value for name, value in overrides.items() if value is not None}
        return RetryIngestionTask(
            task=_task_action(
                info, id, lambda task: ingestion_task_retry(task=task, overrides=sent, user=info.context.user)
            )
        )


class CancelIngestionTask(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)

    task = graphene.Field(IngestionTaskType, required=True)

    @staticmethod
    def mutate(root, info, id: str):
        return CancelIngestionTask(task=_task_action(info, id, lambda task: ingestion_task_cancel(task=task)))


class IngestionMutation(graphene.ObjectType):
    upload_file = UploadFile.Field()
    retry_ingestion_task = RetryIngestionTask.Field()
    cancel_ingestion_task = CancelIngestionTask.Field()
