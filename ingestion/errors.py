"""Refusals of an upload: one stable code each, a sentence a retail user can act on."""

import errno
import os
import re


class IngestionError(Exception):
    """The file (or its options) cannot be ingested as given. Nothing is published."""

    def __init__(self, code: str, detail: str, *, status: int = 422, choices: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        # Option values that would settle it (ambiguous dates: the date formats), for a page to offer.
        self.choices = choices


# Stable codes, shared by the API, the task row and the CLI.
UNSUPPORTED_FORMAT = "unsupported_format"  # 415
EMPTY_FILE = "empty_file"  # 422
HEADER_ONLY = "header_only"  # 422
UNDECODABLE_TEXT = "undecodable_text"  # 422
UNSAFE_ARCHIVE = "unsafe_archive"  # 415 (zip bomb, encrypted or broken .xlsx, a sheet too large to hold)
SHEET_NOT_FOUND = "sheet_not_found"  # 422
HEADER_ROW_NOT_FOUND = "header_row_not_found"  # 422 (the header_row option names an empty or missing row)
FILE_TOO_LARGE = "file_too_large"  # 413
TOO_MANY_FILES = "too_many_files"  # 400 (more file parts in one request than DATA_UPLOAD_MAX_NUMBER_FILES)
MISSING_REQUIRED_COLUMN = "missing_required_column"  # 422
INVALID_MAPPING = "invalid_mapping"  # 422 (a field that does not exist: refused with the request)
AMBIGUOUS_DATES = "ambiguous_dates"  # 422
AMBIGUOUS_COLUMNS = "ambiguous_columns"  # 422 (a field would read one of several columns with the same header)
INVALID_DATE_FORMAT = "invalid_date_format"  # 422 (not strftime, or no day, month and year: with the request)
TOO_MANY_REJECTED = "too_many_rejected_rows"  # 422
MIXED_CURRENCIES = "mixed_currencies"  # 422 (amounts written in more than one currency: their sums mean nothing)
FORMULAS_WITHOUT_VALUES = "formulas_without_values"  # 422 (an .xlsx column of formulas never computed)
DUPLICATE_UPLOAD = "duplicate_upload"  # 409
INVALID_OPTION = "invalid_option"  # 400
# Refusals of an action on a task.
TOO_LATE_TO_CANCEL = "too_late_to_cancel"  # 409: publishing switched the rows in; the task can only succeed
# 409: a retry of a task whose rows were switched in cannot change the options they were read with
ROWS_ALREADY_PUBLISHED = "rows_already_published"
# 409 for a retry, a task's failure when it runs: the task's raw file left storage, so it cannot run again
RAW_FILE_MISSING = "raw_file_missing"
# A task's own failures, not a refusal of the file (no HTTP status: they end a task).
INTERNAL_ERROR = "internal_error"  # an unexpected error while running; the task can be retried
QUEUE_UNAVAILABLE = "queue_unavailable"  # the task queue (broker) refused the task; retry once it is back
WORKER_LOST = "worker_lost"  # the worker stopped (time limit, memory, crash) and left the task running
# The server's disk refused a write: 507 for an upload (nothing is stored), a task's failure while it
# runs (nothing is published). Not the file's fault: the same file succeeds once there is room.
STORAGE_FULL = "storage_full"  # out of space (upload folder, storage, the worker's work folder)
STORAGE_UNWRITABLE = "storage_unwritable"  # a read-only file system


# Polars and DuckDB put the system's error in their message, not in an errno: "(os error 28)".
_ERRNO_IN_TEXT = re.compile(r"(?:os error|errno) (\d+)", re.IGNORECASE)
_DISK_ERRORS = {
    errno.ENOSPC: (STORAGE_FULL, "ran out of disk space"),
    errno.EDQUOT: (STORAGE_FULL, "ran out of disk space (its disk quota is used up)"),
    errno.EROFS: (STORAGE_UNWRITABLE, "cannot write to its disk (a read-only file system)"),
}


def _disk_errno(exc: BaseException) -> int | None:
    """The errno of a disk refusing a write, in `exc` or in what caused it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        numbers = [current.errno] if isinstance(current, OSError) and current.errno else []
        text = str(current)
        numbers += [int(found) for found in _ERRNO_IN_TEXT.findall(text)]
        numbers += [number for number in _DISK_ERRORS if os.strerror(number) in text]
        for number in numbers:
            if number in _DISK_ERRORS:
                return number
        current = current.__cause__ or current.__context__
    return None


def disk_refusal(exc: BaseException, *, when: str, outcome: str, then: str) -> IngestionError | None:
    """`exc` as a `storage_full` / `storage_unwritable` error (507) when the server's disk refused
    a write, else None. `when`: what the server was doing ("while storing the raw file"); `outcome`:
    what that left ("Nothing was stored"); `then`: what to do once the disk is fixed."""
    number = _disk_errno(exc)
    if number is None:
        return None
    code, what = _DISK_ERRORS[number]
    fix = "free space" if code == STORAGE_FULL else "make it writable"
    return IngestionError(
        code,
        f"The server {what} {when}. {outcome}; ask the administrator to {fix}, then {then}.",
        status=507,
    )
