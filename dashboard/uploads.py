"""The Uploads page: upload with progress, task list with live status, retry and downloads."""

import json
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import capability_required
from accounts.roles import Capability, permission_name
from ingestion.downloads import error_report_response, raw_file_response
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
from ingestion.uploads import upload_disk_refusal_raise
from ingestion.wording import page_spelling
from sales_analytics.health import check_worker

TASKS_SHOWN = 50
# Mapping and date problems are fixed by choosing options and retrying from the stored file.
FIXABLE_CODES = (
    "missing_required_column",
    "invalid_mapping",
    "ambiguous_columns",
    "ambiguous_dates",
    "invalid_date_format",
)


def _task_or_404(request: HttpRequest, task_id: str) -> IngestionTask:
    task = ingestion_task_get(user=request.user, task_id=task_id)
    if task is None:
        raise Http404("No such task")
    return task


def _options_from(data) -> dict:
    return {
        "mode": data.get("mode"),
        "mapping": data.get("mapping"),
        "date_format": data.get("date_format"),
        "decimal": data.get("decimal"),
        "sheet": data.get("sheet"),
        "header_row": data.get("header_row"),
        "max_rejected_ratio": data.get("max_rejected_ratio"),
        "force": data.get("force"),
    }


def _task_context(request: HttpRequest) -> dict:
    ingestion_tasks_reap()  # a task whose worker is gone shows as failed, not `running` forever
    tasks = list(ingestion_task_list(user=request.user)[:TASKS_SHOWN])
    return {
        "tasks": tasks,
        "worker_missing": worker_missing_for(tasks),
        "any_active": any(not task.is_finished for task in tasks),
        "can_upload": request.user.has_perm(permission_name(Capability.UPLOAD_DATA)),
    }


def worker_missing_for(tasks: list[IngestionTask]) -> bool:
    """Whether some of `tasks` wait in the queue while no worker runs to take them: the pages said
    "Waiting for a worker" forever, while /api/health knew that none was running."""
    return any(task.status == IngestionTask.Status.QUEUED for task in tasks) and not check_worker().ok


# Never from the browser's cache: Back after an upload showed the list without it, the form ready
# to send the same file again.
@never_cache
@require_http_methods(["GET", "POST"])
@capability_required(Capability.VIEW_DASHBOARDS)
def uploads(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _upload_post(request)
    context = {
        "page": "uploads",
        "max_upload_mb": settings.MAX_UPLOAD_MB,
        "default_datasource": settings.DEFAULT_DATASOURCE,
        **_task_context(request),
    }
    if request.htmx and request.GET.get("partial") == "tasks":
        return render(request, "dashboard/uploads.html#task-list", context)
    return render(request, "dashboard/uploads.html", context)


def _upload_post(request: HttpRequest) -> HttpResponse:
    """The no-JavaScript path; the page's script posts to /api/ingest/upload instead."""
    if not request.user.has_perm(permission_name(Capability.UPLOAD_DATA)):
        messages.error(request, "Your role does not allow uploading.")
        return redirect("dashboard:uploads")
    uploaded = request.FILES.get("file")
    try:
        upload_disk_refusal_raise(request)
    except IngestionError as exc:
        messages.error(request, page_spelling(exc.detail))
        return redirect("dashboard:uploads")
    if getattr(request, "upload_too_large", False):
        messages.error(request, f"The file is larger than the {settings.MAX_UPLOAD_MB} MB limit.")
        return redirect("dashboard:uploads")
    if uploaded is None:
        messages.error(request, "Choose a file to upload.")
        return redirect("dashboard:uploads")
    try:
        task = ingestion_upload_receive(
            local_path=Path(uploaded.temporary_file_path()),
            original_filename=uploaded.name or "upload",
            sha256=uploaded.sha256,
            size_bytes=uploaded.size,
            datasource_name=request.POST.get("datasource_name", ""),
            options=upload_options_parse(**_options_from(request.POST)),
            user=request.user,
            owned=True,
        )
    except IngestionError as exc:
        messages.error(request, page_spelling(exc.detail))
        return redirect("dashboard:uploads")
    messages.success(request, f"Uploaded {task.original_filename}; processing has started.")
    return redirect("dashboard:upload_task", task_id=task.pk)


@never_cache
@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def upload_task(request: HttpRequest, task_id: str) -> HttpResponse:
    ingestion_tasks_reap()
    task = _task_or_404(request, task_id)
    context = {
        "page": "uploads",
        "task": task,
        "fixable": task.status == IngestionTask.Status.FAILED and task.error_code in FIXABLE_CODES,
        "worker_missing": worker_missing_for([task]),
        # As JSON, the way the form sends it back (the dict's own text has Python's quotes).
        "mapping_json": json.dumps(task.options["mapping"]) if task.options.get("mapping") else "",
        "can_upload": request.user.has_perm(permission_name(Capability.UPLOAD_DATA)),
    }
    if request.htmx:
        return render(request, "dashboard/upload_task.html#task-status", context)
    return render(request, "dashboard/upload_task.html", context)


@require_POST
@capability_required(Capability.UPLOAD_DATA)
def upload_task_retry(request: HttpRequest, task_id: str) -> HttpResponse:
    task = _task_or_404(request, task_id)
    # The fix form's fields, or `force` alone (a file published before, loaded again on purpose).
    sent = {name: value for name, value in _options_from(request.POST).items() if name in request.POST}
    try:
        ingestion_task_retry(task=task, overrides=sent, user=request.user)
        messages.success(request, "Queued again from the stored raw file; waiting for a worker.")
    except IngestionError as exc:
        messages.error(request, page_spelling(exc.detail))
    return redirect("dashboard:upload_task", task_id=task.pk)


@require_POST
@capability_required(Capability.UPLOAD_DATA)
def upload_task_cancel(request: HttpRequest, task_id: str) -> HttpResponse:
    task = _task_or_404(request, task_id)
    try:
        ingestion_task_cancel(task=task)
    except IngestionError as exc:
        messages.error(request, page_spelling(exc.detail))
    return redirect("dashboard:upload_task", task_id=task.pk)


@require_GET
@capability_required(Capability.UPLOAD_DATA)
def upload_raw_file(request: HttpRequest, task_id: str) -> FileResponse:
    task = ingestion_task_get(user=request.user, task_id=task_id)
    if task is None or not task.raw_key:
        raise Http404("No raw file")
    try:
        return raw_file_response(task=task)
    except FileNotFoundError:
        message = (
            f"The raw file of {task.original_filename} is no longer in storage (key {task.raw_key}): it was "
            "deleted or moved outside the application, so it cannot be downloaded, and the task cannot be retried."
        )
        return render(request, "404.html", {"message": message}, status=404)


@require_GET
@capability_required(Capability.VIEW_DASHBOARDS)
def upload_error_report(request: HttpRequest, task_id: str) -> HttpResponse:
    task = ingestion_task_get(user=request.user, task_id=task_id)
    if task is None or not task.error_report_key:
        raise Http404("No error report")
    return error_report_response(task=task)
