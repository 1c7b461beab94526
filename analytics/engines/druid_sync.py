"""Druid's rows against the catalogue's: a reconciliation, and a load of the current version.

Druid answers from the rows it holds; the catalogue says which rows are published. They differ
when the engine is switched to Druid after uploads were published with the embedded engine
(Druid has none of them), or when rows reached Druid and the catalogue never switched them in.
`druid_reconcile` compares both: every additive part per day and branch, and per day the lines
of each value of every other dimension. `druid_sync` replaces Druid's rows of the datasource's
whole time range (the catalogue's and Druid's), or of given days, with the catalogue's current
version, through the same ingestion task a publish uses. `manage.py druid_sync` runs both;
`upload_unload` runs a sync of the days an upload that never switched in had loaded.
"""

import datetime as dt
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote as url_quote

import duckdb
import polars as pl
from django.conf import settings
from django.utils import timezone

from analytics.catalogue import Snapshot, datasource_snapshot
from analytics.engines import EngineProgress
from analytics.engines.druid import (
    PART_SQL,
    DruidIngestionFailed,
    DruidRequestError,
    druid_call,
    druid_datasource,
    druid_sql,
)
from analytics.engines.druid_ingestion import (
    POLL_SECONDS,
    Days,
    catalogue_rows_write,
    curated_dimensions,
    days_interval,
    druid_days,
    druid_table_exists,
    earlier_loads,
    task_cancel,
    upload_ingest,
)
from analytics.metrics import PARTS
from analytics.models import Datasource, Segment
from analytics.segments import segment_local_path
from analytics.sql import quote
from sales_analytics.plural import counted

SYNC_UPLOAD_NAME = "catalogue sync"
# A version published while a sync loads is loaded by another round; past this many, the sync
# stops and its reconciliation shows what is still apart.
SYNC_ROUNDS = 3


# Cells compared: a day and a branch (every row has both). Totals alone would miss rows moved
# between days or branches (a day/month fix, a branch relabelled) that add up the same.
Cell = tuple[dt.date, str | None]
Parts = dict[str, float]  # every part of analytics.metrics, by name
# A day's lines of one value of one dimension: rows with the wrong product line or payment add
# up the same in every part, so each other dimension is compared too. `invoice_id` is not: its
# values are as many as the sales; the `invoices` part (distinct ids per cell) compares it.
ValueKey = tuple[str, dt.date, object]
NOT_COMPARED_BY_VALUE = frozenset({"branch", "invoice_id"})
# Parts that are counts compare exactly; sums of amounts up to the rounding of another order.
COUNT_PARTS = frozenset({"lines", "quantity_sum", "rating_count", "invoices"})
CELLS_SHOWN = 5


@dataclass(frozen=True)
class Reconciliation:
    datasource: str
    data_version: int  # 0: nothing published
    catalogue_lines: int
    catalogue_revenue: float
    druid_lines: int
    druid_revenue: float
    druid_days: tuple[dt.date, dt.date] | None  # Druid's first and last day, None when it holds no rows
    cells_apart: tuple[str, ...] = ()  # the first few (day, branch) cells that differ, in words
    cells_apart_count: int = 0
    values_apart: tuple[str, ...] = ()  # the first few (dimension, day, value) whose lines differ
    values_apart_count: int = 0

    @property
    def in_sync(self) -> bool:
        return self.cells_apart_count == 0 and self.values_apart_count == 0

    def describe(self) -> str:
        state = "in sync"
        if not self.in_sync:
            state = (
                f"OUT OF SYNC in {self.cells_apart_count:,} day×branch cell(s) and "
                f"{self.values_apart_count:,} day×dimension value(s)"
            )
        text = (
            f"{self.datasource}: {state} — catalogue version {self.data_version}: "
            f"{counted(self.catalogue_lines, 'line')}, revenue {self.catalogue_revenue:,.4f}; "
            f"Druid: {counted(self.druid_lines, 'line')}, "
            f"revenue {self.druid_revenue:,.4f}"
        )
        return text + "".join(f"\n    {line}" for line in (*self.cells_apart, *self.values_apart))


def druid_reconcile(*, datasource_name: str) -> Reconciliation:
    """Every additive part per day and branch, and every dimension's lines per day and value, in
    the catalogue's current version and in Druid."""
    snapshot = datasource_snapshot(name=datasource_name)
    datasource = druid_datasource(datasource_name)
    columns = _druid_columns(datasource)
    ours = _catalogue_cells(snapshot) if snapshot is not None else {}
    theirs = _druid_cells(datasource, columns) if columns else {}
    dimensions = _compared_dimensions(snapshot, columns)
    our_values = _catalogue_values(snapshot, dimensions) if snapshot is not None else {}
    their_values = _druid_values(datasource, dimensions, columns) if columns else {}
    apart = [
        cell for cell in sorted(ours.keys() | theirs.keys(), key=_cell_order) if not _cells_equal(cell, ours, theirs)
    ]
    values_apart = [
        key
        for key in sorted(our_values.keys() | their_values.keys(), key=_value_order)
        if our_values.get(key, 0) != their_values.get(key, 0)
    ]
    days = [day for day, _ in theirs]
    return Reconciliation(
        datasource=datasource_name,
        data_version=snapshot.version if snapshot is not None else 0,
        catalogue_lines=int(sum(parts.get("lines") or 0 for parts in ours.values())),
        catalogue_revenue=sum(parts.get("revenue_sum") or 0.0 for parts in ours.values()),
        druid_lines=int(sum(parts.get("lines") or 0 for parts in theirs.values())),
        druid_revenue=sum(parts.get("revenue_sum") or 0.0 for parts in theirs.values()),
        druid_days=(min(days), max(days)) if days else None,
        cells_apart=tuple(_cell_words(cell, ours, theirs) for cell in apart[:CELLS_SHOWN]),
        cells_apart_count=len(apart),
        values_apart=tuple(_value_words(key, our_values, their_values) for key in values_apart[:CELLS_SHOWN]),
        values_apart_count=len(values_apart),
    )


def druid_sync(
    *,
    datasource_name: str,
    drop_unpublished: bool = False,
    days: Days | None = None,
    on_progress: EngineProgress | None = None,
) -> Reconciliation:
    """Make Druid hold exactly the catalogue's current rows of the datasource (of `days` only, when
    given); the reconciliation after.

    Druid's rows of a datasource with nothing published are dropped only with `drop_unpublished`
    or given `days`: they may be a first upload's, loaded and about to be switched in. A publish
    that loaded rows while a sync ran plans again (analytics.services compares `druid_synced_at`
    at its switch); a version switched in meanwhile is loaded by another round.
    """
    datasource = druid_datasource(datasource_name)
    for _round in range(SYNC_ROUNDS):
        snapshot = datasource_snapshot(name=datasource_name)
        if snapshot is None and days is None and not drop_unpublished:
            break
        span = days or _sync_days(snapshot, druid_days(datasource))
        if span is None:
            break
        _sync_mark(datasource_name)
        with tempfile.TemporaryDirectory(prefix="druid-sync-") as workdir:
            rows = catalogue_rows_write(
                snapshot=snapshot, days=span, skip_days=None, added=None, target=Path(workdir) / "rows.parquet"
            )
            if rows is None:
                _druid_days_drop(datasource, span)
            else:
                _rows_load(datasource_name, rows_path=rows, days=span, on_progress=on_progress)
        # Loads of uploads that never switched in are gone from Druid: a retry must load them
        # again. And the answers cached for the version's token were Druid's old rows.
        _sync_mark(datasource_name, rows_changed=True)
        if _data_version(datasource_name) == (snapshot.version if snapshot is not None else 0):
            break
    return druid_reconcile(datasource_name=datasource_name)


def upload_unload(*, datasource_name: str, upload_id: uuid.UUID) -> Days | None:
    """Remove from Druid whatever the upload's tasks loaded, when the catalogue never switched the
    upload in: its running tasks are shut down and the days its tasks wrote get the catalogue's
    rows again. The days repaired; None when there was nothing to remove."""
    if Segment.objects.filter(datasource__name=datasource_name, upload_id=upload_id).exists():
        return None
    datasource = druid_datasource(datasource_name)
    loads = earlier_loads(datasource=datasource, upload_id=upload_id)
    running = [load for load in loads if load.state == "RUNNING"]
    for load in running:
        task_cancel(load.task_id)
    if running:
        loads = earlier_loads(datasource=datasource, upload_id=upload_id)
    spans = [load.days or druid_days(datasource) for load in loads if load.succeeded]
    spans = [span for span in spans if span is not None]
    if not spans:
        return None
    days = (min(span[0] for span in spans), max(span[1] for span in spans))
    druid_sync(datasource_name=datasource_name, days=days)
    return days


def _sync_days(snapshot: Snapshot | None, held: Days | None) -> Days | None:
    """The catalogue's days and any Druid holds beyond them."""
    spans = [span for span in (snapshot.date_range if snapshot is not None else None, held) if span is not None]
    if not spans:
        return None
    return min(span[0] for span in spans), max(span[1] for span in spans)


def _sync_mark(datasource_name: str, *, rows_changed: bool = False) -> None:
    changes: dict = {"druid_synced_at": timezone.now()}
    if rows_changed:
        changes["version_token"] = uuid.uuid4()
    Datasource.objects.filter(name=datasource_name).update(**changes)


def _data_version(datasource_name: str) -> int:
    return Datasource.objects.filter(name=datasource_name).values_list("data_version", flat=True).first() or 0


# --- the catalogue's side -----------------------------------------------------------------------


def _snapshot_paths(snapshot: Snapshot) -> list[str]:
    return [str(segment_local_path(segment=segment)) for segment in snapshot.segments]


def _catalogue_columns(snapshot: Snapshot) -> set[str]:
    columns: set[str] = set()
    for path in _snapshot_paths(snapshot):
        columns |= set(pl.read_parquet_schema(path))
    return columns


def _catalogue_cells(snapshot: Snapshot) -> dict[Cell, Parts]:
    columns = _catalogue_columns(snapshot)
    parts = [
        (PARTS[name].raw_sql if "invoice_id" in columns or PARTS[name].needs_column is None else "count(*)")
        for name in PARTS
    ]
    with duckdb.connect() as con:
        # The files as the embedded engine reads them (analytics.engines.embedded), paths bound.
        rows = con.execute(
            f"SELECT date, branch, {', '.join(parts)} FROM read_parquet(?, union_by_name = true) GROUP BY ALL",  # noqa: S608
            [_snapshot_paths(snapshot)],
        ).fetchall()
    return {(day, branch): dict(zip(PARTS, values, strict=True)) for day, branch, *values in rows}


def _catalogue_dimensions(snapshot: Snapshot) -> set[str]:
    names: set[str] = set()
    for path in _snapshot_paths(snapshot):
        names |= set(curated_dimensions(Path(path)))
    return names


def _catalogue_values(snapshot: Snapshot, dimensions: list[str]) -> dict[ValueKey, int]:
    columns = _catalogue_columns(snapshot)
    found: dict[ValueKey, int] = {}
    with duckdb.connect() as con:
        for name in dimensions:
            # `hour` as the ingestion stores it (druid_ingestion.curated_ndjson_write).
            if name == "hour":
                value = "hour(datetime)" if "datetime" in columns else "NULL"
            else:
                value = quote(name) if name in columns else "NULL"
            rows = con.execute(
                f"SELECT date, {value}, count(*) FROM read_parquet(?, union_by_name = true) GROUP BY ALL",  # noqa: S608
                [_snapshot_paths(snapshot)],
            ).fetchall()
            found.update({(name, day, item): int(lines) for day, item, lines in rows})
    return found


# --- Druid's side -------------------------------------------------------------------------------


def _druid_columns(datasource: str) -> dict[str, str]:
    """Druid's columns of the datasource and their SQL types; empty when it holds no rows."""
    rows = druid_sql(
        "SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = ?",
        [datasource],
    )
    return {name: sql_type for name, sql_type in rows}


# Rows loaded by a release before the `revenue_with_profit` column: a table none of whose
# segments has it refuses the column by name, so the sync that brings it computes it as queries
# over older rows do (analytics.engines.druid.PART_SQL).
REVENUE_WITH_PROFIT_BEFORE = 'SUM(CASE WHEN "gross_profit_sum" IS NOT NULL THEN "revenue_sum" END)'


def _druid_part_sql(name: str, columns: dict[str, str]) -> str:
    if name == "invoices" and "invoice_id" not in columns:
        return 'SUM("lines")'
    if name == "revenue_with_profit" and name not in columns:
        return REVENUE_WITH_PROFIT_BEFORE
    return PART_SQL[name]


def _druid_cells(datasource: str, columns: dict[str, str]) -> dict[Cell, Parts]:
    parts = [_druid_part_sql(name, columns) for name in PARTS]
    rows = druid_sql(
        f"SELECT TIME_FLOOR(__time, 'P1D'), \"branch\", {', '.join(parts)} "  # noqa: S608
        f"FROM {quote(datasource)} GROUP BY 1, 2",
        [],
    )
    return {(moment.date(), branch): dict(zip(PARTS, values, strict=True)) for moment, branch, *values in rows}


def _druid_values(datasource: str, dimensions: list[str], columns: dict[str, str]) -> dict[ValueKey, int]:
    found: dict[ValueKey, int] = {}
    for name in dimensions:
        value = quote(name) if name in columns else "NULL"
        rows = druid_sql(
            f"SELECT TIME_FLOOR(__time, 'P1D'), {value}, SUM(\"lines\") FROM {quote(datasource)} GROUP BY 1, 2",  # noqa: S608
            [],
        )
        found.update({(name, moment.date(), item): int(lines) for moment, item, lines in rows})
    return found


def _compared_dimensions(snapshot: Snapshot | None, columns: dict[str, str]) -> list[str]:
    druid_strings = {name for name, sql_type in columns.items() if sql_type == "VARCHAR"}
    ours = _catalogue_dimensions(snapshot) if snapshot is not None else set()
    return [*sorted((ours | druid_strings) - NOT_COMPARED_BY_VALUE), "hour"]


def _druid_days_drop(datasource: str, days: Days) -> None:
    """Druid's segments of those days marked unused, then until the broker stops answering from them."""
    druid_call(
        "POST",
        f"/druid/coordinator/v1/datasources/{url_quote(datasource, safe='')}/markUnused",
        json={"interval": days_interval(days)},
    )
    deadline = time.monotonic() + settings.DRUID_PUBLISH_TIMEOUT_SECONDS
    while _druid_rows_in(datasource, days):
        if time.monotonic() > deadline:
            raise DruidIngestionFailed(
                f"Druid still answers from the segments of {datasource} after "
                f"{settings.DRUID_PUBLISH_TIMEOUT_SECONDS} s (DRUID_PUBLISH_TIMEOUT_SECONDS); check that the "
                "coordinator runs."
            )
        time.sleep(POLL_SECONDS)


def _druid_rows_in(datasource: str, days: Days) -> bool:
    try:
        [(lines,)] = druid_sql(
            f"SELECT COUNT(*) FROM {quote(datasource)} WHERE __time >= ? AND __time < ?",  # noqa: S608
            [days[0], days[1] + dt.timedelta(days=1)],
        )
    except DruidRequestError:
        if druid_table_exists(datasource):
            raise
        return False  # its last segments were dropped: the broker no longer knows the table
    return bool(lines)


def _rows_load(datasource_name: str, *, rows_path: Path, days: Days, on_progress: EngineProgress | None) -> str:
    """One replacing ingestion of the rows over `days`."""
    from analytics.services import PublishRequest

    request = PublishRequest(
        datasource_name=datasource_name,
        upload_id=uuid.uuid4(),  # a fresh task: Druid's rows may have changed since an earlier sync
        upload_name=SYNC_UPLOAD_NAME,
        uploaded_at=timezone.now(),
        curated_path=rows_path,
        rows=pl.scan_parquet(rows_path).select(pl.len()).collect().item(),
        interval_start=days[0],
        interval_end=days[1],
        replace=True,
    )
    return upload_ingest(request=request, on_progress=on_progress)


# --- comparing ----------------------------------------------------------------------------------


def _parts_apart(ours: Parts, theirs: Parts) -> list[str]:
    apart = []
    for name in PARTS:
        mine, druid = float(ours.get(name) or 0), float(theirs.get(name) or 0)
        tolerance = 0.0 if name in COUNT_PARTS else max(0.005, 1e-10 * abs(mine))
        if abs(mine - druid) > tolerance:
            apart.append(name)
    return apart


def _cells_equal(cell: Cell, ours: dict, theirs: dict) -> bool:
    return not _parts_apart(ours.get(cell, {}), theirs.get(cell, {}))


def _cell_order(cell: Cell) -> tuple:
    return cell[0], cell[1] is None, cell[1] or ""


def _value_order(key: ValueKey) -> tuple:
    return key[1], key[0], key[2] is None, str(key[2])


def _cell_words(cell: Cell, ours: dict, theirs: dict) -> str:
    mine, druid = ours.get(cell, {}), theirs.get(cell, {})
    differences = "; ".join(
        f"{name} catalogue {float(mine.get(name) or 0):,.4f}, Druid {float(druid.get(name) or 0):,.4f}"
        if name not in COUNT_PARTS
        else f"{name} catalogue {int(mine.get(name) or 0):,}, Druid {int(druid.get(name) or 0):,}"
        for name in _parts_apart(mine, druid)
    )
    return f"{cell[0]} branch {cell[1]}: {differences}"


def _value_words(key: ValueKey, ours: dict, theirs: dict) -> str:
    name, day, value = key
    catalogue, druid = counted(ours.get(key, 0), "line"), counted(theirs.get(key, 0), "line")
    return f"{day} {name} {value!r}: catalogue {catalogue}, Druid {druid}"
