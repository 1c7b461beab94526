from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin import UnscopedStaffAdmin
from ingestion.errors import IngestionError
from ingestion.mapping import saved_mapping_problem
from ingestion.models import ColumnMapping, IngestionTask
from ingestion.selectors import ingestion_tasks_visible
from ingestion.services import ingestion_task_cancel, ingestion_task_retry, ingestion_tasks_reap
from sales_analytics.plural import counted

FORCED_RETRY = "Retry selected tasks even if their file is already published or being loaded (force)"


def admin_spelling(message: str) -> str:
    """`message` with the API's `force=true` advice as the admin action that sends it: the admin
    cannot send an option."""
    action = f"the action “{FORCED_RETRY}”"
    return message.replace("Send force=true", f"Use {action}").replace("send force=true", f"use {action}")


@admin.register(IngestionTask)
class IngestionTaskAdmin(admin.ModelAdmin):
    list_display = (
        "original_filename",
        "datasource",
        "status",
        "stage_shown",
        "progress",
        "rows_valid",
        "rows_rejected",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "stage", "datasource", "mode")
    search_fields = ("id", "original_filename", "sha256", "message")
    date_hierarchy = "created_at"
    actions = ["retry_tasks", "retry_tasks_forced", "cancel_tasks"]
    list_select_related = ("datasource", "created_by")

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestionTask]:
        # A branch-scoped staff user sees their own uploads only, as in the API and the pages.
        return ingestion_tasks_visible(user=request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: IngestionTask | None = None) -> list[str]:
        fields = [f.name for f in IngestionTask._meta.fields]
        return [
            *fields[: fields.index("stage")],
            "stage_shown",
            *fields[fields.index("stage") + 1 :],
            "raw_file",
            "error_report",
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        ingestion_tasks_reap()  # a task whose worker is gone shows as failed, not `running` forever
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None):
        ingestion_tasks_reap()
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Stage", ordering="stage")
    def stage_shown(self, task: IngestionTask) -> str:
        return task.stage_label

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: IngestionTask | None = None) -> bool:
        # Read-only detail: the task's history is evidence, edited only through actions.
        return False

    @admin.display(description="Raw file")
    def raw_file(self, task: IngestionTask) -> str:
        if not task.raw_key:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("dashboard:raw_file", args=[task.pk]), task.raw_key)

    @admin.display(description="Error report")
    def error_report(self, task: IngestionTask) -> str:
        if not task.error_report_key:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("api:ingestion_task_error_report", args=[task.pk]), task.error_report_key
        )

    @admin.action(description="Retry selected failed or cancelled tasks")
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[IngestionTask]) -> None:
        self._apply(
            request, queryset, lambda task: ingestion_task_retry(task=task, user=request.user), "queued again", "retry"
        )

    @admin.action(description=FORCED_RETRY)
    def retry_tasks_forced(self, request: HttpRequest, queryset: QuerySet[IngestionTask]) -> None:
        def retry(task: IngestionTask) -> IngestionTask:
            return ingestion_task_retry(task=task, overrides={"force": True}, user=request.user)

        self._apply(request, queryset, retry, "queued again (force)", "retry")

    @admin.action(description="Cancel selected queued or running tasks")
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[IngestionTask]) -> None:
        self._apply(request, queryset, lambda task: ingestion_task_cancel(task=task), "cancelled", "cancel")

    def _apply(self, request: HttpRequest, queryset: QuerySet[IngestionTask], action, done: str, verb: str) -> None:
        succeeded = 0
        for task in queryset:
            try:
                action(task)
                succeeded += 1
            except IngestionError as exc:
                # Not the file name first: the admin capitalises a message's first letter (bad.csv → Bad.csv).
                refusal = f"Could not {verb} {task.original_filename}: {admin_spelling(exc.detail)}"
                self.message_user(request, refusal, messages.WARNING)
        if succeeded:
            self.message_user(request, f"{counted(succeeded, 'task')} {done}.", messages.SUCCESS)


class ColumnMappingForm(forms.ModelForm):
    class Meta:
        model = ColumnMapping
        fields = ("datasource", "mapping", "source_columns")
        help_texts = {
            "mapping": 'Canonical field → source column, e.g. {"revenue": "Total", "branch": "Store"}.',
            "source_columns": "The columns of the file the mapping was chosen for.",
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        if "mapping" in cleaned and "source_columns" in cleaned:
            problem = saved_mapping_problem(mapping=cleaned["mapping"], source_columns=cleaned["source_columns"])
            if problem is not None:
                raise forms.ValidationError(problem)
        return cleaned


@admin.register(ColumnMapping)
class ColumnMappingAdmin(UnscopedStaffAdmin):
    """A datasource's saved mapping decides how everyone's later files are read: unscoped staff only."""

    form = ColumnMappingForm
    list_display = ("datasource", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ColumnMapping | None = None) -> tuple[str, ...]:
        # Moving a mapping to another datasource would silently change how that one's files are read.
        return ("datasource",) if obj is not None else ()
