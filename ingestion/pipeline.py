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
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from accounts.selectors import user_allowed_branches
from analytics.engines import EngineError
from analytics.models import Datasource
from analytics.rollups import SharedInvoices
from analytics.services import DataAlreadyPublished, PublishOutcome, PublishRequest, datasource_publish
from ingestion import errors
from ingestion.dates import (
    EXCEL_EPOCHS,
    EXCEL_SERIAL,
    DateChoice,
    date_format_choose_counted,
    date_value_counts,
    date_value_counts_merge,
    time_values_compact,
)
from ingestion.errors import IngestionError
from ingestion.mapping import ColumnMapping as ResolvedMapping
from ingestion.mapping import (
    mapping_drift,
    mapping_line_total_decisions,
    mapping_propose,
    mapping_resolve,
    mapping_saved_decisions,
    saved_mapping_problem,
)
from ingestion.models import ColumnMapping, IngestionTask
from ingestion.overlap import BackgroundConsumer, prefetched
from ingestion.readers import (
    DecimalVotes,
    DetectedSource,
    decimal_convention_choose,
    decimal_votes_of_frame,
    excel_formula_without_value,
    excel_sheets_shared,
    nested_column_refuse,
    source_column_parts,
    source_detect,
    source_estimate,
    source_read_batches,
)
from ingestion.services import (
    DEFAULT_MAX_REJECTED_RATIO,
    TaskProgress,
    ingestion_duplicate_refuse,
    ingestion_tasks_reap,
    raw_local_path,
    replace_permission_check,
    task_rows_switched_in,
    text_storable,
)
from ingestion.transform import (
    TransformPlan,
    batch_transform,
    currencies_mixed_refuse,
    currency_column_note,
    currency_columns,
)
from sales_analytics.csvsafe import neutralize_cell
from sales_analytics.plural import counted

logger = logging.getLogger(__name__)

FIRST_ERRORS_KEPT = 20
NO_DATA_ROWS = "The file has a header but no data rows."
# Parts of the date column (a CSV block or a batch each) that choose the format before validating.
DATE_SAMPLE_PARTS = 2
# A currency column names at most this many currencies in a note (more: it is no currency column).
CURRENCIES_LISTED = 20
ERROR_REPORT_COLUMNS = ("row_number", "column", "value", "reason")
Stage = IngestionTask.Stage


# A task's work folder is `ingest-<task id>-…` in the temporary folder: one its worker was killed in
# is left behind, and the task id tells ingestion.housekeeping whether its task still runs.
INGEST_WORKDIR_PREFIX = "ingest-"


def pipeline_run(*, task: IngestionTask, progress: TaskProgress) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{INGEST_WORKDIR_PREFIX}{task.pk}-") as workdir:
        _run_in(task=task, progress=progress, workdir=Path(workdir))


def _run_in(*, task: IngestionTask, progress: TaskProgress, workdir: Path) -> None:
    # Detection, the date column and the batches read one parsed Excel sheet; it is released
    # before publishing.
    with excel_sheets_shared():
        read = _read_and_validate(task=task, progress=progress, workdir=workdir)
    memory_release()
    _publish(task=task, progress=progress, read=read)


@dataclass(frozen=True)
class MappingNotes:
    """What a task says about its mapping: how the file drifted from the datasource's saved
    mapping, and which fields the saved mapping decided against the file's own column names."""

    drift: list[str]
    saved_used: list[str]
    # Fields read from a line-total column beside one of the field's bare name ("Total Cost", "Cost").
    line_totals: list[str] = field(default_factory=list)
    saved_ignored: list[str] = field(default_factory=list)

    @property
    def sentences(self) -> list[str]:
        return [*self.saved_ignored, *self.drift, *self.saved_used, *self.line_totals]

    @property
    def message(self) -> str:
        drift = f" Schema drift: {' '.join(self.drift)}" if self.drift else ""
        return (
            "".join(f" {sentence}" for sentence in self.saved_ignored)
            + drift
            + "".join(f" {sentence}" for sentence in (*self.saved_used, *self.line_totals))
        )


@dataclass(frozen=True)
class _ReadFile:
    """A file read and validated, ready to publish."""

    detected: DetectedSource
    mapping: ResolvedMapping
    notes: MappingNotes
    outcome: "ValidationOutcome"
    # How the file was read where the uploader may want to act (a guessed decimal mark, sheets left out).
    reading_notes: list[str]


def _read_and_validate(*, task: IngestionTask, progress: TaskProgress, workdir: Path) -> _ReadFile:
    options = task.options
    if task.mode == IngestionTask.Mode.REPLACE:
        replace_permission_check(user=task.created_by)  # also when a retry switched to replace
    progress.stage(Stage.READING, 10, "Reading the file and detecting its format.")
    raw_path = raw_local_path(task=task, workdir=workdir)
    detected = _source_detect_with(raw_path, filename=task.original_filename, options=options)
    progress.update(15, _describe(detected), **_detected_fields(detected))
    progress.check_cancelled()

    progress.stage(Stage.MAPPING, 20, "Matching columns to the sales schema.")
    saved, saved_ignored = _saved_mapping_usable(datasource=task.datasource)
    mapping = _mapping_for(detected, options=options, saved=saved)
    notes = MappingNotes(
        drift=mapping_drift(saved=saved.mapping if saved else None, current=mapping.fields),
        saved_used=mapping_saved_decisions(columns=detected.columns, explicit=options.get("mapping"), mapping=mapping),
        line_totals=mapping_line_total_decisions(
            columns=detected.columns, explicit=options.get("mapping"), mapping=mapping
        ),
        saved_ignored=saved_ignored,
    )
    explicit_format = options.get("date_format")
    date_choice = _date_format_first_choice(raw_path, detected, mapping, explicit=explicit_format)
    plan = TransformPlan.from_mapping(
        mapping=mapping,
        date_format=date_choice.format,
        decimal_comma=detected.decimal_comma,
        branches=user_allowed_branches(user=task.created_by),
        date1904=detected.date1904,
    )
    progress.update(
        25,
        f"Columns matched.{notes.message}",
        applied_mapping=mapping.fields,
        detected_date_format=date_choice.format,
        notes=[*_reading_notes(detected, detected.decimal_note), *notes.sentences],
    )
    progress.check_cancelled()

    progress.stage(Stage.VALIDATING, 25, "Validating rows.")
    # The date format and decimal mark came from the first rows; the whole file decides, as if
    # counted first: this pass counts, and a second one runs when the whole file disagrees.
    counting = _Counting(dates=explicit_format is None, decimals=not options.get("decimal"))
    outcome = _validate_all(
        progress=progress, raw_path=raw_path, detected=detected, plan=plan, workdir=workdir, counting=counting
    )
    counted = outcome.counts
    confirmed, reasons = _plan_confirmed(plan, counted, counting=counting)
    if confirmed != plan:
        progress.update(25, f"{' '.join(reasons)} Validating again.", detected_date_format=confirmed.date_format)
        outcome = _validate_all(
            progress=progress, raw_path=raw_path, detected=detected, plan=confirmed, workdir=workdir
        )
    votes = counted.decimal_votes if counting.decimals else None
    reading_notes = [
        *_reading_notes(detected, _decimal_note(detected, confirmed, votes)),
        *reasons,
        *_serial_dates_note(confirmed),
        *_currency_notes(confirmed, outcome.counts),
    ]
    progress.update(
        25,
        f"Validated {outcome.rows_total:,} rows ({outcome.rows_rejected:,} rejected).",
        notes=[*reading_notes, *notes.sentences],
    )
    _formulas_refuse(raw_path, detected, mapping, columns_filled=outcome.counts.columns_filled)
    if outcome.rows_rejected:
        # Through the progress writer: a run given up on (reaped, run again) writes nothing more.
        progress.update(
            task.progress, task.message, error_report_key=_store_report(task=task, report_path=outcome.report_path)
        )
    _policy_check(task=task, outcome=outcome)
    progress.check_cancelled()
    return _ReadFile(detected, mapping, notes, outcome, reading_notes)


def _source_detect_with(path: Path, *, filename: str, options: dict) -> DetectedSource:
    """`source_detect` with the upload's options; a decimal mark given replaces the detected one."""
    detected = source_detect(
        path, filename_hint=filename, sheet=options.get("sheet"), header_row=options.get("header_row")
    )
    if options.get("decimal"):
        detected = replace(detected, decimal_comma=options["decimal"] == ",", decimal_note="")
    return detected


def _saved_mapping_usable(*, datasource: Datasource | None) -> tuple[ColumnMapping | None, list[str]]:
    """The datasource's saved mapping, or None with a sentence saying why it was set aside: one
    edited in the admin into something else than field → column broke every upload (a 500)."""
    saved = ColumnMapping.objects.filter(datasource=datasource).first() if datasource else None
    if saved is None:
        return None, []
    problem = saved_mapping_problem(mapping=saved.mapping, source_columns=saved.source_columns)
    if problem is None:
        return saved, []
    logger.warning("datasource %s: its saved column mapping is unusable and was ignored: %s", datasource, problem)
    return None, [
        f"The saved column mapping of this datasource cannot be used, so it was ignored and the columns were "
        f"matched by their names: {problem} Correct it in the admin, or let the next upload replace it."
    ]


def _mapping_for(detected: DetectedSource, *, options: dict, saved: ColumnMapping | None) -> ResolvedMapping:
    mapping = mapping_resolve(**_mapping_inputs(detected, options=options, saved=saved))
    nested_column_refuse(detected, mapping.fields)
    return mapping


def _mapping_inputs(detected: DetectedSource, *, options: dict, saved: ColumnMapping | None) -> dict:
    return {
        "columns": detected.columns,
        "explicit": options.get("mapping"),
        "saved": saved.mapping if saved else None,
        "repeated": detected.repeated_columns,
        "saved_columns": saved.source_columns if saved else None,
    }


def _mapping_proposed(detected: DetectedSource, *, options: dict, saved: ColumnMapping | None) -> dict[str, str]:
    return mapping_propose(**_mapping_inputs(detected, options=options, saved=saved)).fields


def _reading_notes(detected: DetectedSource, decimal_note: str) -> list[str]:
    return [note for note in (decimal_note, *detected.notes) if note]


@dataclass(frozen=True)
class _Counting:
    """Which first choices a validation pass counts the whole file for (an explicit option is not)."""

    dates: bool = False
    decimals: bool = False


@dataclass
class FileCounts:
    """What a validation pass counts over the whole file, to confirm the choices made from its
    first rows: the date column's values, the number columns' decimal marks, the time column's
    compact times ("1039"), and the mapped columns that have a value somewhere."""

    date_parts: list[pl.DataFrame] = field(default_factory=list)
    decimal_votes: DecimalVotes = field(default_factory=DecimalVotes)
    times_written: int = 0
    times_compact: int = 0
    columns_filled: set[str] = field(default_factory=set)
    # The values of each currency column (an extra dimension; see `transform.currency_columns`).
    currency_values: dict[str, set[str]] = field(default_factory=dict)

    def add(self, batch: pl.DataFrame, plan: TransformPlan, *, counting: _Counting) -> None:
        if counting.dates:
            self.date_parts.append(date_value_counts(batch[plan.mapping.fields["date"]]))
        if counting.decimals:
            self.decimal_votes += decimal_votes_of_frame(batch, plan.number_sources)
        if plan.time_source and not plan.time_compact:
            written, compact = time_values_compact(batch[plan.time_source])
            self.times_written += written
            self.times_compact += compact
        unfilled = set(plan.mapping.fields.values()) - self.columns_filled
        self.columns_filled |= {name for name in unfilled if batch[name].null_count() < batch.height}
        for source in currency_columns(plan.mapping).values():
            seen = self.currency_values.setdefault(source, set())
            if len(seen) <= CURRENCIES_LISTED:  # a column of more values is no currency code: stop looking
                seen.update(batch[source].drop_nulls().str.to_uppercase().unique().to_list())


def _currency_notes(plan: TransformPlan, counts: FileCounts) -> list[str]:
    """A warning per currency column naming several currencies: their amounts were summed."""
    return [
        currency_column_note(source, dimension, counts.currency_values.get(source, set()))
        for dimension, source in currency_columns(plan.mapping).items()
        if 1 < len(counts.currency_values.get(source, ())) <= CURRENCIES_LISTED
    ]


def _plan_confirmed(plan: TransformPlan, counts: FileCounts, *, counting: _Counting) -> tuple[TransformPlan, list[str]]:
    """The plan the whole file asks for, and why it differs from `plan` (chosen from the first rows)."""
    changes: dict = {}
    reasons: list[str] = []
    if counting.dates:
        final = date_format_choose_counted(date_value_counts_merge(counts.date_parts), date1904=plan.date1904)
        if final.format != plan.date_format:
            changes["date_format"] = final.format
            reasons.append(
                f"The whole date column reads best as {final.format}, not {plan.date_format} as its first rows did."
            )
    votes = counts.decimal_votes
    decided = votes.decided() if counting.decimals else None
    if decided is not None and decided != plan.decimal_comma:
        changes["decimal_comma"] = decided
        mark, other = ("comma", "point") if decided else ("point", "comma")
        written, against = (votes.comma, votes.point) if decided else (votes.point, votes.comma)
        reasons.append(
            f"The file's numbers have a decimal {mark} ({written:,} written so, {against:,} with a decimal {other}), "
            f"not the decimal {other} its first rows suggested."
        )
    if plan.time_source and not plan.time_compact and 0 < counts.times_written == counts.times_compact:
        changes["time_compact"] = True
        reasons.append(f"Every time in column '{plan.time_source}' is written without a colon (1039 for 10:39).")
    return replace(plan, **changes), reasons


def _serial_dates_note(plan: TransformPlan) -> list[str]:
    """How numbers in the date column were read as dates: the uploader sees no date in the file."""
    if plan.date_format != EXCEL_SERIAL:
        return []
    system = "the workbook uses Excel's 1904 date system" if plan.date1904 else "Excel's 1900 date system"
    return [
        f"The dates in column '{plan.mapping.fields['date']}' are numbers, read as Excel serial day numbers "
        f"(days since {EXCEL_EPOCHS[plan.date1904]:%Y-%m-%d}: {system})."
    ]


def _decimal_note(detected: DetectedSource, plan: TransformPlan, votes: DecimalVotes | None) -> str:
    """The note on a guessed decimal mark once the whole file is counted (`votes`; None when the
    uploader gave the mark): only when no number of the file settles it and some read differently."""
    if votes is None or votes.decided() is not None:
        return ""
    if detected.decimal_note:
        return detected.decimal_note
    comma, note = decimal_convention_choose(votes, delimiter=detected.delimiter)
    return note if comma == plan.decimal_comma else ""


def _formulas_refuse(
    path: Path, detected: DetectedSource, mapping: ResolvedMapping, *, columns_filled: set[str]
) -> None:
    """An .xlsx column that is empty because its cells are formulas no program computed (a file
    written by a script, never opened in a spreadsheet) is refused as such, not row by row as
    "revenue is missing"."""
    if detected.format != "xlsx":
        return
    empty = {field: source for field, source in mapping.fields.items() if source not in columns_filled}
    if not empty:
        return
    found = excel_formula_without_value(path, sheet=detected.sheet, after_row=detected.header_row or 0)
    if found is None:
        return
    cell, formula = found
    example = f"cell {cell}: ={formula}" if formula else f"cell {cell}"
    columns = ", ".join(f"'{source}' ({field})" for field, source in empty.items())
    derive = ""
    if "revenue" in empty and {"unit_price", "quantity"} <= set(mapping.fields):
        derive = (
            f'; or ignore the column with the option mapping {{"{empty["revenue"]}": ""}}, so that revenue '
            "is computed from unit price × quantity"
        )
    raise IngestionError(
        errors.FORMULAS_WITHOUT_VALUES,
        f"Column {columns} has no values: the sheet's cells hold formulas whose results were never computed "
        f"(e.g. {example}), as in files written by a program and never opened in a spreadsheet. "
        f"Open the file in Excel or LibreOffice, save it, and upload it again{derive}. Nothing was published.",
    )


def _publish(*, task: IngestionTask, progress: TaskProgress, read: _ReadFile) -> None:
    detected, mapping, notes, outcome = read.detected, read.mapping, read.notes, read.outcome
    # Not when this task's rows are in already (a retry finishing a run whose worker stopped after
    # the switch): it publishes nothing, whoever loaded the same file since.
    if not task.options.get("force") and not task_rows_switched_in(task=task):
        _publishing_claim(task=task)  # before an engine that loads rows itself (Druid) has loaded them
    progress.stage(Stage.PUBLISHING, 90, f"Publishing {counted(outcome.rows_valid, 'row')}.")
    keys_before = _invoice_keys(task.datasource_id)
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
                refuse_republished=not task.options.get("force"),
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
    except DataAlreadyPublished as exc:
        raise IngestionError(
            errors.DUPLICATE_UPLOAD,
            f"Every line of this file belongs to invoices already published in '{task.datasource.name}' "
            f"({counted(exc.shared.invoices, 'invoice')}): it is data sent before, though not byte for byte the "
            "same file (line endings or column order may differ). Nothing was published. To swap the days it "
            "covers, send it with mode=replace; to count it again anyway, retry with force=true.",
            status=409,
        ) from None
    if user_allowed_branches(user=task.created_by) is None and _publish_is_latest(task=task, published=published):
        # The saved mapping decides how everyone's later files are read: a branch-scoped
        # uploader's choice holds for their own upload only.
        ColumnMapping.objects.update_or_create(
            datasource=task.datasource, defaults={"mapping": mapping.fields, "source_columns": detected.columns}
        )
    task.engine_task_id = published.engine_task_id or f"embedded:{task.datasource.name}:v{published.data_version}"
    rejected_note = f", {outcome.rows_rejected:,} rejected (see the error report)" if outcome.rows_rejected else ""
    # A replace swaps every row of the file's date range, days the file has no rows for included.
    replaced_note = (
        f"; it replaced the {counted(published.rows_replaced, 'row')} from {outcome.interval_start} to "
        f"{outcome.interval_end} (every day of that range, also days without rows in this file)"
        if task.mode == IngestionTask.Mode.REPLACE
        else ""
    )
    warnings = [
        warning
        for warning in (
            _counted_twice_warning(published.shared_invoices, datasource=task.datasource.name),
            _invoice_ids_reused_warning(keys_before, _invoice_keys(task.datasource_id)),
        )
        if warning
    ]
    if warnings:
        progress.update(task.progress, task.message, notes=[*task.notes, *warnings])
    published_as = (
        f"data version {published.data_version} of '{task.datasource.name}' "
        f"({outcome.interval_start} to {outcome.interval_end})"
    )
    if published.already_published:
        # A retry finishing a run whose worker stopped after the switch: these rows are that run's.
        headline = (
            f"The run before had already published its {counted(outcome.rows_valid, 'row')} as {published_as}"
            f"{rejected_note}, but its worker stopped before recording it; nothing was counted twice."
        )
    else:
        headline = f"Published {counted(outcome.rows_valid, 'row')}{rejected_note} as {published_as}{replaced_note}."
    progress.finish(
        IngestionTask.Status.SUCCEEDED,
        f"{headline}{notes.message}{_reading_note(read.reading_notes)}{''.join(' ' + warning for warning in warnings)}",
        progress=100,
    )


def _publish_is_latest(*, task: IngestionTask, published: PublishOutcome) -> bool:
    """Whether no other upload was published after this one: when this run only found its rows
    published by the run before (its worker stopped after the switch), a later upload may have
    saved its own mapping since, which this older file's must not overwrite."""
    if not published.already_published:
        return True
    return Datasource.objects.filter(pk=task.datasource_id, data_version=published.data_version).exists()


def _reading_note(reading_notes: list[str]) -> str:
    return f" Note: {' '.join(reading_notes)}" if reading_notes else ""


@dataclass(frozen=True)
class _InvoiceKeys:
    """Whether a datasource's rows have invoice ids, and the dimensions constant within each."""

    has_invoice_id: bool
    constant: frozenset[str]


def _invoice_keys(datasource_id: int) -> _InvoiceKeys:
    row = Datasource.objects.filter(pk=datasource_id).values("has_invoice_id", "invoice_constant_dimensions").get()
    return _InvoiceKeys(row["has_invoice_id"], frozenset(row["invoice_constant_dimensions"] or ()))


def _invoice_ids_reused_warning(before: _InvoiceKeys, after: _InvoiceKeys) -> str:
    """A warning when this upload made one invoice id stand for sales of several days or branches:
    receipt numbers that restart every day or in every store. Transactions count distinct invoice
    ids (DESIGN.md), so they would be undercounted without a word."""
    if not after.has_invoice_id:
        return ""
    spread = [
        words
        for name, words in (("date", "days"), ("branch", "branches"))
        if name not in after.constant and (not before.has_invoice_id or name in before.constant)
    ]
    if not spread:
        return ""
    return (
        f"Warning: some invoice ids now stand for sales of several {' and '.join(spread)}. Transactions count "
        "each invoice id once, so if receipt numbers restart every day or in every store, transactions and the "
        "average ticket are undercounted: map a column unique to each sale as the invoice id."
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
    return date_format_choose_counted(counts, explicit=explicit, date1904=detected.date1904)


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
            date_value_counts_merge(date_value_counts(part) for part in sample),
            explicit=explicit,
            date1904=detected.date1904,
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
    counts: FileCounts = field(default_factory=FileCounts)
    # The currencies each amount column is written with so far (source column → codes).
    currencies: dict[str, set[str]] = field(default_factory=dict)


def _validate_all(
    *,
    progress: TaskProgress,
    raw_path: Path,
    detected: DetectedSource,
    plan: TransformPlan,
    workdir: Path,
    counting: _Counting = _Counting(),
) -> ValidationOutcome:
    """Every batch is transformed and validated; valid rows stream into one curated Parquet file.

    The next batch is read and the previous one written in threads while this one is validated.
    `counting`: the first choices to count the whole file for (`outcome.counts`).
    """
    outcome = ValidationOutcome(curated_path=workdir / "curated.parquet", report_path=workdir / "errors.csv")
    progress.rows_partial = True
    rejected_rows: set[int] = set()
    estimate = source_estimate(raw_path, detected)
    estimated_rows = estimate.rows
    # Three batches are in memory at once (one read ahead, one validated, one written): memory
    # follows a batch's bytes, so wide rows make shorter batches.
    batch_rows = estimate.batch_rows(most=settings.INGEST_BATCH_ROWS, budget_bytes=settings.INGEST_BATCH_BYTES)
    curated = _CuratedWriter(outcome.curated_path)
    sink: BackgroundConsumer[pa.Table] = BackgroundConsumer(curated.write, name="ingest-write")
    batches = prefetched(
        lambda: source_read_batches(raw_path, detected, batch_rows=batch_rows, typed=plan.typed_columns())
    )
    try:
        # utf-8-sig: a BOM, as every CSV export has (sales_analytics.csvsafe).
        with outcome.report_path.open("w", newline="", encoding="utf-8-sig") as report_file:
            report = csv.writer(report_file)
            report.writerow(ERROR_REPORT_COLUMNS)
            for batch in batches:
                outcome.counts.add(batch, plan, counting=counting)
                result = batch_transform(batch, plan)
                _currencies_add(outcome=outcome, found=result.currencies)
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
    progress.rows_partial = False
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


def _currencies_add(*, outcome: ValidationOutcome, found: dict[str, frozenset[str]]) -> None:
    """Count a batch's currencies; refused as soon as a second one shows, however far in."""
    for column, currencies in found.items():
        outcome.currencies.setdefault(column, set()).update(currencies)
    currencies_mixed_refuse(outcome.currencies)


def _extend_interval(*, outcome: ValidationOutcome, dates: pl.Series) -> None:
    low, high = dates.min(), dates.max()
    outcome.interval_start = low if outcome.interval_start is None else min(outcome.interval_start, low)
    outcome.interval_end = high if outcome.interval_end is None else max(outcome.interval_end, high)


def _store_report(*, task: IngestionTask, report_path: Path) -> str:
    key = f"reports/{task.datasource.name}/{task.pk}/errors-attempt{task.attempts}.csv"
    with report_path.open("rb") as handle:
        return default_storage.save(key, File(handle, name=Path(key).name))


def _rejected_share_refusal(*, rows: str, rows_total: int, rows_valid: int, rows_rejected: int, limit: float) -> str:
    """Why rows like these refuse a file (nothing valid, or a rejected share past `limit`); "" when
    they do not. `rows`: how the sentence names the rows counted ("200 rows")."""
    ratio = rows_rejected / rows_total
    if rows_valid and ratio <= limit:
        return ""
    return (
        f"{rows_rejected:,} of {rows} ({ratio:.1%}) {'was' if rows_rejected == 1 else 'were'} rejected, "
        f"more than the allowed {limit:.0%}"
    )


def _max_rejected_ratio(options: dict) -> float:
    return float(options.get("max_rejected_ratio", DEFAULT_MAX_REJECTED_RATIO))


def _policy_check(*, task: IngestionTask, outcome: ValidationOutcome) -> None:
    """Refuse the whole file when nothing is valid or too much was rejected."""
    if outcome.rows_total == 0:
        raise IngestionError(errors.HEADER_ONLY, NO_DATA_ROWS)
    refusal = _rejected_share_refusal(
        rows=counted(outcome.rows_total, "row"),
        rows_total=outcome.rows_total,
        rows_valid=outcome.rows_valid,
        rows_rejected=outcome.rows_rejected,
        limit=_max_rejected_ratio(task.options),
    )
    if refusal:
        raise IngestionError(
            errors.TOO_MANY_REJECTED,
            f"{refusal}. Nothing was published; download the error report to see why.",
        )


PREVIEW_ROWS_CHECKED = 5_000


def _problem(exc: IngestionError) -> dict:
    """A refusal as the preview lists it, for the upload page to show beside the mapping."""
    return {"code": exc.code, "detail": exc.detail, "choices": list(exc.choices)}


def ingestion_preview(
    *,
    local_path: Path,
    original_filename: str,
    datasource,
    options: dict,
    sha256: str = "",
    user: AbstractBaseUser | None = None,
) -> dict:
    """What an upload would do, without storing or publishing anything.

    Format problems raise (415/422); what would refuse the upload or fail its task (a file already
    published, mapping and date problems, too many rejected rows) is returned as `problems`, with
    the task's codes, so the upload page can show them and an editable mapping. `user`: the
    uploader (their branch scope; whether they may see an earlier task of the same file).
    """
    with excel_sheets_shared():
        return _preview(
            local_path=local_path,
            original_filename=original_filename,
            datasource=datasource,
            options=options,
            sha256=sha256,
            user=user,
        )


def _preview_duplicate_problems(*, datasource, sha256: str, options: dict, user: AbstractBaseUser | None) -> list[dict]:
    """`duplicate_upload` when the upload would be refused as this exact file, already published."""
    if datasource is None or not sha256 or options.get("force"):
        return []
    ingestion_tasks_reap()  # as the upload does: a task its worker left running is not "being loaded"
    try:
        ingestion_duplicate_refuse(
            datasource_name=datasource.name,
            sha256=sha256,
            user=user,
            mode=options.get("mode") or IngestionTask.Mode.APPEND,
        )
    except IngestionError as exc:
        return [_problem(exc)]
    return []


def _preview_rejected_problems(*, rows_checked: int, rows_rejected: int, options: dict) -> list[dict]:
    """`too_many_rejected_rows` when the rows checked have a larger rejected share than the upload
    allows: its task would fail on the whole file the same way."""
    limit = _max_rejected_ratio(options)
    refusal = _rejected_share_refusal(
        rows=f"the {counted(rows_checked, 'row')} checked",
        rows_total=rows_checked,
        rows_valid=rows_checked - rows_rejected,
        rows_rejected=rows_rejected,
        limit=limit,
    )
    if not refusal:
        return []
    scope = (
        f" (the first {PREVIEW_ROWS_CHECKED:,} rows: the upload counts the whole file)"
        if rows_checked >= PREVIEW_ROWS_CHECKED
        else ""
    )
    advice = "Correct the rejected rows"
    if rows_rejected < rows_checked:
        advice += f", or send a max_rejected_ratio above {rows_rejected / rows_checked:.2f} to load the others"
    detail = f"{refusal}{scope}: the upload would fail with nothing published. {advice}."
    return [{"code": errors.TOO_MANY_REJECTED, "detail": detail, "choices": []}]


def _preview(
    *, local_path: Path, original_filename: str, datasource, options: dict, sha256: str, user: AbstractBaseUser | None
) -> dict:
    branches = user_allowed_branches(user=user)
    detected = _source_detect_with(local_path, filename=original_filename, options=options)
    saved, saved_ignored = _saved_mapping_usable(datasource=datasource)
    preview: dict = {
        **{key: value for key, value in _detected_fields(detected).items()},
        "decimal_comma": detected.decimal_comma,
        "columns": detected.columns,
        "sample_rows": detected.sample_rows,
        "proposed_mapping": {},
        "date_format": None,
        "schema_drift": list(saved_ignored),
        "validation": None,
        "problems": _preview_duplicate_problems(datasource=datasource, sha256=sha256, options=options, user=user),
        "notes": _reading_notes(detected, detected.decimal_note),
    }
    try:
        mapping = _mapping_for(detected, options=options, saved=saved)
        preview["proposed_mapping"] = mapping.fields
        preview["schema_drift"] = [
            *saved_ignored,
            *mapping_drift(saved=saved.mapping if saved else None, current=mapping.fields),
            *mapping_saved_decisions(columns=detected.columns, explicit=options.get("mapping"), mapping=mapping),
            *mapping_line_total_decisions(columns=detected.columns, explicit=options.get("mapping"), mapping=mapping),
        ]
        date_choice = _date_format_choose(local_path, detected, mapping, explicit=options.get("date_format"))
        preview["date_format"] = date_choice.format
    except IngestionError as exc:
        preview["problems"].append(_problem(exc))
        if exc.code == errors.MISSING_REQUIRED_COLUMN:
            # What could be mapped, for the uploader to complete rather than type from nothing.
            preview["proposed_mapping"] = _mapping_proposed(detected, options=options, saved=saved)
        return preview
    plan = TransformPlan.from_mapping(
        mapping=mapping,
        date_format=date_choice.format,
        decimal_comma=detected.decimal_comma,
        branches=branches,
        date1904=detected.date1904,
    )
    first_batch = next(iter(source_read_batches(local_path, detected, batch_rows=PREVIEW_ROWS_CHECKED)), None)
    if first_batch is None:  # every row after the header is blank (detection looked at the first rows only)
        preview["problems"].append({"code": errors.HEADER_ONLY, "detail": NO_DATA_ROWS, "choices": []})
        return preview
    # The rows checked confirm (or correct) what the first rows of detection chose, as a task's
    # whole file does.
    counting = _Counting(decimals=not options.get("decimal"))
    counts = FileCounts()
    counts.add(first_batch, plan, counting=counting)
    confirmed, reasons = _plan_confirmed(plan, counts, counting=counting)
    preview["decimal_comma"] = confirmed.decimal_comma
    votes = counts.decimal_votes if counting.decimals else None
    preview["notes"] = [
        *_reading_notes(detected, _decimal_note(detected, confirmed, votes)),
        *reasons,
        *_serial_dates_note(confirmed),
        *_currency_notes(confirmed, counts),
    ]
    try:
        _formulas_refuse(local_path, detected, mapping, columns_filled=counts.columns_filled)
    except IngestionError as exc:
        preview["problems"].append(_problem(exc))
    result = batch_transform(first_batch, confirmed)
    try:
        currencies_mixed_refuse(result.currencies)
    except IngestionError as exc:
        preview["problems"].append(_problem(exc))
    rows_rejected = result.rejected["row_number"].n_unique() if result.rejected.height else 0
    preview["validation"] = {
        "rows_checked": first_batch.height,
        "rows_rejected": rows_rejected,
        "errors": result.rejected.head(FIRST_ERRORS_KEPT).to_dicts(),
    }
    preview["problems"] += _preview_rejected_problems(
        rows_checked=first_batch.height, rows_rejected=rows_rejected, options=options
    )
    return preview
