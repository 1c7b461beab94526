"""Query benchmark (issue 4, item 9): `run_query` on the Overview page's specs against bare DuckDB, one run.

    .venv/bin/python bench/query.py [--rows 10000000] [--small-rows 1000000] [--repeat 50]
                                    [--raw-repeat 10] [--seed 1] [--preset all] [--profile] [--keep]

1. Starts Django on a temporary VAR_DIR in the embedded default shape (SQLite, local storage,
   DuckDB) and loads two datasources of generated sales (bench/generate.py; `--rows` and
   `--small-rows` lines) through the real ingestion pipeline: the generated frame is written as
   Parquet and `manage.py ingest` reads, maps, validates and publishes it (rollups included).
2. Builds the specs the Overview page runs (as dashboard/panels.py builds them: KPI summary
   with the previous period, revenue trend at the page's automatic grain, revenue by branch and
   by product line, data freshness) plus the Profitability page's branch × product line breakdown,
   for the filter bar's `--preset` (default: all data).
3. Times each spec through `run_query(spec, user=viewer, use_cache=False)` (a signed-in viewer
   without a branch scope, as a page does), interleaved with the same SQL and bound parameters
   run by a bare DuckDB connection on the rollup file the router picked; then the raw-row SQL
   on the raw Parquet segments (fewer repeats: it is the slow path). Then the whole set per page
   view, alternating the two datasources so both meet the same machine noise.
4. Prints p50/p95 per spec and per set with the issue's targets, and with --profile (or when a
   target misses) where `run_query`'s time goes (cProfile). Removes the temporary folder unless
   --keep, also on failure.

Timings on a shared machine are noisy: run it twice before trusting a small difference.
"""

import argparse
import contextlib
import cProfile
import datetime as dt
import gc
import io
import math
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `bench.generate` and the project must import

TARGET_SET_MS = 50.0
TARGET_RATIO = 1.2
TARGET_OVERHEAD_MS = 2.0
TARGET_SCALE_TOLERANCE = 0.25
WARMUP_RUNS = 3
KPI_METRICS = ("revenue", "gross_profit", "gross_margin", "transactions", "units_sold", "average_ticket")
PRESETS = ("all", "last_7", "last_30", "last_90", "last_365")
# Integration switches of the scaled shape: none may leak into the embedded benchmark.
SCALED_VARIABLES = ("DATABASE_URL", "STORAGE_DIR", "REDIS_URL", "ANALYTICS_ENGINE", "HTTPS", "CACHE_URL")
SCALED_PREFIXES = ("S3_", "DRUID_", "AWS_")


# --- setup ------------------------------------------------------------------------------------------


def django_start(var_dir: Path) -> None:
    """Settings read the environment once, so it is set before django.setup(); then migrate."""
    for name in list(os.environ):
        if name in SCALED_VARIABLES or name.startswith(SCALED_PREFIXES):
            del os.environ[name]
    os.environ.update(
        VAR_DIR=str(var_dir),
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}",
        DJANGO_SETTINGS_MODULE="sales_analytics.settings",
        ANALYTICS_ENGINE="embedded",
        LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    # Fail now, not after loading 10 M rows, if the query layer does not import.
    import analytics.runner  # noqa: F401


def viewer_create() -> int:
    """A staff member with no branch scope (sees every branch): whom the Overview page runs as."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="bench-viewer", password=secrets.token_urlsafe(16)).pk


def viewer_fresh(pk: int) -> Any:
    """The user object of a new request, loaded outside the timings: the branch scope is looked up
    once per request (accounts.selectors keeps it on the user object), so each timed page view
    (and, conservatively, each timed spec) pays for that lookup once."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=pk)


@dataclass
class Load:
    name: str
    rows: int
    generate_s: float
    write_s: float
    ingest_s: float


def datasource_load(*, name: str, rows: int, seed: int, workdir: Path) -> Load:
    """Generated rows → Parquet → `manage.py ingest` (read, map, validate, publish, rollups)."""
    from django.core.management import call_command

    from bench.generate import sales_frame_generate

    started = time.perf_counter()
    frame = sales_frame_generate(rows, seed)
    generated = time.perf_counter()
    path = workdir / f"{name}.parquet"
    frame.write_parquet(path)
    del frame
    gc.collect()
    written = time.perf_counter()
    call_command("ingest", str(path), datasource=name, stdout=io.StringIO(), stderr=io.StringIO())
    ingested = time.perf_counter()
    path.unlink()
    return Load(name, rows, generated - started, written - generated, ingested - written)


# --- specs and their SQL ----------------------------------------------------------------------------


def data_range(snapshot: Any) -> tuple[dt.date, dt.date]:
    return min(s.interval_start for s in snapshot.segments), max(s.interval_end for s in snapshot.segments)


def preset_period(preset: str, snapshot: Any) -> tuple[dt.date | None, dt.date | None]:
    """The filter bar's presets count back from the last day with data (dashboard/filters.py)."""
    if preset == "all":
        return None, None
    last = data_range(snapshot)[1]
    return last - dt.timedelta(days=int(preset.removeprefix("last_")) - 1), last


def grain_auto(start: dt.date, end: dt.date) -> Any:
    """A readable number of points for the range, as the filter bar's automatic grain picks it."""
    from analytics.query import Grain

    span = (end - start).days + 1
    if span <= 45:
        return Grain.DAY
    if span <= 200:
        return Grain.WEEK
    if span <= 3 * 366:
        return Grain.MONTH
    return Grain.QUARTER


def overview_specs(*, datasource: str, preset: str) -> dict[str, Any]:
    """The Overview page's specs (dashboard/panels.py) and the Profitability page's heat map."""
    from analytics.catalogue import datasource_snapshot
    from analytics.query import Breakdown, Comparison, Filters, Summary, TimeSeries

    snapshot = datasource_snapshot(name=datasource)
    start, end = preset_period(preset, snapshot)
    first, last = data_range(snapshot)
    filters = Filters(start=start, end=end)
    grain = grain_auto(start or first, end or last)
    return {
        "KPIs vs previous period": Summary(
            datasource=datasource, filters=filters, metrics=KPI_METRICS, comparison=Comparison.PREVIOUS_PERIOD
        ),
        f"revenue by {grain.name.lower()}": TimeSeries(
            datasource=datasource, filters=filters, metrics=("revenue",), grain=grain
        ),
        "by branch": Breakdown(
            datasource=datasource, filters=filters, by=("branch",), metrics=("revenue", "gross_profit", "transactions")
        ),
        "by product line": Breakdown(
            datasource=datasource,
            filters=filters,
            by=("product_line",),
            metrics=("revenue", "gross_profit", "units_sold"),
        ),
        "freshness (lines)": Summary(datasource=datasource, metrics=("lines",)),
        "branch x product line": Breakdown(
            datasource=datasource,
            filters=filters,
            by=("branch", "product_line"),
            metrics=("gross_profit", "gross_margin", "revenue"),
            sort="branch",
            descending=False,
        ),
    }


@dataclass
class Statement:
    sql: str
    params: list
    source: str
    period: tuple[dt.date | None, dt.date | None]


def statements(spec: Any, *, raw: bool) -> list[Statement]:
    """The SQL run_query runs for `spec` (the comparison period's too), compiled the way it does.

    `raw=True` compiles the same spec for the raw segments instead of the rollup the router picks.
    """
    from analytics.catalogue import datasource_snapshot
    from analytics.engines import get_engine
    from analytics.query import comparison_range
    from analytics.routing import rollup_choose
    from analytics.sql import compile_spec

    engine = get_engine()
    snapshot = datasource_snapshot(name=spec.datasource)
    filters = spec.filters
    filter_sets = [filters]
    if spec.comparison is not None:
        first, last = data_range(snapshot)
        period = comparison_range(spec.comparison, filters.start or first, filters.end or last)
        filter_sets.append(filters.shifted(*period))
    compiled = []
    for one in filter_sets:
        rollup = None if raw else rollup_choose(spec=spec, filters=one, snapshot=snapshot)
        source = engine.source(snapshot=snapshot, rollup=rollup)
        query = compile_spec(
            spec, source=source, dialect=engine.dialect, has_invoice_id=snapshot.datasource.has_invoice_id, filters=one
        )
        compiled.append(Statement(query.sql, query.params, source.name, (one.start, one.end)))
    return compiled


def bare_connection() -> duckdb.DuckDBPyConnection:
    """What the embedded engine uses, without the application around it."""
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    return con


def bare_run(con: duckdb.DuckDBPyConnection, compiled: list[Statement]) -> list[list[tuple]]:
    return [con.execute(one.sql, one.params).fetchall() for one in compiled]


# --- timing -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: p50 of 50 runs is the 25th fastest, p95 the 48th."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


@dataclass
class SpecFigures:
    name: str
    source: str
    ours: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def p(self, which: str, q: float) -> float:
        return percentile(getattr(self, which), q)

    @property
    def ratio(self) -> float:
        return self.p("ours", 50) / self.p("bare", 50)

    @property
    def overhead_ms(self) -> float:
        return self.p("ours", 50) - self.p("bare", 50)

    @property
    def within_target(self) -> bool:
        return self.p("ours", 50) <= max(TARGET_RATIO * self.p("bare", 50), self.p("bare", 50) + TARGET_OVERHEAD_MS)


@dataclass
class SizeFigures:
    load: Load
    specs: list[SpecFigures]
    set_ours: list[float] = field(default_factory=list)
    set_bare: list[float] = field(default_factory=list)
    rollup_rows: dict[str, int] = field(default_factory=dict)


def specs_measure(*, specs: dict[str, Any], viewer: int, repeat: int, raw_repeat: int) -> list[SpecFigures]:
    """Each spec through run_query and bare DuckDB, checked equal first, then timed round-robin:
    every round runs every spec both ways (alternating which goes first), so a burst of load on
    the shared machine lands on all specs and on both sides alike."""
    from analytics.runner import run_query

    con = bare_connection()
    plans = []
    for name, spec in specs.items():
        on_rollup = statements(spec, raw=False)
        on_raw = statements(spec, raw=True)
        result = run_query(spec, user=viewer_fresh(viewer), use_cache=False)
        answers = [result] + ([result.comparison] if result.comparison is not None else [])
        if [(s.sql, s.source, s.period) for s in on_rollup] != [(a.sql, a.source, a.period) for a in answers]:
            raise SystemExit(f"{name}: the benchmark's SQL is not the SQL run_query ran; update statements().")
        one = SpecFigures(name, "+".join(dict.fromkeys(s.source for s in on_rollup)))
        one.checks = results_check(result=result, bare=bare_run(con, on_rollup), raw=bare_run(con, on_raw))
        plans.append((one, spec, on_rollup, on_raw))
    for round_number in range(WARMUP_RUNS + repeat):
        for one, spec, on_rollup, _ in plans:
            user = viewer_fresh(viewer)
            sides = [
                (one.ours, lambda spec=spec, user=user: run_query(spec, user=user, use_cache=False)),
                (one.bare, lambda on_rollup=on_rollup: bare_run(con, on_rollup)),
            ]
            for times, call in sides if round_number % 2 else reversed(sides):
                elapsed = timed(call)
                if round_number >= WARMUP_RUNS:
                    times.append(elapsed)
    for round_number in range(1 + raw_repeat):
        for one, _, _, on_raw in plans:
            elapsed = timed(lambda on_raw=on_raw: bare_run(con, on_raw))
            if round_number:
                one.raw.append(elapsed)
    con.close()
    return [one for one, *_ in plans]


def results_check(*, result: Any, bare: list[list[tuple]], raw: list[list[tuple]]) -> list[str]:
    """run_query's rows equal bare DuckDB's on the rollup, and the raw rows' to 1e-6 relative."""
    problems = []
    answers = [result] + ([result.comparison] if result.comparison is not None else [])
    for label, other in (("bare rollup", bare), ("raw", raw)):
        for answer, rows in zip(answers, other, strict=True):
            ours = [tuple(row[c] for c in answer.columns) for row in answer.rows]
            if not _rows_close(ours, rows):
                problems.append(f"differs from {label}")
    return problems


def _rows_close(ours: list[tuple], theirs: list[tuple]) -> bool:
    if len(ours) != len(theirs) or any(len(x) != len(y) for x, y in zip(ours, theirs, strict=True)):
        return False
    return all(_close(a, b) for x, y in zip(ours, theirs, strict=True) for a, b in zip(x, y, strict=True))


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(b, dt.datetime):
        b = b.date()
    return a == b


def sets_measure(*, sizes: list[SizeFigures], spec_sets: list[dict[str, Any]], viewer: int, repeat: int) -> None:
    """The whole page per view, both datasources alternating; bare DuckDB runs the same statements."""
    from analytics.runner import run_query

    con = bare_connection()
    compiled = [[s for spec in specs.values() for s in statements(spec, raw=False)] for specs in spec_sets]

    def page(specs: dict[str, Any], user: Any) -> None:
        for spec in specs.values():
            run_query(spec, user=user, use_cache=False)

    for _ in range(WARMUP_RUNS):
        for specs in spec_sets:
            page(specs, viewer_fresh(viewer))
    for round_number in range(repeat):
        for size, specs, statements_of_set in zip(sizes, spec_sets, compiled, strict=True):
            user = viewer_fresh(viewer)
            sides = [
                (size.set_ours, lambda specs=specs, user=user: page(specs, user)),
                (size.set_bare, lambda s=statements_of_set: bare_run(con, s)),
            ]
            for times, call in sides if round_number % 2 else reversed(sides):
                times.append(timed(call))
    con.close()


def profile_report(*, specs: dict[str, Any], viewer: int, repeat: int, lines: int = 30) -> str:
    from analytics.runner import run_query

    users = [viewer_fresh(viewer) for _ in range(repeat)]
    profiler = cProfile.Profile()
    profiler.enable()
    for user in users:
        for spec in specs.values():
            run_query(spec, user=user, use_cache=False)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


# --- report -----------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def size_report(size: SizeFigures, *, preset: str) -> list[str]:
    load = size.load
    lines = [
        "",
        f"== {load.rows:,} rows ('{load.name}', preset {preset}): generated {load.generate_s:.1f} s, "
        f"Parquet {load.write_s:.1f} s, `manage.py ingest` {load.ingest_s:.1f} s",
        "   rollups: " + ", ".join(f"{name} {rows:,} rows" for name, rows in size.rollup_rows.items()),
        "",
        f"{'spec':<26} {'source':<24} {'ours p50/p95':>15} {'bare rollup p50/p95':>20} {'ratio':>6} "
        f"{'overhead':>9} {'target':>6} {'bare raw p50':>13}",
    ]
    for one in size.specs:
        lines.append(
            f"{one.name:<26} {one.source:<24} "
            f"{one.p('ours', 50):>7.2f}/{one.p('ours', 95):<7.2f} "
            f"{one.p('bare', 50):>10.2f}/{one.p('bare', 95):<9.2f} "
            f"{one.ratio:>5.2f}x {one.overhead_ms:>7.2f}ms {_verdict(one.within_target):>6} "
            f"{one.p('raw', 50):>10.1f} ms" + (f"   !! {', '.join(one.checks)}" if one.checks else "")
        )
    set_p50, bare_p50 = percentile(size.set_ours, 50), percentile(size.set_bare, 50)
    lines.append(
        f"{'Overview set (page view)':<26} {'':<24} {set_p50:>7.2f}/{percentile(size.set_ours, 95):<7.2f} "
        f"{bare_p50:>10.2f}/{percentile(size.set_bare, 95):<9.2f} {set_p50 / bare_p50:>5.2f}x "
        f"{set_p50 - bare_p50:>7.2f}ms"
    )
    return lines


def targets_report(large: SizeFigures, small: SizeFigures) -> tuple[list[str], bool]:
    set_large, set_small = percentile(large.set_ours, 50), percentile(small.set_ours, 50)
    scale = set_large / set_small
    misses = [one.name for one in large.specs if not one.within_target]
    checks = [
        (
            set_large <= TARGET_SET_MS,
            f"Overview set p50 at {large.load.rows:,} rows: {set_large:.1f} ms (target ≤ {TARGET_SET_MS:.0f} ms)",
        ),
        (
            not misses,
            f"per-spec overhead at {large.load.rows:,} rows ≤ {TARGET_RATIO}× bare DuckDB on the same rollup or "
            f"≤ {TARGET_OVERHEAD_MS:.0f} ms: " + (f"misses {', '.join(misses)}" if misses else "all specs"),
        ),
        (
            abs(scale - 1) <= TARGET_SCALE_TOLERANCE,
            f"{large.load.rows:,} vs {small.load.rows:,} rows, Overview set p50: {set_large:.1f} / {set_small:.1f} ms "
            f"= {scale:.2f}× (target within ±{TARGET_SCALE_TOLERANCE:.0%})",
        ),
    ]
    small_misses = [one.name for one in small.specs if not one.within_target]
    lines = ["", "Targets:"] + [f"  {_verdict(ok)}  {text}" for ok, text in checks]
    lines.append(
        f"  (at {small.load.rows:,} rows the per-spec overhead target "
        + (f"misses {', '.join(small_misses)})" if small_misses else "holds for all specs)")
    )
    wrong = [f"{size.load.rows:,}: {one.name}" for size in (large, small) for one in size.specs if one.checks]
    if wrong:
        lines.append("  !! results differ for " + "; ".join(wrong))
    return lines, all(ok for ok, _ in checks) and not wrong


def rollup_rows(datasource: str) -> dict[str, int]:
    from analytics.catalogue import datasource_snapshot

    snapshot = datasource_snapshot(name=datasource)
    return {rollup.name: rollup.rows for rollup in snapshot.rollups}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per spec and per page view")
    parser.add_argument("--raw-repeat", type=int, default=10, help="timed runs per spec on the raw Parquet")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--preset", default="all", choices=PRESETS, help="the filter bar's period (default: all)")
    parser.add_argument("--profile", action="store_true", help="cProfile run_query even if every target passes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary VAR_DIR and print its path")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        django_start(var_dir)
        viewer = viewer_create()
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; duckdb {duckdb.__version__}")
        loads = []
        for rows in (args.rows, args.small_rows):
            name = f"bench_{rows}"
            print(f"loading {rows:,} generated rows into '{name}' through `manage.py ingest` …", flush=True)
            loads.append(datasource_load(name=name, rows=rows, seed=args.seed, workdir=var_dir))
        spec_sets = [overview_specs(datasource=load.name, preset=args.preset) for load in loads]
        sizes = []
        for load, specs in zip(loads, spec_sets, strict=True):
            print(f"timing {len(specs)} specs on {load.rows:,} rows …", flush=True)
            figures = specs_measure(specs=specs, viewer=viewer, repeat=args.repeat, raw_repeat=args.raw_repeat)
            sizes.append(SizeFigures(load, figures, rollup_rows=rollup_rows(load.name)))
        print("timing the page views …", flush=True)
        sets_measure(sizes=sizes, spec_sets=spec_sets, viewer=viewer, repeat=args.repeat)

        print(
            f"\nmilliseconds, {args.repeat} runs ({args.raw_repeat} on raw); ours = run_query(use_cache=False) "
            "as a viewer, a new request's user object each time; bare = duckdb.execute(same SQL, same params)"
        )
        for size in sizes:
            print("\n".join(size_report(size, preset=args.preset)))
        lines, passed = targets_report(sizes[0], sizes[1])
        print("\n".join(lines))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        if args.profile or not passed:
            print(f"\ncProfile of {args.repeat} Overview page views at {loads[0].rows:,} rows:")
            print(profile_report(specs=spec_sets[0], viewer=viewer, repeat=args.repeat))
        return 0 if passed else 1
    finally:
        if args.keep:
            print(f"kept {var_dir}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(var_dir)


if __name__ == "__main__":
    sys.exit(main())
