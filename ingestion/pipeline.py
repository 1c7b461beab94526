"""The stages of one ingestion task: read → map → validate → publish.

Each stage writes its progress to the task row. Nothing is published until every batch
has been validated, and publishing is one atomic switch, so a failure anywhere leaves the
dashboards as they were and the raw file where it was.
"""

import contextlib
import csv
import ctypes
import datetime as dt
import functools
import gc
import itertools
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from accounts.selectors import user_allowed_branches
from analytics.engines import EngineError
from analytics.models import Datasource
from analytics.rollups import SharedInvoices
from analytics.services import PublishRequest, datasource_publish
from ingestion import errors
from ingestion.dates import DateChoice, date_format_choose_counted, date_value_counts, date_value_counts_merge
from ingestion.errors import IngestionError
from ingestion.mapping import ColumnMapping as ResolvedMapping
from ingestion.mapping import mapping_drift, mapping_resolve
from ingestion.models import ColumnMapping, IngestionTask
from ingestion.overlap import BackgroundConsumer, prefetched
from ingestion.readers import (
    DetectedSource,
    excel_sheets_shared,
    source_column_parts,
    source_detect,
    source_read_batches,
)
from ingestion.services import (
    TaskProgress,
    ingestion_duplicate_refuse,
    raw_local_path,
    replace_permission_check,
    text_storable,
)
from ingestion.transform import TransformPlan, batch_transform
from sales_analytics.csvsafe import neutralize_cell
from sales_analytics.plural import counted

FIRST_ERRORS_KEPT = 20
NO_DATA_ROWS = "The file has a header but no data rows."
# Parts of the date column (a CSV block or a batch each) that choose the format before validating.
DATE_SAMPLE_PARTS = 2
ROW_ESTIMATE_SAMPLE_BYTES = 4 << 20
ERROR_REPORT_COLUMNS = ("row_number", "column", "value", "reason")
Stage = IngestionTask.Stage


def pipeline_run(*, task: IngestionTask, progress: TaskProgress) -> None:
    with tempfile.TemporaryDirectory(prefix=f"ingest-{task.pk}-") as workdir:
        _run_in(task=task, progress=progress, workdir=Path(workdir))


def _run_in(*, task: IngestionTask, progress: TaskProgress, workdir: Path) -> None:
    # Detection, the date column and the batches read one parsed Excel sheet; it is released
    # before publishing.
    with excel_sheets_shared():
        detected, mapping, drift, outcome = _read_and_validate(task=task, progress=progress, workdir=workdir)
    memory_release()
    _publish(task=task, progress=progress, detected=detected, mapping=mapping, drift=drift, outcome=outcome)


def _read_and_validate(
    *, task: IngestionTask, progress: TaskProgress, workdir: Path
) -> tuple[DetectedSource, ResolvedMapping, list[str], "ValidationOutcome"]:
    options = task.options
    if task.mode == IngestionTask.Mode.REPLACE:
        replace_permission_check(user=task.created_by)  # also when a retry switched to replace
    progress.stage(Stage.READING, 10, "Reading the file and detecting its format.")
    raw_path = raw_local_path(task=task, workdir=workdir)
    detected = source_detect(
        raw_path, filename_hint=task.original_filename, sheet=options.get("sheet"), header_row=options.get("header_row")
    )
    progress.update(15, _describe(detected), **_detected_fields(detected))
    progress.check_cancelled()

    progress.stage(Stage.MAPPING, 20, "Matching columns to the sales schema.")
    saved = ColumnMapping.objects.filter(datasource=task.datasource).first()
    mapping = mapping_resolve(
        columns=detected.columns, explicit=options.get("mapping"), saved=saved.mapping if saved else None
    )
    drift = mapping_drift(saved=saved.mapping if saved else None, current=mapping.fields)
    explicit_format = options.get("date_format")
    date_choice = _date_format_first_choice(raw_path, detected, mapping, explicit=explicit_format)
    plan = TransformPlan.from_mapping(
        mapping=mapping,
        date_format=date_choice.format,
        decimal_comma=detected.decimal_comma,
        branches=user_allowed_branches(user=task.created_by),
    )
    progress.update(
        25,
        "Columns matched" + (f"; {' '.join(drift)}" if drift else "."),
        applied_mapping=mapping.fields,
        detected_date_format=date_choice.format,
        notes=drift,
    )
    progress.check_cancelled()

    progress.stage(Stage.VALIDATING, 25, "Validating rows.")
    outcome = _validate_all(
        progress=progress,
        raw_path=raw_path,
        detected=detected,
        plan=plan,
        workdir=workdir,
        count_dates=explicit_format is None,
    )
    if explicit_format is None:
        # The format came from the first rows; the whole column decides, as if counted first.
        final = date_format_choose_counted(outcome.date_counts)
        if final.format != plan.date_format:
            progress.update(
                25,
                f"The whole date column reads best as {final.format}, not {plan.date_format} as its first rows "
                "did; validating again.",
                detected_date_format=final.format,
            )
            plan = replace(plan, date_format=final.format)
            outcome = _validate_all(progress=progress, raw_path=raw_path, detected=detected, plan=plan, workdir=workdir)
    if outcome.rows_rejected:
        task.error_report_key = _store_report(task=task, report_path=outcome.report_path)
        task.save(update_fields=["error_report_key"])
    _policy_check(task=task, outcome=outcome)
    progress.check_cancelled()
    return detected, mapping, drift, outcome


def _publish(
    *,
    task: IngestionTask,
    progress: TaskProgress,
    detected: DetectedSource,
    mapping: ResolvedMapping,
    drift: list[str],
    outcome: "ValidationOutcome",
) -> None:
    if not task.options.get("force"):
        _publishing_claim(task=task)  # before an engine that loads rows itself (Druid) has loaded them
    progress.stage(Stage.PUBLISHING, 90, f"Publishing {counted(outcome.rows_valid, 'row')}.")
    try:
        published = datasource_publish(
            request=PublishRequest(
                datasource_name=task.datasource.name,
                upload_id=task.pk,
                upload_name=task.original_filename,
                uploaded_at=task.created_at,
                curated_path=outcome.curated_path,
                rows=outcome.rows_valid,
                interval_start=outcome.interval_start,
                interval_end=outcome.interval_end,
                replace=task.mode == IngestionTask.Mode.REPLACE,
                uploaded_by_id=task.created_by_id,
                before_switch=functools.partial(_switch_allowed, task=task, progress=progress),
            ),
            check_cancelled=progress.check_cancelled,
            on_engine_progress=lambda engine_task_id, message: progress.update(
                92, message, engine_task_id=engine_task_id
            ),
        )
    except EngineError as exc:
        raise IngestionError(
            exc.code, f"{exc.detail} Nothing was published; the raw file is kept, so the task can be retried."
        ) from exc
    ColumnMapping.objects.update_or_create(
        datasource=task.datasource, defaults={"mapping": mapping.fields, "source_columns": detected.columns}
    )
    task.engine_task_id = published.engine_task_id or f"embedded:{task.datasource.name}:v{published.data_version}"
    rejected_note = f", {outcome.rows_rejected:,} rejected (see the error report)" if outcome.rows_rejected else ""
    # A replace swaps every row of the file's date range, days the file has no rows for included.
    replaced_note = (
        f"; it replaced the {counted(published.rows_replaced, 'row')} from {outcome.interval_start} to "
        f"{outcome.interval_end} (every day of that range, also days without rows in this file)"
        if task.mode == IngestionTask.Mode.REPLACE and not published.already_published
        else ""
    )
    drift_note = f" Schema drift: {' '.join(drift)}" if drift else ""
    twice = _counted_twice_warning(published.shared_invoices, datasource=task.datasource.name)
    if twice:
        task.notes = [*task.notes, twice]
        task.save(update_fields=["notes"])
    progress.finish(
        IngestionTask.Status.SUCCEEDED,
        f"Published {counted(outcome.rows_valid, 'row')}{rejected_note} as data version {published.data_version} "
        f"of '{task.datasource.name}' ({outcome.interval_start} to {outcome.interval_end}){replaced_note}."
        f"{drift_note}{' ' + twice if twice else ''}",
        progress=100,
    )


def _counted_twice_warning(shared: SharedInvoices, *, datasource: str) -> str:
    """A warning when an appended file's invoices were published before: the same data sent again
    (its bytes differ, say line endings, so it is not a duplicate file) now counts twice. An
    invoice split across two files is legitimate, hence a warning, not a refusal."""
    if not shared:
        return ""
    lines = f"{shared.lines:,} of these lines belong" if shared.lines != 1 else "1 of these lines belongs"
    return (
        f"Warning: {lines} to {counted(shared.invoices, 'invoice')} already published in "
        f"'{datasource}'. If this data was sent before, it now counts twice: send it with mode=replace to swap "
        "its days instead."
    )


def _switch_allowed(*, task: IngestionTask, progress: TaskProgress) -> None:
    """Called in publishing's switch transaction: the last moment a cancel takes effect. The task
    row stays locked until the switch commits, so a cancel either comes first and stops the switch,
    or comes after and finds the rows switched in (409 too_late_to_cancel), never "Cancelling…"
    followed by a silent success."""
    progress.check_cancelled(lock=True)
    if not task.options.get("force"):
        _duplicate_refuse(task=task)


def _publishing_claim(*, task: IngestionTask) -> None:
    """Enter the publishing stage unless this file was published meanwhile or a twin is publishing
    it: checked and marked under the datasource's lock, so of twins arriving together exactly one
    publishes. An engine that loads rows before the switch (Druid) would otherwise load both."""
    with transaction.atomic():
        Datasource.objects.select_for_update().get(pk=task.datasource_id)
        _duplicate_refuse(task=task, publishing=True)
        IngestionTask.objects.filter(pk=task.pk).update(stage=Stage.PUBLISHING)


def _duplicate_refuse(*, task: IngestionTask, publishing: bool = False) -> None:
    """The receiving request checked for this file already, but since then another task may have
    published it (two uploads sent at once, or a retry after the same file was sent again)."""
    try:
        ingestion_duplicate_refuse(
            datasource_name=task.datasource.name,
            sha256=task.sha256,
            exclude=task.pk,
            in_flight=False,
            publishing=publishing,
            user=task.created_by,
            mode=task.mode,
        )
    except IngestionError as exc:
        raise IngestionError(exc.code, f"{exc.detail} Nothing was published; the raw file is kept.") from None


def _date_format_choose(
    path: Path, detected: DetectedSource, mapping: ResolvedMapping, *, explicit: str | None
) -> DateChoice:
    """The date column's format, from its distinct values counted block by block."""
    parts = source_column_parts(path, detected, mapping.fields["date"])
    counts = date_value_counts_merge(date_value_counts(part) for part in parts)
    return date_format_choose_counted(counts, explicit=explicit)


def _date_format_first_choice(
    path: Path, detected: DetectedSource, mapping: ResolvedMapping, *, explicit: str | None
) -> DateChoice:
    """The date format to validate with: an explicit one, else the one the first rows read best.

    Reading the whole date column first cost a full extra pass over the file; instead the
    validation pass counts the column's values and the whole column confirms (or corrects, with
    a second pass) this choice. When the first rows cannot decide (all empty, nothing parses,
    ambiguous so far) the whole column is counted first, as before.
    """
    parts = source_column_parts(path, detected, mapping.fields["date"])
    try:
        sample = list(itertools.islice(parts, DATE_SAMPLE_PARTS))
    finally:
        parts.close()
    try:
        return date_format_choose_counted(
            date_value_counts_merge(date_value_counts(part) for part in sample), explicit=explicit
        )
    except IngestionError:
        if explicit is not None:
            raise
        return _date_format_choose(path, detected, mapping, explicit=None)


def memory_release() -> None:
    """Hand the memory validation freed back to the system before publishing's DuckDB needs it:
    Python's cycles, Arrow's pool and glibc's heap keep freed memory for reuse otherwise, and the
    worker's peak is validation's leftovers plus DuckDB's limit."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _describe(detected: DetectedSource) -> str:
    parts = [f"{detected.format.upper()} file"]
    if detected.encoding:
        parts.append(f"encoding {detected.encoding}")
    if detected.delimiter:
        parts.append(f"delimiter {detected.delimiter!r}")
    if detected.decimal_comma:
        parts.append("decimal comma")
    if detected.sheet:
        parts.append(f"sheet {detected.sheet!r}")
    if detected.header_row is not None:
        parts.append(f"header on row {detected.header_row}")
    parts.append(f"{len(detected.columns)} columns")
    return "Detected " + ", ".join(parts) + "."


def _detected_fields(detected: DetectedSource) -> dict:
    return {
        "detected_format": detected.format,
        "detected_encoding": detected.encoding or "",
        "detected_delimiter": detected.delimiter or "",
        "detected_sheet": (detected.sheet or "")[:255],  # the column's size; a forged workbook's name can be longer
        "detected_header_row": detected.header_row,
    }


@dataclass
class ValidationOutcome:
    curated_path: Path
    report_path: Path
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_total: int = 0
    interval_start: dt.date | None = None
    interval_end: dt.date | None = None
    first_errors: list[dict] = field(default_factory=list)
    # Distinct values of the date column with their row counts (dates.date_value_counts).
    date_counts: pl.DataFrame = field(default_factory=lambda: date_value_counts_merge([]))


def _validate_all(
    *,
    progress: TaskProgress,
    raw_path: Path,
    detected: DetectedSource,
    plan: TransformPlan,
    workdir: Path,
    count_dates: bool = False,
) -> ValidationOutcome:
    """Every batch is transformed and validated; valid rows stream into one curated Parquet file.

    The next batch is read and the previous one written in threads while this one is validated.
    `count_dates`: also count the date column's values (`outcome.date_counts`).
    """
    outcome = ValidationOutcome(curated_path=workdir / "curated.parquet", report_path=workdir / "errors.csv")
    rejected_rows: set[int] = set()
    estimated_rows = _estimate_rows(raw_path, detected)
    curated = _CuratedWriter(outcome.curated_path)
    sink: BackgroundConsumer[pa.Table] = BackgroundConsumer(curated.write, name="ingest-write")
    batches = prefetched(
        lambda: source_read_batches(
            raw_path, detected, batch_rows=settings.INGEST_BATCH_ROWS, typed=plan.typed_columns()
        )
    )
    try:
        # utf-8-sig: a BOM, as every CSV export has (sales_analytics.csvsafe).
        with outcome.report_path.open("w", newline="", encoding="utf-8-sig") as report_file:
            report = csv.writer(report_file)
            report.writerow(ERROR_REPORT_COLUMNS)
            date_source = plan.mapping.fields["date"]
            date_counts: list[pl.DataFrame] = []
            for batch in batches:
                if count_dates:
                    date_counts.append(date_value_counts(batch[date_source]))
                result = batch_transform(batch, plan)
                outcome.rows_total += batch.height
                _report_rejected(report=report, rejected=result.rejected, outcome=outcome, seen=rejected_rows)
                if result.valid.height:
                    sink.put(result.valid.to_arrow())
                    _extend_interval(outcome=outcome, dates=result.valid["date"])
                outcome.rows_valid += result.valid.height
                percent = 25 + int(60 * min(outcome.rows_total / max(estimated_rows, outcome.rows_total, 1), 1.0))
                progress.update(
                    percent,
                    f"Validated {counted(outcome.rows_total, 'row')} ({outcome.rows_rejected:,} rejected).",
                    rows_total=outcome.rows_total,
                    rows_valid=outcome.rows_valid,
                    rows_rejected=outcome.rows_rejected,
                    errors=outcome.first_errors,
                )
                progress.check_cancelled()
    except BaseException:
        batches.close()
        sink.close(raise_failure=False)
        with contextlib.suppress(Exception):  # the error being raised says more than this one
            curated.close()
        raise
    try:
        sink.close()  # raises the writer's error, if it had one
    finally:
        curated.close()
    outcome.date_counts = date_value_counts_merge(date_counts)
    return outcome


class _CuratedWriter:
    """Valid rows appended to one Parquet file; its schema is the first batch's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            # Default statistics and dictionaries on purpose: writing is cheaper without them for
            # amounts and invoice ids, but DuckDB then aggregates those files visibly slower.
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table.cast(self._writer.schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _report_rejected(*, report, rejected: pl.DataFrame, outcome: ValidationOutcome, seen: set[int]) -> None:
    for row in rejected.iter_rows(named=True):
        report.writerow([neutralize_cell(row[name]) for name in ERROR_REPORT_COLUMNS])
        if len(outcome.first_errors) < FIRST_ERRORS_KEPT:
            outcome.first_errors.append({name: text_storable(row[name]) for name in ERROR_REPORT_COLUMNS})
    # A row with several problems is one rejected row.
    new_rows = set(rejected["row_number"].to_list()) - seen if rejected.height else set()
    seen.update(new_rows)
    outcome.rows_rejected += len(new_rows)


def _extend_interval(*, outcome: ValidationOutcome, dates: pl.Series) -> None:
    low, high = dates.min(), dates.max()
    outcome.interval_start = low if outcome.interval_start is None else min(outcome.interval_start, low)
    outcome.interval_end = high if outcome.interval_end is None else max(outcome.interval_end, high)


def _estimate_rows(raw_path: Path, detected: DetectedSource) -> int:
    """A cheap row estimate so progress moves evenly; exactness is not needed."""
    if detected.format == "parquet":
        return pq.ParquetFile(raw_path).metadata.num_rows
    if detected.format == "csv":
        # Scaled from the first megabytes rather than counted: counting read the whole file
        # once more just for the progress bar.
        newline = b"\n\x00" if (detected.encoding or "").startswith("utf-16-le") else b"\n"
        size = raw_path.stat().st_size
        with raw_path.open("rb") as handle:
            sample = handle.read(ROW_ESTIMATE_SAMPLE_BYTES)
        count = sample.count(newline)
        if len(sample) < size:
            count = round(count * size / max(len(sample), 1))
        return max(count - (detected.header_row or 1) + 1, 1)
    return 0


def _store_report(*, task: IngestionTask, report_path: Path) -> str:
    key = f"reports/{task.datasource.name}/{task.pk}/errors-attempt{task.attempts}.csv"
    with report_path.open("rb") as handle:
        return default_storage.save(key, File(handle, name=Path(key).name))


def _policy_check(*, task: IngestionTask, outcome: ValidationOutcome) -> None:
    """Refuse the whole file when nothing is valid or too much was rejected."""
    if outcome.rows_total == 0:
        raise IngestionError(errors.HEADER_ONLY, NO_DATA_ROWS)
    limit = float(task.options.get("max_rejected_ratio", 0.25))
    ratio = outcome.rows_rejected / outcome.rows_total
    if outcome.rows_valid == 0 or ratio > limit:
        raise IngestionError(
            errors.TOO_MANY_REJECTED,
            f"{outcome.rows_rejected:,} of {counted(outcome.rows_total, 'row')} ({ratio:.1%}) "
            f"{'was' if outcome.rows_rejected == 1 else 'were'} rejected, more than the "
            f"allowed {limit:.0%}. Nothing was published; download the error report to see why.",
        )


PREVIEW_ROWS_CHECKED = 5_000


def ingestion_preview(
    *, local_path: Path, original_filename: str, datasource, options: dict, branches: tuple[str, ...] | None = None
) -> dict:
    """What an upload would do, without storing or publishing anything.

    Format problems raise (415/422); mapping and date problems are returned as `problems`
    so the upload page can show an editable mapping. `branches`: the uploader's branch scope.
    """
    with excel_sheets_shared():
        return _preview(
            local_path=local_path,
            original_filename=original_filename,
            datasource=datasource,
            options=options,
            branches=branches,
        )


def _preview(
    *, local_path: Path, original_filename: str, datasource, options: dict, branches: tuple[str, ...] | None
) -> dict:
    detected = source_detect(
        local_path, filename_hint=original_filename, sheet=options.get("sheet"), header_row=options.get("header_row")
    )
    saved = ColumnMapping.objects.filter(datasource=datasource).first() if datasource else None
    preview: dict = {
        **{key: value for key, value in _detected_fields(detected).items()},
        "decimal_comma": detected.decimal_comma,
        "columns": detected.columns,
        "sample_rows": detected.sample_rows,
        "proposed_mapping": {},
        "date_format": None,
        "schema_drift": [],
        "validation": None,
        "problems": [],
    }
    try:
        mapping = mapping_resolve(
            columns=detected.columns, explicit=options.get("mapping"), saved=saved.mapping if saved else None
        )
        preview["proposed_mapping"] = mapping.fields
        preview["schema_drift"] = mapping_drift(saved=saved.mapping if saved else None, current=mapping.fields)
        date_choice = _date_format_choose(local_path, detected, mapping, explicit=options.get("date_format"))
        preview["date_format"] = date_choice.format
    except IngestionError as exc:
        preview["problems"].append({"code": exc.code, "detail": exc.detail})
        return preview
    plan = TransformPlan.from_mapping(
        mapping=mapping, date_format=date_choice.format, decimal_comma=detected.decimal_comma, branches=branches
    )
    first_batch = next(iter(source_read_batches(local_path, detected, batch_rows=PREVIEW_ROWS_CHECKED)), None)
    if first_batch is None:  # every row after the header is blank (detection looked at the first rows only)
        preview["problems"].append({"code": errors.HEADER_ONLY, "detail": NO_DATA_ROWS})
        return preview
    result = batch_transform(first_batch, plan)
    preview["validation"] = {
        "rows_checked": first_batch.height,
        "rows_rejected": result.rejected["row_number"].n_unique() if result.rejected.height else 0,
        "errors": result.rejected.head(FIRST_ERRORS_KEPT).to_dicts(),
    }
    return preview
