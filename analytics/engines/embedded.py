"""The embedded engine: Parquet segments on local disk, queried by DuckDB."""

from pathlib import Path

import duckdb
from django.conf import settings

from analytics.engines import EngineHealth


def segments_root() -> Path:
    """Where the embedded engine keeps (copies of) the active segments and rollups."""
    return Path(settings.VAR_DIR) / "engine"


class EmbeddedEngine:
    name = "embedded"

    def health(self) -> EngineHealth:
        root = segments_root()
        try:
            root.mkdir(parents=True, exist_ok=True)
            with duckdb.connect() as con:
                con.execute("SELECT 1").fetchone()
        except (OSError, duckdb.Error) as exc:
            return EngineHealth(ok=False, detail=f"embedded engine unavailable ({type(exc).__name__})")
        return EngineHealth(ok=True, detail="embedded DuckDB engine ready")
