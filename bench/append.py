"""Append benchmark: publishing a day's file to a datasource that already holds years, one run.

    .venv/bin/python bench/append.py [--rows 3800000] [--daily-rows 10000] [--days 3] [--seed 1] [--keep]

1. Starts Django on a temporary VAR_DIR in the embedded default shape (bench/query.py's
   `django_start`: SQLite, local storage, DuckDB) and loads `--rows` generated sales lines
   (three years, bench/generate.py) through `manage.py ingest` (bench/query.py's loader).
2. Appends `--days` daily files of `--daily-rows` lines, one per day after the data's last day,
   each with its own invoice ids, through `manage.py ingest` (read, map, validate, publish), and
   reads each task's publishing stage: new rollups are the previous version's plus the day's.
   Then sends the last day's file again, corrected (other lines), with `--mode replace`: its rows
   replace that day's, and the new rollups are the previous version's without that day, plus
   the corrected file's.
3. Baseline, same run: the facts of the final version (rollups, invoice-constant dimensions)
   built from every row, which is what each publish cost before appends reused the previous
   version's rollups; and the same facts as the appends left them, compared equal.
4. Checks the dashboards' totals (revenue, units, lines, transactions) against the generated
   files, prints the figures and removes the temporary folder (unless --keep).

Timings on a shared machine are noisy: run it twice before trusting a small difference.
"""

import argparse
import datetime as dt
import io
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `bench.*` and the project must import

from bench.generate import DEFAULT_DAYS, DEFAULT_START, sales_frame_generate  # noqa: E402
from bench.query import django_start  # noqa: E402

DATASOURCE = "sales"


@dataclass(frozen=True)
class Totals:
    revenue: float
    units: int
    lines: int
    transactions: int


def frame_totals(frames: list[pl.DataFrame]) -> Totals:
    rows = pl.concat(frames)
    return Totals(
        revenue=float(rows["Total"].cast(pl.Float64).sum()),
        units=int(rows["Quantity"].cast(pl.Int64).sum()),
        lines=rows.height,
        transactions=rows["Invoice ID"].n_unique(),
    )


def file_ingest(frame: pl.DataFrame, path: Path, *, mode: str = "append") -> dict[str, float]:
    """`manage.py ingest` of the frame written as CSV; the task's seconds per stage."""
    from django.core.management import call_command

    from ingestion.models import IngestionTask

    frame.write_csv(path)
    call_command("ingest", str(path), datasource=DATASOURCE, mode=mode, stdout=io.StringIO(), stderr=io.StringIO())
    task = IngestionTask.objects.latest("created_at")
    if task.status != IngestionTask.Status.SUCCEEDED:
        raise SystemExit(f"{path.name}: task {task.status}: {task.message}")
    return dict(task.timings)


def daily_frame(*, day: dt.date, rows: int, seed: int) -> pl.DataFrame:
    """One day's lines; invoice ids made the day's own, as a shop's next invoices are."""
    frame = sales_frame_generate(rows, seed, start=day, days=1)
    return frame.with_columns((pl.col("Invoice ID") + f"-{day:%Y%m%d}").alias("Invoice ID"))


def facts_rebuild(workdir: Path) -> tuple[float, object]:
    """Seconds to build the current version's facts from every row, and those facts."""
    from analytics.models import Segment
    from analytics.rollups import version_facts_build
    from analytics.segments import segment_local_path

    paths = [segment_local_path(segment=s) for s in Segment.objects.filter(datasource__name=DATASOURCE, active=True)]
    started = time.perf_counter()
    facts = version_facts_build(segment_paths=paths, workdir=workdir)
    return time.perf_counter() - started, facts


def facts_match(rebuilt) -> list[str]:
    """Differences between the stored facts of the current version and `rebuilt` (empty: equal)."""
    from analytics.models import Datasource, Rollup
    from analytics.segments import segment_local_path

    datasource = Datasource.objects.get(name=DATASOURCE)
    problems = []
    if datasource.invoice_constant_dimensions != rebuilt.invoice_constant_dimensions:
        problems.append(
            f"invoice-constant {datasource.invoice_constant_dimensions} ≠ {rebuilt.invoice_constant_dimensions}"
        )
    stored = {r.name: r for r in Rollup.objects.filter(datasource=datasource, version=datasource.data_version)}
    for rollup in rebuilt.rollups:
        ours = pl.read_parquet(segment_local_path(segment=stored[rollup.name]))
        theirs = pl.read_parquet(rollup.local_path)
        if not ours.drop(pl.selectors.float()).equals(theirs.drop(pl.selectors.float())):
            problems.append(f"{rollup.name}: keys or counts differ")
        elif not all(
            ((ours[c] - theirs[c]).abs() <= 1e-6 * theirs[c].abs().clip(lower_bound=1)).fill_null(True).all()
            for c in ours.columns
            if ours[c].dtype == pl.Float64
        ):
            problems.append(f"{rollup.name}: amounts differ")
    return problems


def served_totals() -> Totals:
    from analytics.query import Summary
    from analytics.runner import run_query

    first = run_query(
        Summary(datasource=DATASOURCE, metrics=("revenue", "units_sold", "lines", "transactions")),
        user=None,
        use_cache=False,
    ).first
    return Totals(first["revenue"], first["units_sold"], first["lines"], first["transactions"])


def report(
    options: argparse.Namespace,
    base_stages: dict[str, float],
    appends: list[tuple[dt.date, dict[str, float]]],
    replaced: tuple[dt.date, dict[str, float]],
    rebuild_seconds: float,
    problems: list[str],
    expected: Totals,
) -> None:
    """Prints the figures; exits non-zero when the served figures do not reconcile with the files."""
    served = served_totals()
    print(f"\n== {options.rows:,} rows, then {options.days} × {options.daily_rows:,}-row days ==")
    print(f"  publishing the {options.rows:,} rows          {base_stages.get('publishing', 0):6.2f} s")
    for day, stages in appends:
        publishing = stages.get("publishing", 0)
        print(
            f"  publishing {day}'s file            {publishing:6.2f} s   "
            f"({rebuild_seconds / publishing:5.1f}× faster than building from every row)"
        )
    day, stages = replaced
    publishing = stages.get("publishing", 0)
    print(
        f"  replacing {day}'s file (corrected)  {publishing:6.2f} s   "
        f"({rebuild_seconds / publishing:5.1f}× faster than building from every row)"
    )
    print(f"  baseline: facts built from every row  {rebuild_seconds:6.2f} s")
    print(f"  facts left by the appends equal the rebuilt ones: {'; '.join(problems) or 'yes'}")
    print(f"  totals served {served}\n  from the files {expected}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    counts = (served.units, served.lines, served.transactions)
    if problems or counts != (expected.units, expected.lines, expected.transactions):
        raise SystemExit("MISMATCH: the served figures do not reconcile with the files")
    if abs(served.revenue - expected.revenue) > 0.005:
        raise SystemExit("MISMATCH: the served revenue does not reconcile with the files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_800_000)
    parser.add_argument("--daily-rows", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-append-"))
    try:
        django_start(workdir / "var")
        base = sales_frame_generate(options.rows, options.seed)
        print(f"loading {options.rows:,} rows …", flush=True)
        base_stages = file_ingest(base, workdir / "base.csv")
        frames = [base]
        appends = []
        last_day = DEFAULT_START + dt.timedelta(days=DEFAULT_DAYS - 1)
        for number in range(1, options.days + 1):
            day = last_day + dt.timedelta(days=number)
            frame = daily_frame(day=day, rows=options.daily_rows, seed=options.seed + number)
            appends.append((day, file_ingest(frame, workdir / f"day-{number}.csv")))
            frames.append(frame)
        corrected = daily_frame(day=day, rows=options.daily_rows, seed=options.seed + options.days + 1)
        corrected = corrected.with_columns((pl.col("Invoice ID") + "-fix").alias("Invoice ID"))
        replaced = (day, file_ingest(corrected, workdir / "day-corrected.csv", mode="replace"))
        frames[-1] = corrected
        rebuild_seconds, rebuilt = facts_rebuild(workdir / "rebuild")
        report(options, base_stages, appends, replaced, rebuild_seconds, facts_match(rebuilt), frame_totals(frames))
    finally:
        if options.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
