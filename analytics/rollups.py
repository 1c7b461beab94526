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

# DuckDB's share of the worker's memory while rollups are built: more spills less (for 3.8 M rows
# 320 MB takes about 0.5 s longer than 500 MB) but comes on top of what validation left
# allocated, and the worker's whole peak must stay under 1 GB (bench/ingest.py: 0.89 GB here,
# 1.00 GB at 400 MB).
ROLLUP_MEMORY_LIMIT = "320MB"

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
        con.execute(f"SET memory_limit = '{ROLLUP_MEMORY_LIMIT}'")
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
        wanted: list[tuple[str, tuple[str, ...]]] = []
        for definition in ROLLUP_DEFINITIONS:
            dimensions = tuple(d for d in definition.dimensions if d in available)
            if dimensions not in seen_dimension_sets:
                seen_dimension_sets.add(dimensions)
                wanted.append((definition.name, dimensions))
        built: dict[str, BuiltRollup] = {}
        # Finest first, so coarser rollups can be summed from a built one instead of the rows.
        for name, dimensions in sorted(wanted, key=lambda item: -len(item[1])):
            finer = _finer_rollup(list(built.values()), dimensions, constant if has_invoice_id else None)
            if finer is not None:
                built[name] = _rollup_derive(con, finer, name, dimensions, workdir)
            else:
                built[name] = _rollup_build(con, table, name, dimensions, has_invoice_id, columns, workdir)
        rollups = [built[name] for name, _ in wanted]
    return VersionFacts(
        columns=columns, has_invoice_id=has_invoice_id, invoice_constant_dimensions=constant, rollups=rollups
    )


def _finer_rollup(
    built: list[BuiltRollup], dimensions: tuple[str, ...], constant: list[str] | None
) -> BuiltRollup | None:
    """The smallest built rollup whose cells sum exactly to the cells of `dimensions`.

    Its dimensions must include these. Additive parts always sum exactly; the distinct invoice
    count does only when each invoice sits in one of the summed cells, i.e. when every dimension
    summed away is constant within an invoice (`constant` is None when there are no invoice ids).
    """
    exact = [
        rollup
        for rollup in built
        if set(dimensions) <= set(rollup.dimensions)
        and (constant is None or set(rollup.dimensions) - set(dimensions) <= set(constant))
    ]
    return min(exact, key=lambda rollup: rollup.rows) if exact else None


def _rollup_derive(
    con: duckdb.DuckDBPyConnection, finer: BuiltRollup, name: str, dimensions: tuple[str, ...], workdir: Path
) -> BuiltRollup:
    """A rollup summed from a finer one: a few thousand cells read instead of every row."""
    source = "read_parquet('" + str(finer.local_path).replace("'", "''") + "')"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608
    keys = [quote(key) for key in ("date", *dimensions)]
    # Each part keeps the type the rows gave it, so every rollup of a version has one schema.
    parts = [
        f"CAST(sum({quote(column)}) AS {column_type}) AS {quote(column)}"
        for column, column_type, *_ in described
        if column not in ("date", *finer.dimensions)
    ]
    group = ", ".join(keys)
    return _rollup_write(
        con,
        f"SELECT {group}, {', '.join(parts)} FROM {source} GROUP BY {group} ORDER BY {group}",  # noqa: S608
        name,
        dimensions,
        workdir,
    )


def _invoice_constant_dimensions(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> list[str]:
    """Dimensions (and `date`) that never take two values within one invoice; NULL counts as a value.

    min ≠ max, or some but not all values NULL, means two values: cheaper than count(DISTINCT …).
    Text dimensions are compared by their 64-bit hashes, several times faster than the strings,
    and exact: only where no two distinct values of the dimension share a hash (checked first).
    """
    candidates = ["date", *[d for d in ROLLUP_CANDIDATE_DIMENSIONS if d in columns]]
    if "datetime" in columns:
        candidates.append("hour")
    hashed = set(_hash_injective_dimensions(con, table, [d for d in candidates if d in ROLLUP_CANDIDATE_DIMENSIONS]))
    inner_checks = ", ".join(f"({_ordered_sql(name, hashed)}) AS v_{i}" for i, name in enumerate(candidates))
    outer = ", ".join(f"coalesce(bool_or(v_{i}), false)" for i in range(len(candidates)))
    sql = (
        f"SELECT {outer} FROM (SELECT {inner_checks} FROM {table} "  # noqa: S608
        "WHERE invoice_id IS NOT NULL GROUP BY invoice_id)"
    )
    row = con.execute(sql).fetchone()
    return [name for name, varies in zip(candidates, row, strict=True) if not varies]


def _ordered_sql(name: str, hashed: set[str]) -> str:
    """True for an invoice where `name` takes two values (NULL being one)."""
    value = _dimension_sql(name)
    compared = f"hash({value})" if name in hashed else value
    return f"min({compared}) IS DISTINCT FROM max({compared}) OR (count({value}) > 0 AND count({value}) < count(*))"


def _hash_injective_dimensions(con: duckdb.DuckDBPyConnection, table: str, dimensions: list[str]) -> list[str]:
    """The dimensions whose distinct non-NULL values all hash differently."""
    if not dimensions:
        return []
    checks = ", ".join(
        f"count(DISTINCT {quote(name)}) = count(DISTINCT hash({quote(name)})) FILTER (WHERE {quote(name)} IS NOT NULL)"
        for name in dimensions
    )
    row = con.execute(f"SELECT {checks} FROM {table}").fetchone()  # noqa: S608
    return [name for name, injective in zip(dimensions, row, strict=True) if injective]


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
    query = f"SELECT {', '.join(select)} FROM {table} GROUP BY {group} ORDER BY {group}"  # noqa: S608
    return _rollup_write(con, query, name, dimensions, workdir)


def _rollup_write(
    con: duckdb.DuckDBPyConnection, query: str, name: str, dimensions: tuple[str, ...], workdir: Path
) -> BuiltRollup:
    path = workdir / f"{name}-{uuid.uuid4().hex}.parquet"
    escaped = str(path).replace("'", "''")
    con.execute(f"COPY ({query}) TO '{escaped}' (FORMAT parquet, COMPRESSION zstd)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{escaped}')").fetchone()[0]  # noqa: S608
    return BuiltRollup(name=name, dimensions=dimensions, local_path=path, rows=int(rows))


def _raw_or_null(raw_sql: str, columns: list[str]) -> str:
    """An aggregate over a column the rows lack (e.g. no rating) is NULL, not an error."""
    for column in ("revenue", "cost", "gross_profit", "quantity", "tax", "rating"):
        if f"({column})" in raw_sql and column not in columns:
            return "CAST(NULL AS DOUBLE)"
    return raw_sql
