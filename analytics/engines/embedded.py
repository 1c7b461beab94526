"""The embedded engine: Parquet segments and rollups on local disk, queried by DuckDB."""

import threading
from pathlib import Path

import duckdb
from django.conf import settings

from analytics.catalogue import Snapshot
from analytics.engines import EngineHealth
from analytics.models import Rollup
from analytics.rollups import DUCKDB_QUIET
from analytics.segments import segment_local_path
from analytics.sql import DuckDBDialect, Source

_local = threading.local()


def segments_root() -> Path:
    """Where the embedded engine keeps local copies of segments and rollups stored in S3."""
    return Path(settings.VAR_DIR) / "engine"


def _connection() -> duckdb.DuckDBPyConnection:
    # One in-memory connection per thread: connecting costs more than a small rollup query.
    con = getattr(_local, "connection", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET threads TO 2")
        con.execute(DUCKDB_QUIET)
        _local.connection = con
    return con


class EmbeddedEngine:
    name = "embedded"
    dialect = DuckDBDialect()
    uses_rollup_files = True
    loads_before_switch = False
    title = "the embedded engine"

    def health(self) -> EngineHealth:
        try:
            segments_root().mkdir(parents=True, exist_ok=True)
            self.execute("SELECT 1", [])
        except (OSError, duckdb.Error) as exc:
            return EngineHealth(ok=False, detail=f"embedded engine unavailable ({type(exc).__name__})")
        return EngineHealth(ok=True, detail="embedded DuckDB engine ready")

    def source(self, *, snapshot: Snapshot, rollup: Rollup | None) -> Source:
        if rollup is not None:
            return Source(
                name=rollup.name,
                table_sql="read_parquet(?)",
                table_params=(str(segment_local_path(segment=rollup)),),
                is_rollup=True,
                stored_dimensions=tuple(rollup.dimensions),
            )
        paths = [str(segment_local_path(segment=segment)) for segment in snapshot.segments]
        return Source(name="raw", table_sql="read_parquet(?, union_by_name = true)", table_params=(paths,))

    def execute(self, sql: str, params: list) -> list[tuple]:
        return _connection().execute(sql, params).fetchall()

    def publish(self, *, request, check_cancelled=None, on_progress=None) -> None:
        """Nothing to load: queries read the segment and rollup files the catalogue switches in."""
        return None

    def publish_undo(self, *, datasource_name: str, upload_id) -> bool:
        """Nothing loaded outside the catalogue, so nothing to remove."""
        return False
