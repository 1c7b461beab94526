"""Rollups built at publish time, like Druid's ingestion-time rollup.

Each rollup groups the rows of one data version by day and a few dimensions and stores the
additive metric parts per cell. `invoices` (the exact distinct count of invoice ids) is stored
per cell too; summing it across cells is exact only when no invoice spans two of the summed
cells, which is what `invoice_constant_dimensions` records (see analytics.routing).
"""

import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.metrics import ADDITIVE_PARTS, PARTS
from analytics.sql import quote

# Low-cardinality dimensions that rollups may keep.
ROLLUP_CANDIDATE_DIMENSIONS: tuple[str, ...] = (
    "branch",
    "product_line",
    "city",
    "customer_type",
    "gender",
    "payment",
)


@dataclass(frozen=True)
class RollupDefinition:
    name: str
    dimensions: tuple[str, ...]


# Smallest first; each keeps the day. The last keeps every low-cardinality dimension present.
ROLLUP_DEFINITIONS: tuple[RollupDefinition, ...] = (
    RollupDefinition("day_branch", ("branch",)),
    RollupDefinition("day_product_line", ("product_line",)),
    RollupDefinition("day_branch_product_line", ("branch", "product_line")),
    # Dimensions usually shared by all lines of an invoice: transactions stay exact here.
    RollupDefinition("day_invoice_dimensions", ("branch", "city", "customer_type", "gender", "payment")),
    RollupDefinition("day_hour_branch", ("branch", "hour")),
    RollupDefinition("day_all_dimensions", ROLLUP_CANDIDATE_DIMENSIONS),
)
# Rollup keys computed from stored columns; `hour` exists only when the rows have times.
COMPUTED_DIMENSIONS: dict[str, str] = {"hour": "hour(datetime)"}


def _dimension_sql(name: str) -> str:
    return COMPUTED_DIMENSIONS.get(name, quote(name))


@dataclass(frozen=True)
class BuiltRollup:
    name: str
    dimensions: tuple[str, ...]
    local_path: Path
    rows: int


@dataclass(frozen=True)
class VersionFacts:
    columns: list[str]
    has_invoice_id: bool
    invoice_constant_dimensions: list[str]
    rollups: list[BuiltRollup]


def _raw_table(paths: list[str]) -> str:
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}], union_by_name = true)"


def version_facts_build(*, segment_paths: list[Path], workdir: Path) -> VersionFacts:
    """Columns, per-invoice constant dimensions and every rollup of a prospective data version."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not segment_paths:
        return VersionFacts(columns=[], has_invoice_id=False, invoice_constant_dimensions=[], rollups=[])
    table = _raw_table([str(path) for path in segment_paths])
    with duckdb.connect() as con:
        con.execute("SET threads TO 2")
        # Bounded memory for large datasources: DuckDB spills its aggregation state to disk.
        con.execute("SET memory_limit = '500MB'")
        con.execute(f"SET temp_directory = '{workdir / 'duckdb-spill'}'")
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]  # noqa: S608
        # Curated rows carry every canonical column; an all-NULL invoice_id means "no invoice ids".
        has_invoice_id = "invoice_id" in columns and bool(
            con.execute(f"SELECT count(invoice_id) FROM {table}").fetchone()[0]  # noqa: S608
        )
        constant = _invoice_constant_dimensions(con, table, columns) if has_invoice_id else []
        rollups = []
        seen_dimension_sets: set[tuple[str, ...]] = set()
        available = set(columns)
        if "datetime" in columns and con.execute(f"SELECT count(datetime) FROM {table}").fetchone()[0]:  # noqa: S608
            available.add("hour")
        for definition in ROLLUP_DEFINITIONS:
            dimensions = tuple(d for d in definition.dimensions if d in available)
            if dimensions in seen_dimension_sets:
                continue
            seen_dimension_sets.add(dimensions)
            rollups.append(_rollup_build(con, table, definition.name, dimensions, has_invoice_id, columns, workdir))
    return VersionFacts(
        columns=columns, has_invoice_id=has_invoice_id, invoice_constant_dimensions=constant, rollups=rollups
    )


def _invoice_constant_dimensions(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[str]:
    """Dimensions (and `date`) that never take two values within one invoice; NULL counts as a value.

    min ≠ max, or some but not all values NULL, means two values: cheaper than count(DISTINCT …).
    """
    candidates = ["date", *[d for d in ROLLUP_CANDIDATE_DIMENSIONS if d in columns]]
    if "datetime" in columns:
        candidates.append("hour")
    inner_checks = ", ".join(
        f"(min({_dimension_sql(name)}) IS DISTINCT FROM max({_dimension_sql(name)}) "
        f"OR (count({_dimension_sql(name)}) > 0 AND count({_dimension_sql(name)}) < count(*))) AS v_{i}"
        for i, name in enumerate(candidates)
    )
    outer = ", ".join(f"coalesce(bool_or(v_{i}), false)" for i in range(len(candidates)))
    sql = (
        f"SELECT {outer} FROM (SELECT {inner_checks} FROM {table} "  # noqa: S608
        "WHERE invoice_id IS NOT NULL GROUP BY invoice_id)"
    )
    row = con.execute(sql).fetchone()
    return [name for name, varies in zip(candidates, row, strict=True) if not varies]


def _rollup_build(
    con: duckdb.DuckDBPyConnection,
    table: str,
    name: str,
    dimensions: tuple[str, ...],
    has_invoice_id: bool,
    columns: list[str],
    workdir: Path,
) -> BuiltRollup:
    keys = ["date", *dimensions]
    parts = [p for p in ADDITIVE_PARTS if PARTS[p].needs_column is None or PARTS[p].needs_column in columns]
    if has_invoice_id:
        parts.append("invoices")
    select = [f"{_dimension_sql(key)} AS {quote(key)}" for key in keys] + [
        f"{_raw_or_null(PARTS[p].raw_sql, columns)} AS {p}" for p in parts
    ]
    group = ", ".join(_dimension_sql(key) for key in keys)
    path = workdir / f"{name}-{uuid.uuid4().hex}.parquet"
    escaped = str(path).replace("'", "''")
    con.execute(
        f"COPY (SELECT {', '.join(select)} FROM {table} GROUP BY {group} ORDER BY {group}) "  # noqa: S608
        f"TO '{escaped}' (FORMAT parquet, COMPRESSION zstd)"
    )
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{escaped}')").fetchone()[0]  # noqa: S608
    return BuiltRollup(name=name, dimensions=dimensions, local_path=path, rows=int(rows))


def _raw_or_null(raw_sql: str, columns: list[str]) -> str:
    """An aggregate over a column the rows lack (e.g. no rating) is NULL, not an error."""
    for column in ("revenue", "cost", "gross_profit", "quantity", "tax", "rating"):
        if f"({column})" in raw_sql and column not in columns:
            return "CAST(NULL AS DOUBLE)"
    return raw_sql
