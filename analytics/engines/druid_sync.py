"""Druid's rows against the catalogue's: a reconciliation, and a load of the current version.

Druid answers from the rows it holds; the catalogue says which rows are published. They differ
when the engine is switched to Druid after uploads were published with the embedded engine
(Druid has none of them), or when rows reached Druid and the catalogue never switched them in.
`druid_reconcile` compares the lines and revenue of both; `druid_sync` replaces Druid's rows of
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
from analytics.segments import segment_local_path
from analytics.sql import quote

SYNC_UPLOAD_NAME = "catalogue sync"


@dataclass(frozen=True)
class Reconciliation:
    datasource: str
    data_version: int  # 0: nothing published
    catalogue_lines: int
    catalogue_revenue: float
    druid_lines: int
    druid_revenue: float
    druid_days: tuple[dt.date, dt.date] | None  # Druid's first and last day, None when it holds no rows

    @property
    def in_sync(self) -> bool:
        # Lines must match exactly; revenue up to the rounding of summing in another order.
        tolerance = max(0.005, 1e-10 * abs(self.catalogue_revenue))
        return (
            self.catalogue_lines == self.druid_lines and abs(self.catalogue_revenue - self.druid_revenue) <= tolerance
        )

    def describe(self) -> str:
        state = "in sync" if self.in_sync else "OUT OF SYNC"
        return (
            f"{self.datasource}: {state} — catalogue version {self.data_version}: {self.catalogue_lines:,} lines, "
            f"revenue {self.catalogue_revenue:,.4f}; Druid: {self.druid_lines:,} lines, "
            f"revenue {self.druid_revenue:,.4f}"
        )


def druid_reconcile(*, datasource_name: str) -> Reconciliation:
    snapshot = datasource_snapshot(name=datasource_name)
    lines, revenue = _catalogue_totals(snapshot) if snapshot is not None else (0, 0.0)
    druid_lines, druid_revenue, days = _druid_totals(druid_datasource(datasource_name))
    return Reconciliation(
        datasource=datasource_name,
        data_version=snapshot.version if snapshot is not None else 0,
        catalogue_lines=lines,
        catalogue_revenue=revenue,
        druid_lines=druid_lines,
        druid_revenue=druid_revenue,
        druid_days=days,
    )


def druid_sync(*, datasource_name: str, on_progress: EngineProgress | None = None) -> Reconciliation:
    """Make Druid hold exactly the catalogue's current rows of the datasource; the reconciliation after.

    Run it while no upload to the datasource is publishing: a version published meanwhile shows
    as a reconciliation against a newer version than the one loaded, and a second run fixes it.
    """
    before = druid_reconcile(datasource_name=datasource_name)
    snapshot = datasource_snapshot(name=datasource_name)
    if snapshot is None:
        if before.druid_days is not None:
            _druid_rows_drop(druid_datasource(datasource_name))
    else:
        _snapshot_load(snapshot, druid_days=before.druid_days, on_progress=on_progress)
    return druid_reconcile(datasource_name=datasource_name)


def _catalogue_totals(snapshot: Snapshot) -> tuple[int, float]:
    paths = ", ".join("'" + str(segment_local_path(segment=s)).replace("'", "''") + "'" for s in snapshot.segments)
    with duckdb.connect() as con:
        lines, revenue = con.execute(
            f"SELECT count(*), coalesce(sum(revenue), 0) FROM read_parquet([{paths}], union_by_name = true)"  # noqa: S608
        ).fetchone()
    return int(lines), float(revenue)


def _druid_totals(datasource: str) -> tuple[int, float, tuple[dt.date, dt.date] | None]:
    known = druid_sql(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = ?", [datasource]
    )
    if not known:  # Druid has never loaded a row of it, or dropped them all
        return 0, 0.0, None
    [(lines, revenue, first, last)] = druid_sql(
        f'SELECT SUM("lines"), SUM("revenue_sum"), MIN(__time), MAX(__time) FROM {quote(datasource)}',  # noqa: S608
        [],
    )
    if not lines:
        return 0, 0.0, None
    return int(lines), float(revenue or 0.0), (first.date(), last.date())


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
    while _druid_totals(datasource)[2] is not None:
        if time.monotonic() > deadline:
            raise DruidIngestionFailed(
                f"Druid still answers from the segments of {datasource} after "
                f"{settings.DRUID_PUBLISH_TIMEOUT_SECONDS} s (DRUID_PUBLISH_TIMEOUT_SECONDS); check that the "
                "coordinator runs."
            )
        time.sleep(POLL_SECONDS)
