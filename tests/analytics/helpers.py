"""Random sales data, random query specs and a pure-Python oracle for the analytics tests.

The oracle is written from DESIGN.md ("Metrics and filters"), not from analytics/sql.py: it
filters, groups and aggregates plain dicts. Amounts are dyadic rationals (multiples of 1/8)
of modest size, so every sum is exact in double precision whatever the summation order; a
difference between the engine and the oracle is then a real difference, not rounding noise.
"""

import datetime as dt
import itertools
import math
import random
import tempfile
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import strategies as st

from analytics.metrics import METRICS
from analytics.query import Breakdown, Comparison, Filters, Grain, QuerySpec, Summary, TimeSeries, TopN
from analytics.services import PublishRequest, datasource_publish

DIMENSIONS: tuple[str, ...] = ("branch", "product_line", "city", "customer_type", "gender", "payment")
# Computed from the date or the time: grouped by, never filtered on.
VIRTUAL_DIMENSIONS: tuple[str, ...] = ("weekday", "hour")
REQUIRED_DIMENSIONS: tuple[str, ...] = ("branch", "product_line")
DIMENSION_VALUES: dict[str, tuple[str, ...]] = {
    "branch": ("A", "B", "C", "D"),
    "product_line": ("Food", "Health", "Home", "Sports"),
    "city": ("Yangon", "Mandalay", "Naypyitaw"),
    "customer_type": ("Member", "Normal"),
    "gender": ("Female", "Male"),
    "payment": ("Cash", "Card", "Ewallet"),
}
# A value no generated row has: filters on it must match nothing (or everything, for `not in`).
ABSENT_VALUE = "Nowhere"
# Invoice-level metrics: the ones that need an exact distinct count of invoice ids.
INVOICE_METRICS = frozenset({"transactions", "average_ticket"})

FIRST_DAY = dt.date(2023, 1, 1)


def days_between(first: int, last: int) -> st.SearchStrategy[dt.date]:
    return st.integers(first, last).map(lambda offset: FIRST_DAY + dt.timedelta(days=offset))


# Around 29 February 2024 and the same days a year earlier: "same period last year" edge cases.
LEAP_DAYS = tuple(
    dt.date(year, month, day)
    for year in (2023, 2024)
    for month, day in ((2, 27), (2, 28), (2, 29), (3, 1))
    if (year, month, day) != (2023, 2, 29)
)
# A dataset's days: a dense fortnight, a stretch around 29 February 2024 (offset 424), two years,
# the days around both ends of February, or a mix.
DAY_WINDOWS = (days_between(0, 12), days_between(395, 430), days_between(0, 800), st.sampled_from(LEAP_DAYS))
days = st.one_of(*DAY_WINDOWS)
# Filter bounds may also fall before or after all the data.
filter_days = days | days_between(-60, 860)

CURATED_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
    "branch": pl.String(),
    "product_line": pl.String(),
    "quantity": pl.Int64(),
    "unit_price": pl.Float64(),
    "revenue": pl.Float64(),
    "cost": pl.Float64(),
    "gross_profit": pl.Float64(),
    "tax": pl.Float64(),
    "invoice_id": pl.String(),
    "city": pl.String(),
    "customer_type": pl.String(),
    "gender": pl.String(),
    "payment": pl.String(),
    "rating": pl.Float64(),
}

Row = dict[str, Any]


# --- data ------------------------------------------------------------------------------------


def dimension_values(dimension: str) -> tuple[str | None, ...]:
    """The values `dimension` may take; the optional dimensions may be NULL."""
    values = DIMENSION_VALUES[dimension]
    return values if dimension in REQUIRED_DIMENSIONS else (None, *values)


# Where each key of a dataset's rows draws from: the date, and each dimension's (sub)alphabet.
Universe = dict[str, st.SearchStrategy]


@st.composite
def universes(draw) -> Universe:
    """Per dataset: a date window and, per dimension, all its values or only a few (more collisions and ties)."""
    universe: Universe = {"date": draw(st.sampled_from((*DAY_WINDOWS, days)))}
    for dimension in DIMENSIONS:
        values = dimension_values(dimension)
        subset = st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True).map(tuple)
        universe[dimension] = st.sampled_from(draw(st.just(values) | subset))
    return universe


@st.composite
def line_amounts(draw) -> Row:
    """Quantity (negative for returns, sometimes 0) and amounts that add up like a real sale line.

    The amounts come from one drawn seed: drawing each separately made data generation the
    slowest part of the property tests.
    """
    quantity = draw(st.integers(-3, 12))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    unit_price = rng.randint(1, 400) / 4
    unit_cost = rng.randint(0, 400) / 4
    tax = None if rng.random() < 0.3 else rng.randint(0, 200) / 8
    revenue = quantity * unit_price + (tax or 0.0)
    # Some lines come from files without cost: neither cost nor gross profit is known.
    cost = None if rng.random() < 0.15 else quantity * unit_cost
    return {
        "quantity": quantity,
        "unit_price": unit_price,
        "revenue": revenue,
        "cost": cost,
        "gross_profit": None if cost is None else revenue - cost,
        "tax": tax,
        "rating": None if rng.random() < 0.3 else rng.randint(2, 20) / 2,
    }


@st.composite
def line_headers(draw, universe: Universe) -> Row:
    return {key: draw(universe[key]) for key in ("date", *DIMENSIONS)}


@st.composite
def sales_rows(draw, max_rows: int = 40) -> list[Row]:
    """Sale lines in one of three invoice regimes.

    - `invoices` (twice as likely): multi-line invoices whose lines share the header (date,
      branch, payment, …) except for the product line, the day, a few random keys, or one
      optional dimension that some lines lack;
    - `messy`: lines pick invoice ids from a small pool, so invoices span days and branches;
    - `none`: no invoice ids at all (transactions are then lines).
    """
    regime = draw(st.sampled_from(("invoices", "invoices", "messy", "none")))
    universe = draw(universes())
    with_times = draw(st.booleans())
    rows: list[Row] = []
    if regime == "invoices":
        # What may differ between an invoice's lines: the product line (the usual case), the day
        # (lines booked later), a few keys at random, or only whether one optional dimension is
        # there (NULL beside a value is still two rollup cells, however alike they look).
        optional = [d for d in DIMENSIONS if d not in REQUIRED_DIMENSIONS]
        varying, sometimes_missing = draw(
            st.tuples(st.just(frozenset({"product_line"})), st.none())
            | st.tuples(st.just(frozenset({"date"})), st.none())
            | st.tuples(st.frozensets(st.sampled_from(("date", *DIMENSIONS)), max_size=3), st.none())
            | st.tuples(st.just(frozenset()), st.sampled_from(optional))
        )
        for number in range(draw(st.integers(1, 12))):
            header = draw(line_headers(universe))
            for _ in range(draw(st.integers(1, 4))):
                line = dict(header)
                for key in varying:
                    line[key] = draw(universe[key])
                if sometimes_missing is not None:
                    present = header[sometimes_missing] or DIMENSION_VALUES[sometimes_missing][0]
                    line[sometimes_missing] = draw(st.sampled_from((present, None)))
                rows.append({**line, **draw(line_amounts()), "invoice_id": f"INV-{number:03d}"})
    else:
        pool = draw(st.integers(1, 8))
        for _ in range(draw(st.integers(1, max_rows))):
            invoice_id = f"INV-{draw(st.integers(0, pool - 1)):03d}" if regime == "messy" else None
            rows.append({**draw(line_headers(universe)), **draw(line_amounts()), "invoice_id": invoice_id})
    if regime != "none" and draw(st.integers(0, 4)) == 0:
        # A few lines without an invoice id in a datasource that has them.
        for row in rows:
            if draw(st.integers(0, 3)) == 0:
                row["invoice_id"] = None
    # In the `invoices` regime an invoice's lines share its time of day; other lines get their own.
    invoice_hours: dict[str, int | None] = {}
    for row in rows:
        if regime == "invoices" and row["invoice_id"] in invoice_hours:
            hour = invoice_hours[row["invoice_id"]]
        else:
            hour = draw(st.none() | st.integers(0, 23)) if with_times else None
            if regime == "invoices" and row["invoice_id"] is not None:
                invoice_hours[row["invoice_id"]] = hour
        row["datetime"] = None if hour is None else dt.datetime.combine(row["date"], dt.time(hour, 30))
    return rows[:max_rows] if regime == "invoices" else rows


def sale_line(**values: Any) -> Row:
    """One hand-written sale line: one unit of 10.00 (cost 6.00) at branch A, changed by `values`."""
    line = {
        "date": dt.date(2024, 3, 4),
        "datetime": None,
        "branch": "A",
        "product_line": "Food",
        "city": "Yangon",
        "customer_type": "Member",
        "gender": "Female",
        "payment": "Cash",
        "quantity": 1,
        "unit_price": 10.0,
        "revenue": 10.0,
        "cost": 6.0,
        "gross_profit": 4.0,
        "tax": None,
        "rating": 8.0,
        "invoice_id": None,
    }
    return {**line, **values}


def sales_frame(rows: list[Row]) -> pl.DataFrame:
    return pl.DataFrame(
        [{**{name: None for name in CURATED_SCHEMA}, **row} for row in rows], schema=CURATED_SCHEMA, orient="row"
    )


def rows_publish(*, datasource: str, rows: list[Row], cuts: tuple[int, ...] = ()) -> None:
    """Publish `rows` to `datasource` as one upload per chunk between `cuts` (appends, no replace)."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(rows)}), len(rows)]
    with tempfile.TemporaryDirectory(prefix="analytics-test-") as workdir:
        for number, (low, high) in enumerate(itertools.pairwise(bounds)):
            chunk = rows[low:high]
            path = Path(workdir) / f"upload-{number}.parquet"
            sales_frame(chunk).write_parquet(path)
            dates = [row["date"] for row in chunk]
            datasource_publish(
                request=PublishRequest(
                    datasource_name=datasource,
                    upload_id=uuid.uuid4(),
                    upload_name=f"upload-{number}.csv",
                    uploaded_at=dt.datetime(2025, 1, 1, 12, number, tzinfo=dt.UTC),
                    curated_path=path,
                    rows=len(chunk),
                    interval_start=min(dates),
                    interval_end=max(dates),
                    replace=False,
                )
            )


# --- specs -----------------------------------------------------------------------------------

metric_names = st.sampled_from(tuple(METRICS))
metric_lists = st.lists(metric_names, min_size=1, max_size=4, unique=True).map(tuple)
dimensions = st.sampled_from(DIMENSIONS)
grouping_dimensions = st.sampled_from((*DIMENSIONS, *VIRTUAL_DIMENSIONS))


@st.composite
def filters(draw) -> Filters:
    start, end = draw(st.none() | filter_days), draw(st.none() | filter_days)
    if start and end and start > end:
        start, end = end, start
    value_lists = {
        dimension: st.lists(st.sampled_from((*DIMENSION_VALUES[dimension], ABSENT_VALUE)), max_size=3)
        for dimension in DIMENSIONS
    }
    # Often no dimension filter at all, or only on the branch, so the narrow rollups get asked too.
    filtered = st.sampled_from(draw(st.sampled_from((DIMENSIONS, ("branch",)))))
    most = draw(st.sampled_from((2, 0)))
    include = draw(st.dictionaries(filtered, st.just(()), max_size=most))
    include = {dimension: tuple(draw(value_lists[dimension])) for dimension in include}
    exclude = draw(st.dictionaries(filtered, st.just(()), max_size=most))
    exclude = {dimension: tuple(draw(value_lists[dimension])) for dimension in exclude}
    return Filters(start=start, end=end, include=include, exclude=exclude)


comparisons = st.none() | st.sampled_from(tuple(Comparison))


@st.composite
def query_specs(draw, datasource: str = "placeholder") -> QuerySpec:
    common = {"datasource": datasource, "filters": draw(filters()), "comparison": draw(comparisons)}
    kind = draw(st.sampled_from(("summary", "timeseries", "topn", "breakdown")))
    if kind == "summary":
        return Summary(metrics=draw(metric_lists), **common)
    if kind == "timeseries":
        return TimeSeries(
            metrics=draw(metric_lists),
            grain=draw(st.sampled_from(tuple(Grain))),
            split_by=draw(st.none() | grouping_dimensions),
            **common,
        )
    if kind == "topn":
        return TopN(
            dimension=draw(grouping_dimensions),
            metric=draw(metric_names),
            n=draw(st.integers(1, 6)),
            also=draw(st.lists(metric_names, max_size=2, unique=True).map(tuple)),
            ascending=draw(st.booleans()),
            **common,
        )
    by = tuple(draw(st.lists(grouping_dimensions, min_size=1, max_size=2, unique=True)))
    metrics = draw(metric_lists)
    return Breakdown(
        by=by,
        metrics=metrics,
        sort=draw(st.none() | st.sampled_from((*metrics, *by))),
        descending=draw(st.booleans()),
        limit=draw(st.none() | st.integers(1, 6)),
        **common,
    )


def spec_for(spec: QuerySpec, *, datasource: str) -> QuerySpec:
    return replace(spec, datasource=datasource)


# --- the oracle ------------------------------------------------------------------------------


def row_matches(row: Row, filters: Filters) -> bool:
    """Inclusive whole days; `in` never matches NULL, `not in` always keeps NULL."""
    if filters.start is not None and row["date"] < filters.start:
        return False
    if filters.end is not None and row["date"] > filters.end:
        return False
    for dimension, values in filters.include.items():
        if row[dimension] is None or row[dimension] not in values:
            return False
    for dimension, values in filters.exclude.items():
        if row[dimension] is not None and row[dimension] in values:
            return False
    return True


def bucket_start(day: dt.date, grain: Grain) -> dt.date:
    if grain is Grain.DAY:
        return day
    if grain is Grain.WEEK:
        return day - dt.timedelta(days=day.isoweekday() - 1)  # ISO weeks start on Monday
    if grain is Grain.MONTH:
        return dt.date(day.year, day.month, 1)
    if grain is Grain.QUARTER:
        return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return dt.date(day.year, 1, 1)


def _quotient(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _known_sum(values: list[float | None]) -> float | None:
    """0 over no lines; None (unknown) over lines none of which has a value; else the sum of the values."""
    known = [value for value in values if value is not None]
    return sum(known) if known or not values else None


def metric_values(rows: list[Row], names: tuple[str, ...]) -> dict[str, Any]:
    """Each metric from its definition in DESIGN.md: sums, counts, exact distinct invoices, ratios of sums."""
    revenue = sum(row["revenue"] for row in rows)
    # Lines without a cost (a file that had none) have no gross profit either: over lines none
    # of which has one, both sums are unknown; the margin is of the revenue of lines that have one.
    with_profit = [row for row in rows if row["gross_profit"] is not None]
    revenue_with_profit = sum(row["revenue"] for row in with_profit)
    gross_profit = _known_sum([row["gross_profit"] for row in rows])
    units = sum(row["quantity"] for row in rows)
    ratings = [row["rating"] for row in rows if row["rating"] is not None]
    # Distinct invoice ids; a line without one is a transaction of its own (all of them when
    # the datasource has no invoice ids at all).
    transactions = len({row["invoice_id"] for row in rows if row["invoice_id"] is not None}) + sum(
        1 for row in rows if row["invoice_id"] is None
    )
    values = {
        "revenue": revenue,
        "cost": _known_sum([row["cost"] for row in rows]),
        "gross_profit": gross_profit,
        "revenue_with_cost": revenue_with_profit,
        "tax": _known_sum([row["tax"] for row in rows]),
        "units_sold": units,
        "lines": len(rows),
        "transactions": transactions,
        "gross_margin": _quotient(gross_profit, revenue_with_profit) if with_profit else None,
        "average_ticket": _quotient(revenue, transactions),
        "average_unit_price": _quotient(revenue, units),
        "average_rating": _quotient(sum(ratings), len(ratings)),
    }
    return {name: values[name] for name in names}


def dimension_of(row: Row, dimension: str) -> Any:
    """A row's value of a stored dimension, or of a virtual one: ISO weekday (1 = Monday), hour 0–23."""
    if dimension == "weekday":
        return row["date"].isoweekday()
    if dimension == "hour":
        return None if row["datetime"] is None else row["datetime"].hour
    return row[dimension]


def group_key(spec: QuerySpec, row: Row) -> tuple:
    """The answer row a raw row belongs to; a NULL dimension is a group of its own (key None)."""
    key = tuple(dimension_of(row, dimension) for dimension in spec.dimensions)
    if isinstance(spec, TimeSeries):
        key = (bucket_start(row["date"], spec.grain), *key)
    return key


def key_columns(spec: QuerySpec) -> tuple[str, ...]:
    return ("bucket", *spec.dimensions) if isinstance(spec, TimeSeries) else tuple(spec.dimensions)


def oracle_groups(spec: QuerySpec, rows: list[Row], *, filters: Filters) -> dict[tuple, dict]:
    """Every answer row the spec has over `rows` (before any ordering or limit), keyed by its group."""
    kept = [row for row in rows if row_matches(row, filters)]
    if isinstance(spec, Summary):
        return {(): metric_values(kept, spec.metric_names)}
    grouped: dict[tuple, list[Row]] = defaultdict(list)
    for row in kept:
        grouped[group_key(spec, row)].append(row)
    return {key: metric_values(members, spec.metric_names) for key, members in grouped.items()}


def comparison_period(comparison: Comparison, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """Previous period: as many days, ending the day before. Last year: same dates, 29 Feb → 28 Feb."""
    if comparison is Comparison.PREVIOUS_PERIOD:
        days_in_period = (end - start).days + 1
        return start - dt.timedelta(days=days_in_period), end - dt.timedelta(days=days_in_period)

    def year_before(day: dt.date) -> dt.date:
        if (day.month, day.day) == (2, 29):
            return dt.date(day.year - 1, 2, 28)
        return dt.date(day.year - 1, day.month, day.day)

    return year_before(start), year_before(end)


def open_period(filters: Filters, rows: list[Row]) -> tuple[dt.date, dt.date]:
    """The filter's range; an open side is the data's own first or last day, but never crosses
    the given side (a start after all the data compares one day)."""
    start = filters.start or min(row["date"] for row in rows)
    end = filters.end or max(row["date"] for row in rows)
    if filters.start is None and start > end:
        start = end
    if filters.end is None and end < start:
        end = start
    return start, end


# --- comparing an answer with the oracle -----------------------------------------------------


def values_equal(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9)
    return actual == expected


def rows_equal(actual: list[Row], expected: list[Row]) -> bool:
    if len(actual) != len(expected):
        return False
    for left, right in zip(actual, expected, strict=True):
        if left.keys() != right.keys():
            return False
        if not all(values_equal(left[name], right[name]) for name in left):
            return False
    return True


def _ranks_no_later(first: Any, second: Any, *, descending: bool) -> bool:
    """Whether `first` may come before (or tie with) `second` under ORDER BY … NULLS LAST."""
    if first is None:
        return second is None
    if second is None:
        return True
    if isinstance(first, float) and math.isclose(first, second, rel_tol=1e-9, abs_tol=1e-9):
        return True
    return first >= second if descending else first <= second


def _metrics_check(spec: QuerySpec, actual: Row, expected: dict, context: str) -> None:
    for name in spec.metric_names:
        assert values_equal(actual[name], expected[name]), (
            f"{context}: {name} = {actual[name]!r}, oracle says {expected[name]!r} (row {actual})"
        )


def answer_check(result, spec: QuerySpec, rows: list[Row], *, filters: Filters, context: str = "") -> None:
    """`result.rows` is the answer to `spec` over `rows` (with `filters`), ordering rules included."""
    expected = oracle_groups(spec, rows, filters=filters)
    columns = key_columns(spec)
    keys = [tuple(row[column] for column in columns) for row in result.rows]
    context = f"{context}{type(spec).__name__}"
    assert len(keys) == len(set(keys)), f"{context}: duplicate groups in {result.rows}"
    for key, row in zip(keys, result.rows, strict=True):
        assert key in expected, f"{context}: group {key} is not in the oracle's {sorted(expected, key=repr)}"
        _metrics_check(spec, row, expected[key], context)
    if isinstance(spec, Summary):
        assert len(result.rows) == 1, f"{context}: a summary has one row, got {result.rows}"
        return
    if isinstance(spec, TimeSeries):
        assert set(keys) == set(expected), f"{context}: groups {sorted(keys, key=repr)} ≠ {sorted(expected, key=repr)}"
        ordered = sorted(keys, key=lambda key: tuple((value is None, 0 if value is None else value) for value in key))
        assert keys == ordered, f"{context}: series not ordered by bucket then split: {keys}"
        return
    if isinstance(spec, TopN):
        sort_column, descending, limit = spec.metric, not spec.ascending, spec.n
    else:
        sort_column, descending, limit = spec.sort or spec.metrics[0], spec.descending, spec.limit
    sort_values = {
        key: key[columns.index(sort_column)] if sort_column in columns else metrics[sort_column]
        for key, metrics in expected.items()
    }
    assert len(keys) == min(limit or len(expected), len(expected)), (
        f"{context}: {len(keys)} rows, expected {min(limit or len(expected), len(expected))} of {len(expected)}"
    )
    for earlier, later in itertools.pairwise(keys):
        assert _ranks_no_later(sort_values[earlier], sort_values[later], descending=descending), (
            f"{context}: {sort_column} out of order: {sort_values[earlier]!r} before {sort_values[later]!r}"
        )
    # A valid top-n: whatever ties were broken, nothing left out ranks before anything returned.
    left_out = set(expected) - set(keys)
    for key in keys:
        for other in left_out:
            assert _ranks_no_later(sort_values[key], sort_values[other], descending=descending), (
                f"{context}: returned {key} ({sort_values[key]!r}) but left out {other} ({sort_values[other]!r})"
            )


def full_answer_check(result, spec: QuerySpec, rows: list[Row]) -> None:
    """The answer, and the comparison period's answer when the spec asks for one."""
    answer_check(result, spec, rows, filters=spec.filters)
    if spec.comparison is None:
        assert result.comparison is None
        return
    assert result.comparison is not None, "a spec with a comparison got none"
    start, end = comparison_period(spec.comparison, *open_period(spec.filters, rows))
    shifted = replace(spec.filters, start=start, end=end)
    answer_check(result.comparison, spec, rows, filters=shifted, context="comparison ")


# --- which rollup should answer ----------------------------------------------------------------


def invoice_constant_keys(rows: list[Row]) -> set[str]:
    """Keys (date and dimensions) with one value (NULL being a value) in every invoice."""
    values: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    keys = ("date", *DIMENSIONS, "hour")
    for row in rows:
        if row["invoice_id"] is not None:
            for key in keys:
                values[key][row["invoice_id"]].add(dimension_of(row, key))
    return {key for key in keys if all(len(seen) == 1 for seen in values[key].values())}


def filter_dimensions(filters: Filters) -> set[str]:
    """Dimensions a filter restricts: any `in` list (an empty one matches nothing), non-empty `not in` lists."""
    return set(filters.include) | {dimension for dimension, values in filters.exclude.items() if values}


def expected_source(spec: QuerySpec, rows: list[Row], *, filters: Filters, rollups: dict[str, tuple[str, ...]]) -> str:
    """The smallest rollup that covers the spec exactly, else "raw".

    Covered: the rollup keeps every dimension the spec groups or filters by, and, when the
    metrics need distinct invoices, each invoice sits in one of the cells summed into an answer
    row — every rollup key the answer sums over (day included, unless a day series groups by
    it) has one value per invoice.
    """
    # The weekday comes from the day, which every rollup keeps; the hour is kept by the rollups
    # that list it, which exist only when some row has a time of day.
    needed = (set(spec.dimensions) | filter_dimensions(filters)) - {"weekday"}
    has_times = any(row["datetime"] is not None for row in rows)
    has_invoice_id = any(row["invoice_id"] is not None for row in rows)
    needs_invoices = has_invoice_id and bool(INVOICE_METRICS & set(spec.metric_names))
    grouped = set(spec.dimensions) | ({"date"} if isinstance(spec, TimeSeries) and spec.grain is Grain.DAY else set())
    constant = invoice_constant_keys(rows)
    covering = []
    for name, kept in rollups.items():
        if "hour" in kept and not has_times:
            continue
        if not needed <= set(kept):
            continue
        if needs_invoices and not ({"date", *kept} - grouped) <= constant:
            continue
        cells = len({(row["date"], *(dimension_of(row, d) for d in kept)) for row in rows})
        covering.append((cells, name))
    return min(covering)[1] if covering else "raw"
