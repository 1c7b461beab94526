"""`run_query`: the only path to data. Scope, routing, cache and engine in one place."""

import datetime as dt
import difflib
import hashlib
import re
import time
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache

from accounts.selectors import user_allowed_branches
from analytics.catalogue import Snapshot, Upload, datasource_snapshot
from analytics.engines import Engine, get_engine
from analytics.metrics import METRICS
from analytics.query import (
    DISTINCT_VALUES,
    Breakdown,
    DistinctCount,
    Filters,
    QueryError,
    QuerySpec,
    ResultTooLarge,
    Summary,
    TimeSeries,
    comparison_range,
)
from analytics.routing import rollup_choose
from analytics.sql import VIRTUAL_DIMENSIONS, compile_date_extent, compile_spec

CACHE_SECONDS = 24 * 3600
# How another user's upload shows to a branch-scoped user (see `_provenance_for`).
OTHER_UPLOAD_NAME = "another user's upload"
# Dimensions every datasource can be asked about even before its first upload.
BASE_DIMENSIONS = ("branch", "product_line")


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[dict[str, Any]]
    engine: str
    source: str  # the rollup's name or "raw"
    data_version: int | None
    uploads: list[Upload]
    timings: dict[str, float]
    period: tuple[dt.date | None, dt.date | None] = (None, None)
    comparison: "QueryResult | None" = None
    cached: bool = False
    sql: str = field(default="", repr=False)

    @property
    def first(self) -> dict[str, Any]:
        return self.rows[0] if self.rows else {}


def run_query(spec: QuerySpec, *, user: AbstractBaseUser | None, use_cache: bool = True) -> QueryResult:
    """Answer `spec` as `user` may see it: scoped, routed to the smallest exact source, cached by version.

    `use_cache=False` is for benchmarks that measure the engine path.
    """
    started = time.perf_counter()
    spec.validate()
    allowed = user_allowed_branches(user=user)
    filters = scope_apply(spec.filters, allowed=allowed)
    engine = get_engine()
    snapshot = datasource_snapshot(name=spec.datasource)
    if snapshot is None:
        return _empty_result(spec, filters=filters, engine=engine, started=started)
    spec = dimensions_resolve(spec=spec, snapshot=snapshot)
    dimensions_check(spec=spec, filters=filters, snapshot=snapshot)
    token = snapshot.datasource.version_token
    key = f"query:{spec.datasource}:{token}:{engine.name}:{spec.cache_key()}:{_filters_key(filters, allowed)}"
    cached = cache.get(key) if use_cache else None
    if cached is not None:
        cached.cached = True
        cached.timings = {"total_ms": _ms(started)}
        return _provenance_for(cached, user=user, allowed=allowed)
    result = _execute(spec, filters=filters, snapshot=snapshot, engine=engine)
    if spec.comparison is not None:
        period = _period_of(filters, _visible_days(snapshot=snapshot, engine=engine, allowed=allowed))
        if period is None:
            # An open period over no data the user may see: nothing to compare, and no dates to
            # take from rows they may not see.
            result.comparison = replace(result, period=(None, None), comparison=None)
        else:
            compare_start, compare_end = comparison_range(spec.comparison, *period)
            result.comparison = _execute(
                spec, filters=filters.shifted(compare_start, compare_end), snapshot=snapshot, engine=engine
            )
    result.timings["total_ms"] = _ms(started)
    if use_cache:
        cache.set(key, result, CACHE_SECONDS)
    return _provenance_for(result, user=user, allowed=allowed)


def breakdown_run_bounded(spec: Breakdown, *, user: AbstractBaseUser | None, max_rows: int) -> QueryResult:
    """A breakdown of at most `max_rows` rows, never silently cut: a larger `limit` is refused, and
    without one an answer that would be longer raises ResultTooLarge. It asks the engine for one
    row more than allowed, so a too-large answer costs no more than an allowed one."""
    if spec.limit is not None and spec.limit > max_rows:
        raise QueryError(f"limit must be at most {max_rows:,} (METRICS_MAX_ROWS).")
    bounded = spec if spec.limit is not None else replace(spec, limit=max_rows + 1)
    result = run_query(bounded, user=user)
    answers = [result, *([result.comparison] if result.comparison is not None else [])]
    if any(len(answer.rows) > max_rows for answer in answers):
        raise ResultTooLarge(maximum=max_rows)
    return result


def _provenance_for(
    result: QueryResult, *, user: AbstractBaseUser | None, allowed: tuple[str, ...] | None
) -> QueryResult:
    """The uploads behind an answer as `user` may see them: a branch-scoped user sees only the
    uploads that brought rows of their branches (when so much is known: uploads published
    before segments recorded their branches stay, as dated entries), the name and id of their
    own uploads only (a file named for another branch tells its story); the others stay as
    dated entries, so the freshness of their data still shows. Done per user after the cache,
    which is shared by users of the same scope."""
    if allowed is None:
        return result
    own = user.pk if user is not None else None
    uploads = [
        upload
        if own is not None and upload.uploaded_by_id == own
        else Upload(
            upload_id="", name=OTHER_UPLOAD_NAME, uploaded_at=upload.uploaded_at, branches=_seen(upload, allowed)
        )
        for upload in result.uploads
        if upload.branches is None or upload.branches & set(allowed)
    ]
    comparison = result.comparison
    if comparison is not None:
        comparison = _provenance_for(comparison, user=user, allowed=allowed)
    return replace(result, uploads=uploads, comparison=comparison)


def scope_apply(filters: Filters, *, allowed: tuple[str, ...] | None) -> Filters:
    """Intersect the branch filter with what the user may see (None: no restriction)."""
    if allowed is None:
        return filters
    requested = filters.include.get("branch")
    allowed_set = frozenset(allowed)  # a set: both lists may hold thousands of branches
    branches = tuple(b for b in requested if b in allowed_set) if requested is not None else allowed
    return replace(filters, include={**filters.include, "branch": branches})


# Stored columns that are not dimensions: the date (grouped by through a time series' grain) and
# the measures. Druid keeps only dimensions as columns, so grouping by these answered there 503.
NOT_DIMENSIONS = frozenset(
    {"date", "datetime", "quantity", "unit_price", "revenue", "cost", "gross_profit", "tax", "rating"}
)


# How many of a datasource's dimensions an "unknown dimension" error lists (a wide file has hundreds).
DIMENSIONS_LISTED = 40


def dimensions_known(*, snapshot: Snapshot) -> set[str]:
    return (set(snapshot.datasource.columns) - NOT_DIMENSIONS) | set(BASE_DIMENSIONS) | set(VIRTUAL_DIMENSIONS)


def dimension_spelling(name: str) -> str:
    """The name ingestion stores a source column under (ingestion.mapping.dimension_name_make:
    ASCII snake_case), so that a client may ask by the column's header ("Order Note")."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text.replace("%", " pct ")).strip("_")


# What a header may hold to be read as a stored name's spelling: letters, digits, spaces and the
# punctuation headers use. Anything else ("product_line; --") is not a header but a mistake, and
# gets the "unknown dimension" answer with its nearest name.
HEADER_SPELLING = re.compile(r"^[\w\s%./-]+$")


def dimensions_resolve(*, spec: QuerySpec, snapshot: Snapshot) -> QuerySpec:
    """`spec` with each dimension not stored as asked, but whose header spelling is one stored
    name ("Note" for `note`), asking for that name; the rest is left for `dimensions_check`."""
    known = dimensions_known(snapshot=snapshot)
    renamed = {
        name: dimension_spelling(name)
        for name in spec.dimensions
        if name not in known and HEADER_SPELLING.match(name) and dimension_spelling(name) in known
    }
    if not renamed:
        return spec
    resolved = spec.dimensions_renamed(renamed)
    resolved.validate()  # "Note" and "note" together ask for one dimension twice
    return resolved


def dimensions_check(*, spec: QuerySpec, filters: Filters, snapshot: Snapshot) -> None:
    known = dimensions_known(snapshot=snapshot)
    unknown = sorted((set(spec.dimensions) | filters.dimensions) - known)
    if unknown:
        raise QueryError(f"Unknown dimension(s): {', '.join(unknown)}.{_dimensions_hint(unknown, known)}")


def _dimensions_hint(unknown: list[str], known: set[str]) -> str:
    """The nearest names (as ingestion suggests columns) and the dimensions there are, so a client can correct it."""
    nearest = {
        name: close[0]
        for name in unknown
        if (close := difflib.get_close_matches(dimension_spelling(name), known, n=1, cutoff=0.6))
    }
    guesses = "".join(f" Did you mean '{close}' for '{name}'?" for name, close in nearest.items())
    listed = sorted(known)
    more = f" and {len(listed) - DIMENSIONS_LISTED} more" if len(listed) > DIMENSIONS_LISTED else ""
    return f"{guesses} This datasource's dimensions: {', '.join(listed[:DIMENSIONS_LISTED])}{more}."


def _execute(spec: QuerySpec, *, filters: Filters, snapshot: Snapshot, engine: Engine) -> QueryResult:
    route_started = time.perf_counter()
    rollup = rollup_choose(spec=spec, filters=filters, snapshot=snapshot) if engine.uses_rollup_files else None
    source = engine.source(snapshot=snapshot, rollup=rollup)
    compiled = compile_spec(
        spec, source=source, dialect=engine.dialect, has_invoice_id=snapshot.datasource.has_invoice_id, filters=filters
    )
    route_ms = _ms(route_started)
    execute_started = time.perf_counter()
    raw_rows = engine.execute(compiled.sql, compiled.params)
    columns = compiled.dimension_columns + compiled.metric_columns
    rows = [_row(columns, values) for values in raw_rows]
    return QueryResult(
        columns=columns,
        rows=rows,
        engine=engine.name,
        source=source.name,
        data_version=snapshot.version,
        uploads=list(snapshot.uploads),
        timings={"route_ms": route_ms, "execute_ms": _ms(execute_started)},
        period=(filters.start, filters.end),
        sql=compiled.sql,
    )


def _row(columns: list[str], values: tuple) -> dict[str, Any]:
    row = dict(zip(columns, values, strict=True))
    bucket = row.get("bucket")
    if isinstance(bucket, dt.datetime):
        row["bucket"] = bucket.date()
    for name in columns:
        metric = METRICS.get(name)
        if metric is not None and row[name] is not None:
            # Engines return sums of sums as floats or big integers; counts are whole numbers.
            row[name] = int(row[name]) if metric.is_count else float(row[name])
    return row


def data_days_visible(*, snapshot: Snapshot, user: AbstractBaseUser | None) -> tuple[dt.date, dt.date] | None:
    """First and last day of the snapshot's data that `user` may see; None when they see none.

    Pages count their period presets back from it and show it as the data's range.
    """
    allowed = user_allowed_branches(user=user)
    if allowed is None:
        return snapshot.date_range
    return _visible_extent(snapshot=snapshot, engine=get_engine(), allowed=allowed)


def _visible_days(
    *, snapshot: Snapshot, engine: Engine, allowed: tuple[str, ...] | None
) -> tuple[dt.date, dt.date] | None:
    """First and last day of the data the user may see; None when they see none.

    A scoped user's "all data" is their branches' data: another branch's rows must not stretch
    (or, with none of their own, make up) their period and so its comparison, exactly as if
    those rows did not exist.
    """
    if allowed is None:
        return snapshot.date_range
    return _visible_extent(snapshot=snapshot, engine=engine, allowed=allowed)


def data_days_matching(
    *, snapshot: Snapshot | None, user: AbstractBaseUser | None, include: dict[str, tuple[str, ...]]
) -> tuple[dt.date, dt.date] | None:
    """First and last day of the data `user` may see whose dimensions match `include` (a page's
    filters without their period); None when no row matches."""
    if snapshot is None:
        return None
    if not include:
        return data_days_visible(snapshot=snapshot, user=user)
    allowed = user_allowed_branches(user=user)
    if allowed is not None:
        chosen, allowed_set = include.get("branch", allowed), frozenset(allowed)
        include = {**include, "branch": tuple(branch for branch in chosen if branch in allowed_set)}
        if not include["branch"]:
            return None
    return _extent(snapshot=snapshot, engine=get_engine(), scope=Filters(include=include))


def _visible_extent(*, snapshot: Snapshot, engine: Engine, allowed: tuple[str, ...]) -> tuple[dt.date, dt.date] | None:
    return _extent(snapshot=snapshot, engine=engine, scope=Filters(include={"branch": allowed}))


def _extent(*, snapshot: Snapshot, engine: Engine, scope: Filters) -> tuple[dt.date, dt.date] | None:
    probe = Summary(datasource=snapshot.datasource.name, metrics=("lines",))
    rollup = rollup_choose(spec=probe, filters=scope, snapshot=snapshot) if engine.uses_rollup_files else None
    compiled = compile_date_extent(
        source=engine.source(snapshot=snapshot, rollup=rollup), dialect=engine.dialect, filters=scope
    )
    first, last = engine.execute(compiled.sql, compiled.params)[0]
    return None if first is None else (_day(first), _day(last))


def _day(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _period_of(filters: Filters, data_days: tuple[dt.date, dt.date] | None) -> tuple[dt.date, dt.date] | None:
    """The filter's range, or the data's own first and last day when the filter is open; None
    when it is open and there is no data.

    An open side never passes the given one: a start after the last day of data (or an end
    before the first) gives a one-day period, not an invalid range.
    """
    if data_days is None:
        if filters.start is None or filters.end is None:
            return None
        return filters.start, filters.end
    first, last = data_days
    start, end = filters.start or first, filters.end or last
    if filters.end is None:
        end = max(start, end)
    if filters.start is None:
        start = min(start, end)
    return start, end


def _empty_result(spec: QuerySpec, *, filters: Filters, engine: Engine, started: float) -> QueryResult:
    """No data yet: summaries and counts are zeros (ratios undefined), everything else has no rows."""
    columns = list(spec.dimensions) + list(spec.metric_names)
    if isinstance(spec, TimeSeries):
        columns.insert(0, "bucket")
    rows: list[dict[str, Any]] = []
    if isinstance(spec, Summary):
        rows = [{name: _zero(name) for name in spec.metric_names}]
    if isinstance(spec, DistinctCount):
        columns, rows = [DISTINCT_VALUES], [{DISTINCT_VALUES: 0}]
    result = QueryResult(
        columns=columns,
        rows=rows,
        engine=engine.name,
        source="none",
        data_version=None,
        uploads=[],
        timings={"total_ms": _ms(started)},
        period=(filters.start, filters.end),
    )
    if spec.comparison is not None:
        result.comparison = replace(result, comparison=None)
    return result


def _zero(metric: str) -> float | int | None:
    # A quotient (margin, averages) is undefined without rows, as in SQL.
    return None if METRICS[metric].is_quotient else 0


def _filters_key(filters: Filters, allowed: tuple[str, ...] | None) -> str:
    """Stable across processes (unlike hash()), so web and worker share cache entries.

    The user's scope is part of it even when the scoped filters are the same: an open period,
    and so a comparison period, ends at the last day the user may see (`_visible_days`).
    """
    scope = None if allowed is None else sorted(allowed)
    payload = repr(
        (filters.start, filters.end, sorted(filters.include.items()), sorted(filters.exclude.items()), scope)
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def _seen(upload: Upload, allowed: tuple[str, ...]) -> frozenset[str] | None:
    """An upload's branches a scoped user may know of."""
    return None if upload.branches is None else upload.branches & frozenset(allowed)
