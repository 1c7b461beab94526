"""Druid's rows against the catalogue's: a reconciliation, and a load of the current version.

Druid answers from the rows it holds; the catalogue says which rows are published. They differ
when the engine is switched to Druid after uploads were published with the embedded engine
(Druid has none of them), or when rows reached Druid and the catalogue never switched them in.
`druid_reconcile` compares the lines and revenue of both per day and branch; `druid_sync` replaces Druid's rows of
the datasource's whole time range (the catalogue's and Druid's) with the catalogue's current
version, through the same ingestion task a publish uses. `manage.py druid_sync` runs both.
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
from analytics.engines.druid import DruidIngestionFailed, druid_call, druid_datasource, druid_sql
from analytics.engines.druid_ingestion import POLL_SECONDS, upload_ingest
from analytics.models import Datasource
from analytics.segments import segment_local_path
from analytics.sql import quote
from sales_analytics.plural import counted

SYNC_UPLOAD_NAME = "catalogue sync"


# Cells compared: a day and a branch (every row has both). Totals alone would miss rows moved
# between days or branches (a day/month fix, a branch relabelled) that add up the same.
Cell = tuple[dt.date, str | None]
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

    @property
    def in_sync(self) -> bool:
        return self.cells_apart_count == 0

    def describe(self) -> str:
        state = "in sync" if self.in_sync else f"OUT OF SYNC in {self.cells_apart_count:,} day×branch cell(s)"
        text = (
            f"{self.datasource}: {state} — catalogue version {self.data_version}: "
            f"{counted(self.catalogue_lines, 'line')}, revenue {self.catalogue_revenue:,.4f}; "
            f"Druid: {counted(self.druid_lines, 'line')}, "
            f"revenue {self.druid_revenue:,.4f}"
        )
        return text + "".join(f"\n    {cell}" for cell in self.cells_apart)


def druid_reconcile(*, datasource_name: str) -> Reconciliation:
    """Lines and revenue per day and branch, in the catalogue's current version and in Druid."""
    snapshot = datasource_snapshot(name=datasource_name)
    ours = _catalogue_cells(snapshot) if snapshot is not None else {}
    theirs = _druid_cells(druid_datasource(datasource_name))
    apart = [
        cell for cell in sorted(ours.keys() | theirs.keys(), key=_cell_order) if not _cells_equal(cell, ours, theirs)
    ]
    days = [day for day, _ in theirs]
    return Reconciliation(
        datasource=datasource_name,
        data_version=snapshot.version if snapshot is not None else 0,
        catalogue_lines=sum(lines for lines, _ in ours.values()),
        catalogue_revenue=sum(revenue for _, revenue in ours.values()),
        druid_lines=sum(lines for lines, _ in theirs.values()),
        druid_revenue=sum(revenue for _, revenue in theirs.values()),
        druid_days=(min(days), max(days)) if days else None,
        cells_apart=tuple(_cell_words(cell, ours, theirs) for cell in apart[:CELLS_SHOWN]),
        cells_apart_count=len(apart),
    )


def druid_sync(
    *, datasource_name: str, drop_unpublished: bool = False, on_progress: EngineProgress | None = None
) -> Reconciliation:
    """Make Druid hold exactly the catalogue's current rows of the datasource; the reconciliation after.

    Run it while no upload to the datasource is publishing: a version published meanwhile shows
    as a reconciliation against a newer version than the one loaded, and a second run fixes it.
    Druid's rows of a datasource with nothing published are dropped only with `drop_unpublished`:
    they may be a first upload's, loaded and about to be switched in.
    """
    before = druid_reconcile(datasource_name=datasource_name)
    snapshot = datasource_snapshot(name=datasource_name)
    if snapshot is None:
        if before.druid_days is None or not drop_unpublished:
            return before
        _druid_rows_drop(druid_datasource(datasource_name))
    else:
        _snapshot_load(snapshot, druid_days=before.druid_days, on_progress=on_progress)
    # Loads of uploads that never switched in are gone from Druid: a retry must load them again.
    Datasource.objects.filter(name=datasource_name).update(druid_synced_at=timezone.now())
    return druid_reconcile(datasource_name=datasource_name)


def _catalogue_cells(snapshot: Snapshot) -> dict[Cell, tuple[int, float]]:
    paths = [str(segment_local_path(segment=segment)) for segment in snapshot.segments]
    with duckdb.connect() as con:
        # The files as the embedded engine reads them (analytics.engines.embedded), paths bound.
        rows = con.execute(
            "SELECT date, branch, count(*), coalesce(sum(revenue), 0) "
            "FROM read_parquet(?, union_by_name = true) GROUP BY ALL",
            [paths],
        ).fetchall()
    return {(day, branch): (int(lines), float(revenue)) for day, branch, lines, revenue in rows}


def _druid_cells(datasource: str) -> dict[Cell, tuple[int, float]]:
    known = druid_sql(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = ?", [datasource]
    )
    if not known:  # Druid has never loaded a row of it, or dropped them all
        return {}
    rows = druid_sql(
        f'SELECT TIME_FLOOR(__time, \'P1D\'), "branch", SUM("lines"), SUM("revenue_sum") '  # noqa: S608
        f"FROM {quote(datasource)} GROUP BY 1, 2",
        [],
    )
    return {(moment.date(), branch): (int(lines), float(revenue or 0.0)) for moment, branch, lines, revenue in rows}


def _cells_equal(cell: Cell, ours: dict, theirs: dict) -> bool:
    lines, revenue = ours.get(cell, (0, 0.0))
    druid_lines, druid_revenue = theirs.get(cell, (0, 0.0))
    # Lines exactly; revenue up to the rounding of summing in another order.
    return lines == druid_lines and abs(revenue - druid_revenue) <= max(0.005, 1e-10 * abs(revenue))


def _cell_order(cell: Cell) -> tuple:
    return cell[0], cell[1] is None, cell[1] or ""


def _cell_words(cell: Cell, ours: dict, theirs: dict) -> str:
    lines, revenue = ours.get(cell, (0, 0.0))
    druid_lines, druid_revenue = theirs.get(cell, (0, 0.0))
    return (
        f"{cell[0]} branch {cell[1]}: catalogue {counted(lines, 'line')}, revenue {revenue:,.4f}; "
        f"Druid {counted(druid_lines, 'line')}, revenue {druid_revenue:,.4f}"
    )


def _snapshot_load(
    snapshot: Snapshot, *, druid_days: tuple[dt.date, dt.date] | None, on_progress: EngineProgress | None
) -> str:
    """One replacing ingestion of every row of the version, over its days and any Druid has beyond them."""
    from analytics.services import PublishRequest

    start, end = snapshot.date_range
    if druid_days is not None:
        start, end = min(start, druid_days[0]), max(end, druid_days[1])
    with tempfile.TemporaryDirectory(prefix="druid-sync-") as workdir:
        rows_path = Path(workdir) / "rows.parquet"
        frames = [pl.scan_parquet(segment_local_path(segment=segment)) for segment in snapshot.segments]
        # Extra columns differ between uploads: each file's own, null elsewhere (as union_by_name).
        pl.concat(frames, how="diagonal_relaxed").sink_parquet(rows_path)
        request = PublishRequest(
            datasource_name=snapshot.datasource.name,
            upload_id=uuid.uuid4(),  # a fresh task: Druid's rows may have changed since an earlier sync
            upload_name=SYNC_UPLOAD_NAME,
            uploaded_at=timezone.now(),
            curated_path=rows_path,
            rows=sum(segment.rows for segment in snapshot.segments),
            interval_start=start,
            interval_end=end,
            replace=True,
        )
        return upload_ingest(request=request, on_progress=on_progress)


def _druid_rows_drop(datasource: str) -> None:
    """Every segment of the datasource marked unused, then until the broker stops answering from them."""
    druid_call("DELETE", f"/druid/coordinator/v1/datasources/{url_quote(datasource, safe='')}")
    deadline = time.monotonic() + settings.DRUID_PUBLISH_TIMEOUT_SECONDS
    while _druid_cells(datasource):
        if time.monotonic() > deadline:
            raise DruidIngestionFailed(
                f"Druid still answers from the segments of {datasource} after "
                f"{settings.DRUID_PUBLISH_TIMEOUT_SECONDS} s (DRUID_PUBLISH_TIMEOUT_SECONDS); check that the "
                "coordinator runs."
            )
        time.sleep(POLL_SECONDS)
