"""One SQL builder for every engine; the differences between engines are small dialect objects.

Values are always bound parameters; identifiers come only from the validated dimension list.
"""

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from analytics.metrics import METRICS, PARTS, metric_expression, metric_parts
from analytics.query import (
    DISTINCT_VALUES,
    QUERY_COLUMN_NAMES,
    Breakdown,
    DistinctCount,
    Filters,
    Grain,
    QueryError,
    QuerySpec,
    Summary,
    TimeSeries,
    TopN,
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
BUCKET = "bucket"


# Dimensions computed from the date or time rather than stored: name → column they need
# (None: the day, which every rollup keeps).
VIRTUAL_DIMENSIONS: dict[str, str | None] = {"weekday": None, "hour": "hour"}

# Names a stored dimension may not take (ingestion renames a source column so named): the
# builder's own columns, the metrics, the dimensions computed from the date and time, and
# Druid's time column.
RESERVED_DIMENSION_NAMES: frozenset[str] = frozenset({*QUERY_COLUMN_NAMES, *METRICS, *VIRTUAL_DIMENSIONS, "__time"})


class Dialect(Protocol):
    name: str
    # Time-grain map keyed by ISO-8601 period (Superset's habit): grain → SQL template over {column}.
    time_grains: dict[Grain, str]
    date_column: str
    # SQL for each virtual dimension: weekday is ISO (1 = Monday … 7 = Sunday), hour is 0–23.
    virtual_dimensions: dict[str, str]

    def parameter(self, params: list, value: Any) -> str:
        """Append `value` to `params` and return its placeholder."""
        ...

    def date_range(self, params: list, start: dt.date | None, end: dt.date | None) -> list[str]:
        """WHERE clauses for an inclusive whole-day range."""
        ...

    def order_term(self, sql: str, *, direction: str | None = None) -> str:
        """An ORDER BY term that sorts NULLs last, ascending unless `direction` says otherwise."""
        ...


class DuckDBDialect:
    name = "duckdb"
    date_column = "date"
    time_grains = {
        Grain.DAY: "{column}",
        Grain.WEEK: "date_trunc('week', {column})",
        Grain.MONTH: "date_trunc('month', {column})",
        Grain.QUARTER: "date_trunc('quarter', {column})",
        Grain.YEAR: "date_trunc('year', {column})",
    }
    virtual_dimensions = {"weekday": "isodow(date)", "hour": "hour(datetime)"}

    def parameter(self, params: list, value: Any) -> str:
        params.append(value)
        return "?"

    def date_range(self, params: list, start: dt.date | None, end: dt.date | None) -> list[str]:
        clauses = []
        if start is not None:
            clauses.append(f"{self.date_column} >= {self.parameter(params, start)}")
        if end is not None:
            clauses.append(f"{self.date_column} <= {self.parameter(params, end)}")
        return clauses

    def order_term(self, sql: str, *, direction: str | None = None) -> str:
        # DuckDB sorts NULLs last in both directions by default; said explicitly with a direction.
        return sql if direction is None else f"{sql} {direction} NULLS LAST"


def quote(identifier: str) -> str:
    if not _IDENTIFIER.match(identifier):
        raise QueryError(f"Invalid column name {identifier!r}.")
    return f'"{identifier}"'


@dataclass(frozen=True)
class Source:
    """Where a query reads: raw rows or one rollup (parts pre-summed per cell)."""

    name: str  # "raw" or the rollup's name
    table_sql: str  # e.g. read_parquet(?) or "sales"
    table_params: tuple = ()
    is_rollup: bool = False
    # SQL per metric part where the source stores parts itself (Druid's rolled-up metric columns).
    part_sql: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Dimensions the source stores as columns, including virtual ones a rollup precomputed (hour).
    stored_dimensions: tuple[str, ...] = ()


@dataclass
class CompiledQuery:
    sql: str
    params: list
    dimension_columns: list[str]
    metric_columns: list[str]
    bucket: bool = False
    extra: dict = field(default_factory=dict)


def compile_spec(
    spec: QuerySpec, *, source: Source, dialect: Dialect, has_invoice_id: bool, filters: Filters | None = None
) -> CompiledQuery:
    """SQL for one spec (with `filters` overriding the spec's, e.g. for a comparison period)."""
    filters = filters or spec.filters
    params: list = list(source.table_params)
    group_sql: list[str] = []
    group_aliases: list[str] = []
    if isinstance(spec, TimeSeries):
        group_sql.append(dialect.time_grains[spec.grain].format(column=dialect.date_column))
        group_aliases.append(BUCKET)
    for dimension in spec.dimensions:
        stored = dimension in source.stored_dimensions
        group_sql.append(quote(dimension) if stored else dialect.virtual_dimensions.get(dimension) or quote(dimension))
        group_aliases.append(dimension)
    parts = metric_parts(spec.metric_names, has_invoice_id=has_invoice_id)
    part_sql = [f"{_part_sql(part, source)} AS {part}" for part in parts]
    where = _where(filters=filters, dialect=dialect, params=params)
    inner_select = [f"{sql} AS {quote(alias)}" for sql, alias in zip(group_sql, group_aliases, strict=True)]
    inner = f"SELECT {', '.join(inner_select + part_sql)} FROM {source.table_sql}"  # noqa: S608
    if where:
        inner += " WHERE " + " AND ".join(where)
    if group_sql:
        inner += " GROUP BY " + ", ".join(group_sql)
    if isinstance(spec, DistinctCount):
        sql = f"SELECT count(*) AS {quote(DISTINCT_VALUES)} FROM ({inner}) AS cells"  # noqa: S608
        return CompiledQuery(sql=sql, params=params, dimension_columns=[], metric_columns=[DISTINCT_VALUES])
    metric_columns = list(spec.metric_names)
    metric_sql = {name: metric_expression(name, has_invoice_id=has_invoice_id) for name in metric_columns}
    outer_select = [quote(alias) for alias in group_aliases] + [
        f"{metric_sql[name]} AS {quote(name)}" for name in metric_columns
    ]
    sql = f"SELECT {', '.join(outer_select)} FROM ({inner}) AS cells"  # noqa: S608
    sql += _order_and_limit(spec, group_aliases, dialect, metric_sql)
    return CompiledQuery(
        sql=sql,
        params=params,
        dimension_columns=group_aliases,
        metric_columns=metric_columns,
        bucket=isinstance(spec, TimeSeries),
    )


def compile_date_extent(*, source: Source, dialect: Dialect, filters: Filters) -> CompiledQuery:
    """SQL for the first and last day of the rows `filters` keep (e.g. the days a branch scope sees)."""
    params: list = list(source.table_params)
    column = dialect.date_column
    sql = f"SELECT min({column}), max({column}) FROM {source.table_sql}"  # noqa: S608
    where = _where(filters=filters, dialect=dialect, params=params)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return CompiledQuery(sql=sql, params=params, dimension_columns=[], metric_columns=[])


def _part_sql(part: str, source: Source) -> str:
    if part in source.part_sql:
        return source.part_sql[part]
    return f"sum({part})" if source.is_rollup else PARTS[part].raw_sql


def _where(*, filters: Filters, dialect: Dialect, params: list) -> list[str]:
    if filters.dimensions & set(VIRTUAL_DIMENSIONS):
        raise QueryError("weekday and hour can be grouped by, not filtered on.")
    clauses = dialect.date_range(params, filters.start, filters.end)
    for dimension, values in filters.include.items():
        if not values:
            clauses.append("1 = 0")  # an empty `in` list matches nothing
            continue
        clauses.append(_in_list(dimension, values, dialect=dialect, params=params, negated=False))
    for dimension, values in filters.exclude.items():
        clauses.append(_in_list(dimension, values, dialect=dialect, params=params, negated=True))
    return clauses


def _in_list(dimension: str, values: tuple, *, dialect: Dialect, params: list, negated: bool) -> str:
    """`dimension` in (or not in) `values`, where None stands for rows without a value: SQL's
    `IN (NULL)` matches nothing and `NOT IN (…, NULL)` drops every row."""
    column = quote(dimension)
    known = [value for value in values if value is not None]
    null_listed = len(known) < len(values)
    terms = []
    if known:
        placeholders = ", ".join(dialect.parameter(params, value) for value in known)
        terms.append(f"{column} {'NOT IN' if negated else 'IN'} ({placeholders})")
    if not negated:
        terms += [f"{column} IS NULL"] if null_listed else []
        return terms[0] if len(terms) == 1 else f"({' OR '.join(terms)})"
    if null_listed:
        return f"({column} IS NOT NULL AND {terms[0]})" if known else f"{column} IS NOT NULL"
    # NULL is "not in" a list of values: rows without a value are kept, as a person would expect.
    return f"({column} IS NULL OR {terms[0]})"


# Druid takes a LIMIT up to 2³¹ − 1 (a larger one was a 503); no answer has that many rows, so
# a larger limit means the same as this one on every engine.
ENGINE_LIMIT_MAX = 2**31 - 1


def _limit(value: int) -> int:
    return min(int(value), ENGINE_LIMIT_MAX)


def _ranked(column: str, metric_sql: dict[str, str]) -> str:
    """What a ranking compares: a metric rounded to its rank decimals, so that values equal but
    for summation noise (every margin 4.7619…% to the 15th digit) tie and the dimension orders
    them, the same for every filter, user and engine. The metric's expression, not its alias:
    an alias inside an ORDER BY expression is not resolved alike by every engine."""
    metric = METRICS.get(column)
    decimals = metric.rank_decimals if metric is not None else None
    return quote(column) if decimals is None else f"ROUND({metric_sql[column]}, {decimals})"


def _order_and_limit(spec: QuerySpec, group_aliases: list[str], dialect: Dialect, metric_sql: dict[str, str]) -> str:
    if isinstance(spec, TimeSeries):
        order = [dialect.order_term(quote(alias)) for alias in group_aliases]
        return " ORDER BY " + ", ".join(order)
    if isinstance(spec, TopN):
        direction = "ASC" if spec.ascending else "DESC"
        ranking = dialect.order_term(_ranked(spec.metric, metric_sql), direction=direction)
        return f" ORDER BY {ranking}, {dialect.order_term(quote(spec.dimension))} LIMIT {_limit(spec.n)}"
    if isinstance(spec, Breakdown):
        sort = spec.sort or spec.metrics[0]
        direction = "DESC" if spec.descending else "ASC"
        tiebreak = ", ".join(dialect.order_term(quote(alias)) for alias in group_aliases)
        sql = f" ORDER BY {dialect.order_term(_ranked(sort, metric_sql), direction=direction)}, {tiebreak}"
        return sql + (f" LIMIT {_limit(spec.limit)}" if spec.limit else "")
    if isinstance(spec, Summary):
        return ""
    raise QueryError(f"Unsupported spec {type(spec).__name__}.")
