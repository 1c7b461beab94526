"""Typed query specs: every question a dashboard, REST or GraphQL asks is one of these."""

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

from analytics.metrics import METRICS, PARTS, SUMMARY_METRICS
from sales_analytics.text import text_tidy

# Names the SQL builder gives its own columns (the metric parts of its inner query, the time
# bucket, the subquery) and the APIs add to a time series' rows (whether a bucket is partial): a
# dimension of the same name would be read as one of them. Ingestion renames such source columns
# (analytics.sql.RESERVED_DIMENSION_NAMES); this refuses the rest.
QUERY_COLUMN_NAMES: frozenset[str] = frozenset({*PARTS, "bucket", "cells", "partial", "distinct_values"})


class QueryError(ValueError):
    """A spec that cannot be answered as asked (unknown metric or dimension, bad range)."""


class ResultTooLarge(QueryError):
    """An answer with more rows than may be sent at once: the caller must pass a limit or narrow the filters."""

    code = "result_too_large"

    def __init__(self, *, maximum: int) -> None:
        super().__init__(
            f"The answer has more than {maximum:,} rows (at least {maximum + 1:,}): pass `limit` (at most "
            f"{maximum:,}) to get the first rows in `sort` order, or narrow the filters."
        )
        self.maximum = maximum


class Grain(StrEnum):
    DAY = "P1D"
    WEEK = "P1W"
    MONTH = "P1M"
    QUARTER = "P3M"
    YEAR = "P1Y"

    @classmethod
    def parse(cls, value: str) -> "Grain":
        aliases = {"day": cls.DAY, "week": cls.WEEK, "month": cls.MONTH, "quarter": cls.QUARTER, "year": cls.YEAR}
        try:
            return aliases.get(value.lower()) or cls(value.upper())
        except ValueError:
            raise QueryError(f"Unknown grain {value!r}: use day, week, month, quarter or year.") from None


class Comparison(StrEnum):
    PREVIOUS_PERIOD = "previous_period"
    SAME_PERIOD_LAST_YEAR = "same_period_last_year"


@dataclass(frozen=True)
class Filters:
    """Inclusive whole-day range and `in` / `not in` lists per dimension; empty means all data."""

    start: dt.date | None = None
    end: dt.date | None = None
    include: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise QueryError("start must be on or before end.")
        # Normalised so equal filters hash and cache alike.
        # Values tidied as files' text is (sales_analytics.text), so a decomposed "Zürich" matches.
        object.__setattr__(self, "include", {k: _values_tidy(v) for k, v in sorted(self.include.items())})
        object.__setattr__(self, "exclude", {k: _values_tidy(v) for k, v in sorted(self.exclude.items()) if v})

    @property
    def dimensions(self) -> set[str]:
        return set(self.include) | set(self.exclude)

    def shifted(self, start: dt.date, end: dt.date) -> "Filters":
        return replace(self, start=start, end=end)


def _values_tidy(values: tuple[str | None, ...]) -> tuple[str | None, ...]:
    # None (rows without a value, e.g. a top-N's "(none)") sorts first: it cannot be compared with text.
    tidied = {text_tidy(value) if isinstance(value, str) else value for value in values}
    return tuple(sorted(tidied, key=lambda value: (value is not None, value or "")))


@dataclass(frozen=True)
class QuerySpec:
    datasource: str
    filters: Filters = field(default_factory=Filters)
    comparison: Comparison | None = None

    kind = "spec"

    @property
    def metric_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def dimensions(self) -> tuple[str, ...]:
        return ()

    def validate(self) -> None:
        for name in self.metric_names:
            if name not in METRICS:
                raise QueryError(f"Unknown metric {name!r}. Known: {', '.join(METRICS)}.")
        # A result row is keyed by column name: a dimension named like a metric (the `revenue`
        # column) or given twice would silently overwrite another column.
        if clash := sorted(set(self.dimensions) & set(METRICS)):
            raise QueryError(f"{', '.join(clash)} is a metric, not a dimension.")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise QueryError("A dimension can be asked for once.")
        if clash := sorted((set(self.dimensions) | self.filters.dimensions) & QUERY_COLUMN_NAMES):
            raise QueryError(
                f"{', '.join(clash)} cannot be grouped or filtered by: the query layer names its own columns so."
            )

    def dimensions_renamed(self, renamed: dict[str, str]) -> "QuerySpec":
        """This spec asking for `renamed[d]` wherever it asked for dimension `d`."""
        return self

    def cache_key(self) -> str:
        payload = json.dumps({"kind": self.kind, **asdict(self)}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


# SQL engines take a LIMIT as a 64-bit integer; a larger one fails in the engine (was a 500).
LIMIT_MAX = 2**63 - 1
TOP_N_MAX = 1000


@dataclass(frozen=True)
class Summary(QuerySpec):
    metrics: tuple[str, ...] = SUMMARY_METRICS
    kind = "summary"

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.metrics


@dataclass(frozen=True)
class TimeSeries(QuerySpec):
    metrics: tuple[str, ...] = ("revenue",)
    grain: Grain = Grain.DAY
    # An optional second dimension splits the series (e.g. one line per branch).
    split_by: str | None = None
    kind = "timeseries"

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.metrics

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (self.split_by,) if self.split_by else ()

    def dimensions_renamed(self, renamed: dict[str, str]) -> "TimeSeries":
        return replace(self, split_by=renamed.get(self.split_by, self.split_by)) if self.split_by else self


@dataclass(frozen=True)
class TopN(QuerySpec):
    dimension: str = "product_line"
    metric: str = "revenue"
    n: int = 10
    # Extra metrics returned alongside the ranking metric.
    also: tuple[str, ...] = ()
    ascending: bool = False
    kind = "topn"

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (self.metric, *[m for m in self.also if m != self.metric])

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (self.dimension,)

    def dimensions_renamed(self, renamed: dict[str, str]) -> "TopN":
        return replace(self, dimension=renamed.get(self.dimension, self.dimension))

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.n <= TOP_N_MAX:
            raise QueryError(f"n must be between 1 and {TOP_N_MAX}.")


@dataclass(frozen=True)
class Breakdown(QuerySpec):
    by: tuple[str, ...] = ("branch",)
    metrics: tuple[str, ...] = ("revenue",)
    sort: str | None = None
    descending: bool = True
    limit: int | None = None
    kind = "breakdown"

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.metrics

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self.by

    def dimensions_renamed(self, renamed: dict[str, str]) -> "Breakdown":
        by = tuple(renamed.get(name, name) for name in self.by)
        return replace(self, by=by, sort=renamed.get(self.sort, self.sort) if self.sort else None)

    def validate(self) -> None:
        super().validate()
        if not 1 <= len(self.by) <= 2:
            raise QueryError("A breakdown has one or two dimensions.")
        if self.sort is not None and self.sort not in (*self.metrics, *self.by):
            raise QueryError("sort must be one of the breakdown's metrics or dimensions.")
        if self.limit is not None and not 1 <= self.limit <= LIMIT_MAX:
            raise QueryError(f"limit must be between 1 and {LIMIT_MAX:,}.")


@dataclass(frozen=True)
class DistinctCount(QuerySpec):
    """How many values of `dimension` the filtered rows have (rows without one count as one
    value, as a breakdown shows them): what a top-N leaves out, without fetching every value."""

    dimension: str = "branch"
    kind = "distinct_count"

    @property
    def metric_names(self) -> tuple[str, ...]:
        # The cells counted are a breakdown's: `lines` is the cheapest part every source keeps.
        return ("lines",)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (self.dimension,)

    def dimensions_renamed(self, renamed: dict[str, str]) -> "DistinctCount":
        return replace(self, dimension=renamed.get(self.dimension, self.dimension))


# The one column of a DistinctCount's answer.
DISTINCT_VALUES = "distinct_values"


def bucket_last_day(start: dt.date, grain: Grain) -> dt.date:
    """The last day of the time bucket that begins on `start` (an ISO week begins on Monday)."""
    if grain is Grain.DAY:
        return start
    if grain is Grain.WEEK:
        return start + dt.timedelta(days=6)
    months = {Grain.MONTH: 1, Grain.QUARTER: 3, Grain.YEAR: 12}[grain]
    month_index = start.year * 12 + start.month - 1 + months
    return dt.date(month_index // 12, month_index % 12 + 1, 1) - dt.timedelta(days=1)


def bucket_partial(bucket: dt.date, grain: Grain, *, start: dt.date | None, end: dt.date | None) -> bool:
    """Whether the period [start, end] (either side open) cuts the bucket that begins on `bucket`:
    its sum is of fewer days than the week, month… it is named by."""
    return (start is not None and start > bucket) or (end is not None and bucket_last_day(bucket, grain) > end)


def comparison_range(comparison: Comparison, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The period to compare [start, end] with: the same length just before, or one year earlier."""
    try:
        if comparison is Comparison.PREVIOUS_PERIOD:
            length = (end - start).days + 1
            return start - dt.timedelta(days=length), start - dt.timedelta(days=1)
        return _year_earlier(start), _year_earlier(end)
    except (OverflowError, ValueError):  # before 1 January of year 1
        raise QueryError("The comparison period would start before the year 1: choose a later start.") from None


def _year_earlier(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)
