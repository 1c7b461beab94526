"""Writes for ingestion: receiving an upload, running its task, retrying and cancelling."""

import contextlib
import datetime as dt
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from accounts.selectors import user_allowed_branches
from analytics.engines import get_engine
from analytics.models import Segment, datasource_name_validator
from analytics.services import datasource_get_or_create, datasource_publish_undo
from ingestion import errors
from ingestion.dates import date_format_validate
from ingestion.errors import IngestionError, disk_refusal
from ingestion.liveness import TaskHeartbeat, task_worker_gone, this_worker
from ingestion.mapping import mapping_fields_check
from ingestion.models import IngestionTask
from ingestion.selectors import ingestion_tasks_visible
from ingestion.signals import task_failed
from sales_analytics.plural import counted

logger = logging.getLogger(__name__)

DEFAULT_MAX_REJECTED_RATIO = 0.25


@dataclass(frozen=True)
class UploadOptions:
    """What the uploader may choose; stored on the task so a retry runs the same way."""

    mode: str = IngestionTask.Mode.APPEND
    mapping: dict[str, str | None] | None = None
    date_format: str | None = None
    decimal: str | None = None  # the numbers' decimal mark, "." or ","; None: detected
    sheet: str | None = None
    header_row: int | None = None
    max_rejected_ratio: float = DEFAULT_MAX_REJECTED_RATIO
    force: bool = False


UPLOAD_OPTION_NAMES: tuple[str, ...] = tuple(option.name for option in fields(UploadOptions))


def upload_options_parse(
    *,
    mode: str | None = None,
    mapping: str | dict | None = None,
    date_format: str | None = None,
    decimal: str | None = None,
    sheet: str | None = None,
    header_row: int | str | None = None,
    max_rejected_ratio: float | str | None = None,
    force: bool | str | None = None,
) -> UploadOptions:
    """Validate raw form/CLI values; any problem is an `invalid_option` (400)."""
    mode = (mode or IngestionTask.Mode.APPEND).strip().lower()
    if mode not in IngestionTask.Mode.values:
        raise IngestionError(errors.INVALID_OPTION, "mode must be 'append' or 'replace'.", status=400)
    parsed_mapping = _mapping_parse(mapping)
    _text_options_check(
        mapping=" ".join(f"{key} {value}" for key, value in (parsed_mapping or {}).items()),
        date_format=date_format,
        sheet=sheet,
    )
    if date_format and len(date_format) > DATE_FORMAT_MAX_CHARS:
        raise IngestionError(
            errors.INVALID_OPTION, f"date_format must be at most {DATE_FORMAT_MAX_CHARS} characters.", status=400
        )
    date_format = (date_format or "").strip() or None
    # Refused with the request, not accepted (202) and failed by the task later: a date format that
    # cannot read a date, a mapping to a field that does not exist. 422 with the codes' own status:
    # the request is well formed (its schema cannot say which strftime texts read a date).
    if date_format is not None:
        date_format_validate(date_format)
    if parsed_mapping:
        mapping_fields_check(parsed_mapping)
    return UploadOptions(
        mode=mode,
        mapping=parsed_mapping,
        date_format=date_format,
        decimal=_decimal_parse(decimal),
        sheet=(sheet or "").strip() or None,
        header_row=_header_row_parse(header_row),
        max_rejected_ratio=_ratio_parse(max_rejected_ratio),
        force=_flag_parse(force),
    )


# The task row keeps the date format it used (IngestionTask.detected_date_format).
DATE_FORMAT_MAX_CHARS = 64


def _text_options_check(**options: str | None) -> None:
    """No text option may hold a NUL character or a lone surrogate (a JSON escape such as
    "\\ud800"): no file's column, sheet or date can, and PostgreSQL refuses to store either
    (a 500 when the task was created)."""
    for name, value in options.items():
        if value and "\x00" in value:
            raise IngestionError(errors.INVALID_OPTION, f"{name} must not contain a NUL character.", status=400)
        try:
            (value or "").encode("utf-8")
        except UnicodeEncodeError:
            raise IngestionError(
                errors.INVALID_OPTION, f"{name} must be valid Unicode text (it holds a lone surrogate).", status=400
            ) from None


def _mapping_parse(mapping: str | dict | None) -> dict[str, str | None] | None:
    if mapping in (None, "", {}):
        return None
    if isinstance(mapping, str):
        try:
            mapping = json.loads(mapping)
        except json.JSONDecodeError as exc:
            raise IngestionError(errors.INVALID_OPTION, f"mapping is not valid JSON ({exc.msg}).", status=400) from None
        except RecursionError:
            raise IngestionError(errors.INVALID_OPTION, "mapping is nested too deeply.", status=400) from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in mapping.items()
    ):
        raise IngestionError(
            errors.INVALID_OPTION,
            'mapping must be a JSON object of source column → canonical field, e.g. {"Total": "revenue"}.',
            status=400,
        )
    return mapping


DECIMAL_MARKS = (".", ",")


def _decimal_parse(decimal: str | None) -> str | None:
    mark = (decimal or "").strip()
    if mark and mark not in DECIMAL_MARKS:
        raise IngestionError(
            errors.INVALID_OPTION,
            'decimal must be "." (12.50) or "," (12,50): the decimal mark of the file\'s numbers.',
            status=400,
        )
    return mark or None


# A sheet's last row; a larger header_row overflowed the Excel reader (a 500).
HEADER_ROW_MAX = 1_048_576


def _header_row_parse(header_row: int | str | None) -> int | None:
    if header_row in (None, ""):
        return None
    try:
        value = int(header_row)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= HEADER_ROW_MAX:
        raise IngestionError(
            errors.INVALID_OPTION, f"header_row must be a whole number from 1 to {HEADER_ROW_MAX:,}.", status=400
        )
    return value


def _ratio_parse(ratio: float | str | None) -> float:
    if ratio in (None, ""):
        return DEFAULT_MAX_REJECTED_RATIO
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise IngestionError(errors.INVALID_OPTION, "max_rejected_ratio must be between 0 and 1.", status=400)
    return value


def _flag_parse(flag: bool | str | None) -> bool:
    if isinstance(flag, bool):
        return flag
    text = (flag or "").strip().lower()
    if text not in ("", "true", "false"):
        raise IngestionError(errors.INVALID_OPTION, "force must be true or false.", status=400)
    return text == "true"


def datasource_name_check(*, name: str) -> str:
    name = (name or "").strip() or settings.DEFAULT_DATASOURCE  # blank, like empty, means the default
    try:
        datasource_name_validator(name)
    except ValidationError as exc:
        raise IngestionError("invalid_datasource", exc.messages[0], status=400) from None
    return name


def safe_filename(name: str) -> str:
    """The last path component, reduced to safe characters: no traversal, no hidden tricks."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = get_valid_filename(base.replace("..", "_")) if base.strip(". ") else ""
    cleaned = cleaned.lstrip(".")[:120]
    return cleaned or "upload"


def raw_storage_key(*, datasource_name: str, task_id: uuid.UUID, filename: str, when: dt.datetime) -> str:
    return f"raw/{datasource_name}/{when:%Y}/{when:%m}/{task_id}/{safe_filename(filename)}"


def ingestion_duplicate_find(
    *,
    datasource_name: str,
    sha256: str,
    in_flight: bool = False,
    exclude: uuid.UUID | None = None,
    publishing: bool = False,
) -> IngestionTask | None:
    """The earliest task that published this exact file to the datasource; with `in_flight`,
    also one queued or running (a double-clicked upload would otherwise be loaded twice); with
    `publishing`, also one running its publishing stage."""
    statuses = [IngestionTask.Status.SUCCEEDED]
    if in_flight:
        statuses += [IngestionTask.Status.QUEUED, IngestionTask.Status.RUNNING]
    same_file = IngestionTask.objects.filter(datasource__name=datasource_name, sha256=sha256).exclude(pk=exclude)
    earlier = same_file.filter(status__in=statuses).order_by("created_at").first()
    if earlier is not None:
        return earlier
    # A task whose rows were switched in but which was not marked succeeded yet (it is finishing).
    published = Segment.objects.filter(datasource__name=datasource_name).values("upload_id")
    earlier = same_file.filter(pk__in=published).order_by("created_at").first()
    if earlier is not None or not publishing:
        return earlier
    return (
        same_file.filter(status=IngestionTask.Status.RUNNING, stage=IngestionTask.Stage.PUBLISHING)
        .order_by("created_at")
        .first()
    )


def ingestion_duplicate_refuse(
    *,
    datasource_name: str,
    sha256: str,
    exclude: uuid.UUID | None = None,
    in_flight: bool = True,
    publishing: bool = False,
    user: AbstractBaseUser | None = None,
    mode: str = IngestionTask.Mode.APPEND,
) -> None:
    """Raise `duplicate_upload` (409) when this exact file was published to the datasource, or
    (with `in_flight`) is being loaded into it by another task. The other task is named unless
    `user` may not see it (a branch-scoped user sees only their own uploads); the advice fits
    the `mode` that was sent."""
    earlier = ingestion_duplicate_find(
        datasource_name=datasource_name,
        sha256=sha256,
        in_flight=in_flight,
        exclude=exclude,
        publishing=publishing,
    )
    if earlier is None:
        return
    if user is None or ingestion_tasks_visible(user=user).filter(pk=earlier.pk).exists():
        by = f" by task {earlier.pk} ({earlier.original_filename}, {earlier.created_at:%Y-%m-%d %H:%M} UTC)"
    else:
        by = " by another user's upload"
    loading = earlier.status in (IngestionTask.Status.QUEUED, IngestionTask.Status.RUNNING)
    if loading and not Segment.objects.filter(upload_id=earlier.pk).exists():
        detail = (
            f"This exact file is already being loaded into '{datasource_name}'{by}. "
            "Wait for it, or send force=true to load it twice."
        )
    else:
        detail = f"This exact file was already published to '{datasource_name}'{by}. " + _force_advice(mode=mode)
    raise IngestionError(errors.DUPLICATE_UPLOAD, detail, status=409)


def _force_advice(*, mode: str) -> str:
    if mode == IngestionTask.Mode.REPLACE:
        return "Send force=true (with mode=replace, as now) to swap its days' rows for the file's again."
    return (
        "Send force=true to load it again: its rows are then added a second time; with mode=replace as well, "
        "its days' rows are swapped for the file's instead."
    )


def replace_permission_check(*, user: AbstractBaseUser | None, uploader: bool = False) -> None:
    """Only a user who sees every branch may replace: a replace swaps out every branch's rows
    of the file's days, which a branch-scoped uploader would delete unseen. `uploader`: `user`
    is the task's uploader, not the one asking (the message names them so)."""
    allowed = user_allowed_branches(user=user)
    if allowed is not None:
        whose = "the account that uploaded this file covers" if uploader else "your account covers"
        raise IngestionError(
            "permission_denied",
            f"Replacing swaps out every branch's rows of the file's days, and {whose} only "
            f"{', '.join(allowed)}: upload in append mode, or ask someone who sees every branch to replace.",
            status=403,
        )


def ingestion_upload_receive(
    *,
    local_path: Path,
    original_filename: str,
    sha256: str,
    size_bytes: int,
    datasource_name: str,
    options: UploadOptions,
    user: AbstractBaseUser | None,
    owned: bool = False,
) -> IngestionTask:
    """Check the file is one we can read, keep it raw in storage, create its task and queue it.

    `owned`: the file is an upload's temporary copy that the caller gives away, so local storage
    may move it into place instead of copying hundreds of megabytes. Refusals raise
    IngestionError and leave nothing behind.
    """
    from ingestion.readers import source_check

    datasource_name = datasource_name_check(name=datasource_name)
    if size_bytes == 0:
        raise IngestionError(errors.EMPTY_FILE, "The file is empty.")
    source_check(local_path, filename_hint=original_filename, sheet=options.sheet, header_row=options.header_row)
    if options.mode == IngestionTask.Mode.REPLACE:
        replace_permission_check(user=user)
    if not options.force:
        ingestion_tasks_reap()  # a task its worker left running is not "being loaded"
        ingestion_duplicate_refuse(datasource_name=datasource_name, sha256=sha256, user=user, mode=options.mode)
    task_id = uuid.uuid4()
    now = timezone.now()
    key = raw_storage_key(datasource_name=datasource_name, task_id=task_id, filename=original_filename, when=now)
    stored_key = key
    try:
        stored_key = _raw_file_store(key=key, local_path=local_path, owned=owned)
        return _task_create(
            task_id=task_id,
            datasource_name=datasource_name,
            stored_key=stored_key,
            original_filename=original_filename,
            size_bytes=size_bytes,
            sha256=sha256,
            options=options,
            user=user,
        )
    except BaseException:
        # A file no task points at would be kept forever and found by nothing (a save the disk
        # cut short leaves part of one); once the row exists (queueing runs after its commit and
        # may fail) the file is the task's.
        if not IngestionTask.objects.filter(pk=task_id).exists():
            with contextlib.suppress(OSError):  # a read-only storage refuses this too; the error raised says why
                default_storage.delete(stored_key)
        raise


def _raw_file_store(*, key: str, local_path: Path, owned: bool) -> str:
    """Keep the upload in storage as `key`; a disk that is full or read-only is a 507 refusal."""
    try:
        with local_path.open("rb") as handle:
            content = _MovableFile(handle, name=Path(key).name) if owned else File(handle, name=Path(key).name)
            return default_storage.save(key, content)
    except OSError as exc:
        refusal = disk_refusal(
            exc, when="while storing the raw file", outcome="Nothing was stored", then="send the file again"
        )
        if refusal is None:
            raise
        raise refusal from exc


def _task_create(
    *,
    task_id: uuid.UUID,
    datasource_name: str,
    stored_key: str,
    original_filename: str,
    size_bytes: int,
    sha256: str,
    options: UploadOptions,
    user: AbstractBaseUser | None,
) -> IngestionTask:
    datasource = datasource_get_or_create(name=datasource_name)
    with transaction.atomic():
        task = IngestionTask.objects.create(
            id=task_id,
            datasource=datasource,
            status=IngestionTask.Status.QUEUED,
            stage=IngestionTask.Stage.STORING_RAW,
            progress=5,
            message="Raw file stored; waiting for a worker.",
            original_filename=original_filename[:255],
            size_bytes=size_bytes,
            sha256=sha256,
            raw_key=stored_key,
            mode=options.mode,
            options=asdict(options),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        ingestion_task_enqueue(task=task)
    return task


class _MovableFile(File):
    """A file storage may take by renaming: FileSystemStorage moves anything that has a
    `temporary_file_path`, other storages read it as usual."""

    def temporary_file_path(self) -> str:
        return self.file.name


def ingestion_task_enqueue(*, task: IngestionTask) -> None:
    """Queue the background run once the task row is committed (never before it exists)."""
    task_id = str(task.pk)
    transaction.on_commit(lambda: _queue_or_fail(task_id=task_id))


def _queue_or_fail(*, task_id: str) -> None:
    """Hand the task to the broker; when the broker cannot take it, fail the task at once (a
    retry queues it again) rather than leave it `queued` for a run that never comes."""
    from ingestion.tasks import ingestion_task_queue

    try:
        ingestion_task_queue(task_id=task_id)
    except Exception as exc:
        logger.exception("task %s could not be queued", task_id)
        IngestionTask.objects.filter(pk=task_id, status=IngestionTask.Status.QUEUED).update(
            status=IngestionTask.Status.FAILED,
            error_code=errors.QUEUE_UNAVAILABLE,
            message=text_storable(
                f"The task could not be queued ({type(exc).__name__}: {str(exc)[:200]}). The raw file is kept: "
                "retry the task once the task queue is reachable again."
            ),
            finished_at=timezone.now(),
        )


def ingestion_task_retry(
    *, task: IngestionTask, overrides: dict | None = None, user: AbstractBaseUser | None = None
) -> IngestionTask:
    """Run a failed or cancelled task again from its stored raw file, as `user` asks.

    `overrides`: options to change, as an upload takes them (`date_format`, `mapping`, `force`…);
    every other option stays as the upload chose it. Invalid values raise `invalid_option` (400);
    a replace neither the user nor the task's uploader may do, `permission_denied` (403).
    """
    ingestion_tasks_reap()  # a task its worker left running can be retried
    with transaction.atomic():
        locked = IngestionTask.objects.select_for_update().get(pk=task.pk)
        if locked.status not in (IngestionTask.Status.FAILED, IngestionTask.Status.CANCELLED):
            raise IngestionError(
                "task_not_retryable",
                f"Only failed or cancelled tasks can be retried (this one is {locked.status}).",
                status=409,
            )
        if not default_storage.exists(locked.raw_key):
            raise IngestionError(errors.RAW_FILE_MISSING, raw_file_missing_detail(task=locked), status=409)
        switched_in = task_rows_switched_in(task=locked)
        if overrides:
            stored = {name: locked.options.get(name) for name in UPLOAD_OPTION_NAMES} | {"mode": locked.mode}
            options = upload_options_parse(**{**stored, **overrides})
            if switched_in:
                _published_options_keep(task=locked, published=upload_options_parse(**stored), asked=options)
            locked.options = asdict(options)
            locked.mode = options.mode
        if locked.mode == IngestionTask.Mode.REPLACE:
            replace_permission_check(user=user)
            replace_permission_check(user=locked.created_by, uploader=True)  # the run checks it too
        if not locked.options.get("force") and not switched_in:
            # The file may have been published (or queued) by another upload since this one failed.
            # Not when its own rows are in: the retry publishes nothing, whoever loaded the file since.
            ingestion_duplicate_refuse(
                datasource_name=locked.datasource.name,
                sha256=locked.sha256,
                exclude=locked.pk,
                user=user,
                mode=locked.mode,
            )
        locked.status = IngestionTask.Status.QUEUED
        locked.stage = IngestionTask.Stage.STORING_RAW
        locked.progress = 5
        locked.message = "Queued again from the stored raw file; waiting for a worker."
        locked.error_code = ""
        locked.cancel_requested = False
        locked.finished_at = None
        _attempt_results_clear(task=locked)
        locked.save()
        ingestion_task_enqueue(task=locked)
    return locked


def _published_options_keep(*, task: IngestionTask, published: UploadOptions, asked: UploadOptions) -> None:
    """Refuse other options for a task whose rows are switched in already: its retry only records
    that publish (the switch is not made twice), so the task would show options its rows were
    never read with, and its mapping would be saved for the datasource's later files."""
    changed = [name for name in UPLOAD_OPTION_NAMES if getattr(published, name) != getattr(asked, name)]
    if not changed:
        return
    raise IngestionError(
        errors.ROWS_ALREADY_PUBLISHED,
        f"This task's rows were already published, read with the options it was uploaded with "
        f"(mode={task.mode}); its worker stopped before recording that, and a retry only finishes recording "
        f"it, so it cannot change {', '.join(changed)}. Retry without options to finish it. To publish the file "
        "read differently, upload it again with mode=replace and force=true: its days' rows are then swapped "
        "for the new reading.",
        status=409,
    )


def ingestion_task_cancel(*, task: IngestionTask) -> IngestionTask:
    """A queued task is cancelled at once, and so is a running one whose worker is gone; a running
    one stops at its next checkpoint, or at publishing's switch at the latest. Once the switch has
    put its rows in, it is too late (409 `too_late_to_cancel`): the task can only succeed."""
    with transaction.atomic():
        locked = IngestionTask.objects.select_for_update().get(pk=task.pk)
        if locked.is_finished:
            raise IngestionError(
                "task_not_cancellable", f"The task has already finished ({locked.status}).", status=409
            )
        worker_gone = task_worker_gone(task=locked, now=timezone.now(), here=this_worker())
        if locked.status == IngestionTask.Status.RUNNING and task_rows_switched_in(task=locked):
            raise IngestionError(
                errors.TOO_LATE_TO_CANCEL,
                "Too late to cancel: publishing has already switched this file's rows in"
                + (
                    "; its worker stopped before recording that, so retry the task to finish it."
                    if worker_gone
                    else " and the task is finishing."
                ),
                status=409,
            )
        if locked.status == IngestionTask.Status.QUEUED:
            locked.status = IngestionTask.Status.CANCELLED
            locked.message = "Cancelled before it started. The raw file is kept; retry to run it."
            locked.finished_at = timezone.now()
        elif worker_gone:
            # Nobody is left to stop at a checkpoint: the cancel takes effect now.
            rows_note = _engine_rows_note(locked)
            locked.status = IngestionTask.Status.CANCELLED
            locked.message = (
                f"Cancelled. The worker running it had stopped (killed or crashed; {worker_gone}) "
                f"{_when_in_run(locked)}. Nothing was published; the raw file is kept: retry to run "
                f"it.{rows_note}{_stopped_counts_clear(locked)}"
            )
            locked.finished_at = timezone.now()
            if rows_note:
                transaction.on_commit(functools.partial(_engine_rows_remove_queue, task_id=str(locked.pk)))
        else:
            locked.cancel_requested = True
            locked.message = "Cancelling…"
        locked.save()
    return locked


# --- Running a task ---------------------------------------------------------------------

ProgressCallback = Callable[[IngestionTask], None]


def ingestion_task_claim(*, task_id: str) -> IngestionTask | None:
    """Mark a queued task running; None when it is not queued (a duplicate delivery runs nothing)."""
    with transaction.atomic():
        task = IngestionTask.objects.select_for_update().select_related("datasource").filter(pk=task_id).first()
        if task is None or task.status != IngestionTask.Status.QUEUED:
            return None
        task.status = IngestionTask.Status.RUNNING
        task.attempts += 1
        task.started_at = task.heartbeat_at = timezone.now()
        worker = this_worker()
        task.worker_host, task.worker_pid = worker.host, worker.pid
        _attempt_results_clear(task=task)
        task.save()
    return task


def _attempt_results_clear(*, task: IngestionTask) -> None:
    """What an earlier attempt found or produced must not show as the next one's: cleared when a
    retry is queued (a queued retry showed the failed run's counts) and again when a run starts
    (a redelivered or re-queued task). Its error report is deleted once the caller commits."""
    task.timings = {}
    task.errors = []
    task.notes = []
    task.rows_total = task.rows_valid = task.rows_rejected = None
    stale_report = task.error_report_key
    task.error_report_key = task.engine_task_id = ""
    task.detected_format = task.detected_encoding = task.detected_delimiter = task.detected_sheet = ""
    task.detected_header_row = None
    task.detected_date_format = ""
    if stale_report:
        transaction.on_commit(lambda: default_storage.delete(stale_report))


def ingestion_tasks_reap(*, now: dt.datetime | None = None) -> int:
    """Fail the running tasks whose worker is gone (killed, out of memory, a native library crash,
    a restart, django-q2's time limit): a worker killed outright writes nothing more, so the task
    stayed `running`, refusing cancel, retry and a new upload of its file. Failed, it shows what
    happened and can be retried. Run on a schedule and before the task reads and writes users
    make (status, list, retry, upload). Returns how many tasks it failed."""
    now = now or timezone.now()
    here = this_worker()
    reaped = 0
    for task in IngestionTask.objects.filter(status=IngestionTask.Status.RUNNING).only(*_LIVENESS_FIELDS):
        if task_worker_gone(task=task, now=now, here=here) is None:
            continue
        with transaction.atomic():
            locked = IngestionTask.objects.select_for_update().select_related("datasource").filter(pk=task.pk).first()
            reason = task_worker_gone(task=locked, now=now, here=here) if locked is not None else None
            if reason is None:
                continue  # it moved on meanwhile
            locked.status = IngestionTask.Status.FAILED
            locked.error_code = errors.WORKER_LOST
            rows_note = _engine_rows_note(locked)
            locked.message = (
                _worker_lost_message(task=locked, reason=reason) + rows_note + _stopped_counts_clear(locked)
            )
            locked.finished_at = timezone.now()
            locked.save()
            transaction.on_commit(functools.partial(_task_failed_send, task=locked))
            if rows_note:
                transaction.on_commit(functools.partial(_engine_rows_remove_queue, task_id=str(locked.pk)))
            reaped += 1
    if reaped:
        logger.warning("%d ingestion task(s) left running by a vanished worker marked failed", reaped)
    return reaped


_LIVENESS_FIELDS = ("pk", "status", "worker_host", "worker_pid", "heartbeat_at", "started_at")


def _stopped_counts_clear(task: IngestionTask) -> str:
    """`partial_counts_clear` for a task whose worker is gone: only its stage tells whether it was
    still counting. (Validating also spans the few steps after the last batch, whose counts are
    whole; they are cleared too, and still said in the message.)"""
    return partial_counts_clear(task=task) if task.stage == IngestionTask.Stage.VALIDATING else ""


def _worker_lost_message(*, task: IngestionTask, reason: str) -> str:
    if task_rows_switched_in(task=task):
        return (
            f"The worker running this task stopped (killed or crashed) after its rows were published ({reason}). "
            "Retry the task to finish it; nothing is counted twice."
        )
    return (
        f"The worker running this task stopped (killed or crashed) {_when_in_run(task)} "
        f"({task.progress}%; {reason}). Nothing was published; the raw file is kept: retry the task."
    )


def _when_in_run(task: IngestionTask) -> str:
    """When in its run the task stopped, as a phrase. A run still at `storing_raw` had not begun
    reading: the raw file was stored during the upload, so "while storing raw" misled."""
    if task.stage == IngestionTask.Stage.STORING_RAW:
        return "before it began reading the file"
    return f"while {task.get_stage_display().lower()}"


def partial_counts_clear(*, task: IngestionTask) -> str:
    """Clear the row counts of a task stopped while validating, and say them in words instead: they
    are of the rows checked so far, which the status, the page and the admin would show as the
    file's totals (a cancel after one batch of 150,000 showed rows_total 150000)."""
    if task.rows_total is None:
        return ""
    checked, rejected = task.rows_total, task.rows_rejected or 0
    task.rows_total = task.rows_valid = task.rows_rejected = None
    return f" It stopped after checking {counted(checked, 'row')} of the file ({rejected:,} rejected so far)."


def task_rows_switched_in(*, task: IngestionTask) -> bool:
    """Whether the task's publish switched its rows in: past that point it can only succeed."""
    return Segment.objects.filter(datasource_id=task.datasource_id, upload_id=task.pk).exists()


def _task_failed_send(*, task: IngestionTask) -> None:
    task_failed.send(sender=IngestionTask, datasource_name=task.datasource.name, task_id=str(task.pk))


def _engine_rows_note(task: IngestionTask) -> str:
    """A task that stopped while publishing, once it had given an engine that loads rows before
    the catalogue switch (Druid) a task (`engine_task_id`), may have left rows there that nothing
    published: they are removed (the caller queues it, once the task's outcome is saved), and the
    message says so."""
    engine = get_engine()
    if task.stage != IngestionTask.Stage.PUBLISHING or not task.engine_task_id or not engine.loads_before_switch:
        return ""
    if task_rows_switched_in(task=task):
        return ""  # published: its rows are the catalogue's
    return f" Any rows {engine.title} had loaded for it are being removed."


def _engine_rows_remove_queue(*, task_id: str) -> None:
    from ingestion.tasks import ingestion_task_engine_rows_remove_queue

    try:
        ingestion_task_engine_rows_remove_queue(task_id=task_id)
    except Exception:
        # The next sync (manage.py druid_sync) finds and removes them; the task's outcome stands.
        logger.exception("task %s: removing the rows its engine loaded could not be queued", task_id)


def ingestion_task_engine_rows_remove(*, task_id: str) -> bool:
    """Remove the rows the analytics engine loaded for a task whose publish never switched in;
    whether there were any. A task retried meanwhile is left alone: its new run overwrites them."""
    task = IngestionTask.objects.select_related("datasource").filter(pk=task_id).first()
    if task is None or task.status not in (IngestionTask.Status.FAILED, IngestionTask.Status.CANCELLED):
        return False
    removed = datasource_publish_undo(datasource_name=task.datasource.name, upload_id=task.pk)
    if removed:
        logger.info("task %s: the rows its engine had loaded without a switch were removed", task_id)
    return removed


def raw_local_path(*, task: IngestionTask, workdir: Path) -> Path:
    """The raw file on local disk: the worker may run on another machine than the web process."""
    if not default_storage.exists(task.raw_key):
        raise IngestionError(errors.RAW_FILE_MISSING, f"Nothing was published. {raw_file_missing_detail(task=task)}")
    if isinstance(default_storage, FileSystemStorage):
        return Path(default_storage.path(task.raw_key))
    local = workdir / ("raw-" + safe_filename(task.original_filename))
    with default_storage.open(task.raw_key, "rb") as source, local.open("wb") as target:
        while chunk := source.read(8 * 1024 * 1024):
            target.write(chunk)
    return local


def raw_file_missing_detail(*, task: IngestionTask) -> str:
    """Why a task whose raw file left storage cannot run: named by its storage key, never by a
    server path."""
    return (
        f"The task's raw file is no longer in storage ('{task.raw_key}': moved or deleted), so a retry cannot "
        "succeed: upload the file again."
    )


def text_storable(value: object) -> object:
    """Text as the task row can store it: PostgreSQL refuses a NUL character (shown as ␀) and
    a lone surrogate (shown as �); a file's sheet name or cell can hold either."""
    if not isinstance(value, str):
        return value
    return value.replace("\x00", "\u2400").encode("utf-8", "replace").decode("utf-8")


class TaskCancelled(Exception):
    pass


class TaskAbandoned(Exception):
    """The task is no longer this run's: it was failed as `worker_lost` (this worker looked gone),
    cancelled as such, or queued again and claimed by another run. This run stops writing."""


class TaskProgress:
    """Writes stage, percent and message to the task row: the UI, API and admin read the same truth.

    Every write is fenced: it applies only while the task is running as this run's attempt, so a
    run the reaper gave up on (and maybe a retry took over) cannot overwrite what the task shows.
    """

    def __init__(self, task: IngestionTask, on_progress: ProgressCallback | None = None) -> None:
        self.task = task
        self.on_progress = on_progress
        self._stage_started = time.perf_counter()
        # Set while a validation pass counts the file's rows batch by batch: until it ends, the
        # counts on the row are of the rows checked so far, not the file's.
        self.rows_partial = False

    def _this_run(self):
        return IngestionTask.objects.filter(
            pk=self.task.pk, status=IngestionTask.Status.RUNNING, attempts=self.task.attempts
        )

    def stage(self, stage: str, progress: int, message: str) -> None:
        self._close_stage()
        self.task.stage = stage
        self.update(progress, message)

    def update(self, progress: int, message: str, **fields) -> None:
        self.task.progress = max(self.task.progress, min(progress, 100))
        self.task.message = text_storable(message)
        self.task.heartbeat_at = timezone.now()
        for name, value in fields.items():
            setattr(self.task, name, value)
        changed = ["stage", "progress", "message", "timings", "heartbeat_at", *fields]
        if not self._this_run().update(**{name: getattr(self.task, name) for name in changed}):
            raise TaskAbandoned
        if self.on_progress is not None:
            self.on_progress(self.task)

    def check_cancelled(self, *, lock: bool = False) -> None:
        """Raise TaskCancelled when a cancel was asked, TaskAbandoned when the task is no longer
        this run's. `lock`: hold the task row until the caller's transaction ends, so that no
        cancel is accepted in between (publishing's switch)."""
        run = self._this_run().select_for_update() if lock else self._this_run()
        cancel_requested = run.values_list("cancel_requested", flat=True).first()
        if cancel_requested is None:
            raise TaskAbandoned
        if cancel_requested:
            raise TaskCancelled

    def _close_stage(self) -> None:
        now = time.perf_counter()
        current = str(self.task.stage)
        self.task.timings[current] = round(self.task.timings.get(current, 0.0) + now - self._stage_started, 3)
        self._stage_started = now

    FINISH_FIELDS = ("status", "stage", "message", "error_code", "finished_at", "progress", "timings")

    def finish(self, status: str, message: str, *, error_code: str = "", progress: int | None = None) -> None:
        self._close_stage()
        if self.rows_partial and status != IngestionTask.Status.SUCCEEDED:
            message += partial_counts_clear(task=self.task)
        self.task.status = status
        self.task.message = text_storable(message)
        self.task.error_code = error_code
        self.task.finished_at = timezone.now()
        if progress is not None:
            self.task.progress = progress
        if status == IngestionTask.Status.SUCCEEDED:
            self.task.stage = IngestionTask.Stage.DONE
        try:
            self._save_if_this_run()
        except DatabaseError:
            if status == IngestionTask.Status.SUCCEEDED:
                raise
            # A value the database refused (the error being reported, maybe) is still on the row
            # object: record the outcome without it, or the task would stay `running`.
            logger.exception("task %s: saving its outcome failed; saving the status alone", self.task.pk)
            self._save_if_this_run(fields=self.FINISH_FIELDS)
        if status == IngestionTask.Status.FAILED:
            _task_failed_send(task=self.task)
        if self.on_progress is not None:
            self.on_progress(self.task)

    def _save_if_this_run(self, fields: tuple[str, ...] | None = None) -> None:
        with transaction.atomic():
            if not self._this_run().select_for_update().exists():
                raise TaskAbandoned
            self.task.save(update_fields=fields)


def ingestion_task_run(*, task_id: str, on_progress: ProgressCallback | None = None) -> IngestionTask | None:
    """Run one task end to end; safe to call twice (the second call finds it not queued)."""
    task = ingestion_task_claim(task_id=task_id)
    if task is None:
        logger.info("task %s is not queued; nothing to do", task_id)
        return IngestionTask.objects.filter(pk=task_id).first()
    try:
        with TaskHeartbeat(task_id=task.pk, attempt=task.attempts):
            _task_run_claimed(task=task, progress=TaskProgress(task, on_progress))
    except TaskAbandoned:
        logger.warning("task %s is no longer this run's (reaped, cancelled or run again); stopped", task_id)
        return IngestionTask.objects.filter(pk=task_id).first()
    return task


def _task_run_claimed(*, task: IngestionTask, progress: TaskProgress) -> None:
    from ingestion.pipeline import pipeline_run
    from ingestion.readers import panics_as_errors

    rows_note = ""
    try:
        with panics_as_errors():
            pipeline_run(task=task, progress=progress)
    except TaskAbandoned:
        raise
    except TaskCancelled:
        rows_note = _engine_rows_note(task)
        progress.finish(
            IngestionTask.Status.CANCELLED, f"Cancelled. Nothing was published; the raw file is kept.{rows_note}"
        )
    except IngestionError as exc:
        rows_note = _engine_rows_note(task)
        progress.finish(IngestionTask.Status.FAILED, exc.detail + rows_note, error_code=exc.code)
    except Exception as exc:
        rows_note = _engine_rows_note(task)
        when = _when_in_run(task)
        refusal = disk_refusal(
            exc, when=when, outcome="Nothing was published; the raw file is kept", then="retry the task"
        )
        if refusal is not None:
            logger.error("task %s: the disk refused a write %s: %s", task.pk, when, exc)
            progress.finish(IngestionTask.Status.FAILED, refusal.detail + rows_note, error_code=refusal.code)
        else:
            logger.exception("task %s failed unexpectedly during %s", task.pk, task.stage)
            progress.finish(
                IngestionTask.Status.FAILED,
                f"Unexpected error {when} ({type(exc).__name__}: {str(exc)[:300]}). "
                f"Nothing was published; the raw file is kept, so the task can be retried.{rows_note}",
                error_code=errors.INTERNAL_ERROR,
            )
    if rows_note:
        _engine_rows_remove_queue(task_id=str(task.pk))
