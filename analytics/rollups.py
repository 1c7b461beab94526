"""Rollups built at publish time, like Druid's ingestion-time rollup.

Each rollup groups the rows of one data version by day and a few dimensions and stores the
additive metric parts per cell. `invoices` (the exact distinct count of invoice ids) is stored
per cell too; summing it across cells is exact only when no invoice spans two of the summed
cells, which is what `invoice_constant_dimensions` records (see analytics.routing).
"""

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics.metrics import ADDITIVE_PARTS, PARTS, Part
from analytics.sql import quote

# DuckDB's share of the worker's memory while rollups are built: more spills less (publishing
# 3.8 M rows: 3.0 s at 320 MB, 2.6 s here, 2.5 s at 448 MB) but comes on top of what validation
# left allocated, and the worker's whole peak must stay under 1 GB (bench/ingest.py, kernel peak
# RSS: 0.86 GB at 320 MB, 0.90–0.93 GB here, 1.00 GB at 448 MB).
ROLLUP_MEMORY_LIMIT = "384MB"

# DuckDB draws a progress bar on stderr for queries over 2 s, even into a worker's log file.
DUCKDB_QUIET = "SET enable_progress_bar = false"

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
    # The metric parts its cells hold: a rollup stored by an earlier release may lack newer ones.
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionFacts:
    columns: list[str]
    has_invoice_id: bool
    invoice_constant_dimensions: list[str]
    rollups: list[BuiltRollup]


def _raw_table(paths: list[str]) -> str:
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    return f"read_parquet([{listed}], union_by_name = true)"


@contextlib.contextmanager
def _connection(workdir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    workdir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET threads TO 2")
        con.execute(DUCKDB_QUIET)
        # Bounded memory for large datasources: DuckDB spills its aggregation state to disk.
        con.execute(f"SET memory_limit = '{ROLLUP_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = '{workdir / 'duckdb-spill'}'")
        yield con


def _described(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of each column of `table`."""
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]  # noqa: S608


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [name for name, _ in _described(con, table)]


def version_facts_build(*, segment_paths: list[Path], workdir: Path) -> VersionFacts:
    """Columns, per-invoice constant dimensions and every rollup of a prospective data version."""
    if not segment_paths:
        return VersionFacts(columns=[], has_invoice_id=False, invoice_constant_dimensions=[], rollups=[])
    table = _raw_table([str(path) for path in segment_paths])
    with _connection(workdir) as con:
        columns = _columns(con, table)
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
                finer_cells = _raw_table([str(finer.local_path)])
                built[name] = _rollup_sum(con, finer_cells, finer.dimensions, name, dimensions, workdir)
            else:
                built[name] = _rollup_build(con, table, name, dimensions, has_invoice_id, columns, workdir)
        rollups = [built[name] for name, _ in wanted]
    return VersionFacts(
        columns=columns, has_invoice_id=has_invoice_id, invoice_constant_dimensions=constant, rollups=rollups
    )


def version_facts_append(
    *,
    previous: VersionFacts,
    previous_paths: list[Path],
    added_path: Path,
    workdir: Path,
    replaced_days: tuple[dt.date, dt.date] | None = None,
    shared: "SharedInvoices | None" = None,
) -> VersionFacts | None:
    """The facts of `previous` (the version of `previous_paths`) with the rows of `added_path`
    appended, from its rollups and the added rows alone: publishing a day's file to a datasource of
    years costs that file, not the years. None when that would not be exact; then build from rows.

    Cells add up exactly, the distinct invoice count too when no invoice has lines on both
    sides (checked: an invoice id of the added rows among the previous ones means None), and a
    dimension is then constant within every invoice when it is on each side.

    `replaced_days`: a replace's first and last day. Every row of those days is swapped, so the
    previous cells of those days are dropped (rollups group by day: exactly those rows' cells),
    and `previous_paths` are the rows kept. A dimension constant within every invoice of the
    previous version still is within the rows kept; one that varied only in the swapped rows is
    still taken as varying (queries then read finer data, never a wrong count).

    `shared`: `invoices_already_published` for these rows, when the caller counted them already.
    """
    if not previous.rollups or not previous_paths:
        return None
    # The cheap refusal first: it reads one column, where building the added facts reads all.
    if previous.has_invoice_id:
        if shared is None:
            shared = invoices_already_published(previous_paths=previous_paths, added_path=added_path, workdir=workdir)
        if shared.ids_reused:
            return None
    added = version_facts_build(segment_paths=[added_path], workdir=workdir / "added")
    if added.has_invoice_id != previous.has_invoice_id or _rollup_shapes(added) != _rollup_shapes(previous):
        return None
    previous_by_name = {rollup.name: rollup for rollup in previous.rollups}
    with _connection(workdir) as con:
        if any(
            _described(con, _raw_table([str(rollup.local_path)]))
            != _described(con, _raw_table([str(previous_by_name[rollup.name].local_path)]))
            for rollup in added.rollups
        ):
            return None  # e.g. rollups stored by an earlier release with other part types
        rollups = [
            _rollup_sum(
                con,
                _cells_kept_and_added(previous_by_name[rollup.name].local_path, rollup.local_path, replaced_days),
                rollup.dimensions,
                rollup.name,
                rollup.dimensions,
                workdir,
            )
            for rollup in added.rollups
        ]
        columns = _columns(con, _raw_table([str(path) for path in [*previous_paths, added_path]]))
    constant = [name for name in previous.invoice_constant_dimensions if name in added.invoice_constant_dimensions]
    return VersionFacts(
        columns=columns, has_invoice_id=added.has_invoice_id, invoice_constant_dimensions=constant, rollups=rollups
    )


def _cells_kept_and_added(previous: Path, added: Path, replaced_days: tuple[dt.date, dt.date] | None) -> str:
    """The previous rollup's cells (without those of replaced days) and the added rows' cells, as one table."""
    if replaced_days is None:
        return _raw_table([str(previous), str(added)])
    start, end = (day.isoformat() for day in replaced_days)
    return (
        f"(SELECT * FROM {_raw_table([str(previous)])} WHERE date < DATE '{start}' OR date > DATE '{end}' "  # noqa: S608
        f"UNION ALL BY NAME SELECT * FROM {_raw_table([str(added)])})"
    )


def _rollup_shapes(facts: VersionFacts) -> dict[str, tuple[str, ...]]:
    return {rollup.name: rollup.dimensions for rollup in facts.rollups}


@dataclass(frozen=True)
class SharedInvoices:
    """Added lines whose invoice was published already on the same day (the same sales sent
    again, or an invoice split across files), and how many such invoices.

    `ids_reused`: some added invoice id was published before, on any day (ids that restart per
    day or store too); distinct invoice counts of the two sides then do not add up.
    """

    lines: int
    invoices: int
    ids_reused: bool = False

    def __bool__(self) -> bool:
        return self.lines > 0


NO_SHARED_INVOICES = SharedInvoices(0, 0)


def invoices_already_published(*, previous_paths: list[Path], added_path: Path, workdir: Path) -> SharedInvoices:
    """The added rows' lines whose invoice id was published on the same day, and whether any id was."""
    if not previous_paths:
        return NO_SHARED_INVOICES
    previous = _raw_table([str(path) for path in previous_paths])
    added = _raw_table([str(added_path)])
    # Only the invoice id and date columns of the previous rows are read; row groups whose id
    # range misses the added ids are skipped.
    sql = (
        f"WITH known AS (SELECT DISTINCT invoice_id, date FROM {previous} p WHERE invoice_id IN "  # noqa: S608
        f"(SELECT invoice_id FROM {added} WHERE invoice_id IS NOT NULL)) "
        f"SELECT (SELECT count(*) FROM known) > 0, count(*), count(DISTINCT a.invoice_id) "
        f"FROM {added} a SEMI JOIN known k ON a.invoice_id = k.invoice_id AND a.date = k.date"
    )
    with _connection(workdir) as con:
        if "invoice_id" not in _columns(con, previous) or "invoice_id" not in _columns(con, added):
            return NO_SHARED_INVOICES
        reused, lines, invoices = con.execute(sql).fetchone()
    return SharedInvoices(int(lines), int(invoices), ids_reused=bool(reused))


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


def _rollup_sum(
    con: duckdb.DuckDBPyConnection,
    source: str,
    source_dimensions: tuple[str, ...],
    name: str,
    dimensions: tuple[str, ...],
    workdir: Path,
) -> BuiltRollup:
    """A rollup summed from the cells of built ones (`source`, a table of one schema): a finer one,
    or the same one of two sets of rows."""
    keys = [quote(key) for key in ("date", *dimensions)]
    # Each part keeps the type the rows gave it, so every rollup of a version has one schema.
    parts = [
        f"CAST(sum({quote(column)}) AS {column_type}) AS {quote(column)}"
        for column, column_type in _described(con, source)
        if column not in ("date", *source_dimensions)
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
        f"{_raw_or_null(PARTS[p], columns)} AS {p}" for p in parts
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
    parts = tuple(column for column, _ in _described(con, _raw_table([str(path)])) if column in PARTS)
    return BuiltRollup(name=name, dimensions=dimensions, local_path=path, rows=int(rows), parts=parts)


def _raw_or_null(part: Part, columns: list[str]) -> str:
    """An aggregate over a column the rows lack (e.g. no rating) is NULL, not an error."""
    if any(column not in columns for column in part.reads):
        return "CAST(NULL AS DOUBLE)"
    return part.raw_sql
