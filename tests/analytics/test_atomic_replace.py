"""A replace paused inside its switch transaction: readers see the old totals or the new ones, never a mix.

Version 1 is the real file (ingest command). Version 2 replaces 15 January – 14 February 2019 with
synthetic rows; the writer runs in a thread and stops at `publish_pause_point()` (just before the
switch commits) until the test releases it. Readers are other threads, each with its own database
connection, and another OS process.
"""

import csv
import datetime as dt
import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from analytics import services
from analytics.query import Breakdown, Filters, QuerySpec, Summary
from analytics.runner import run_query
from tests.analytics.publishing import rows_totals, sales_rows, synthetic_publish
from tests.processes import manage_py

pytestmark = pytest.mark.django_db(transaction=True)

REPLACED_START = dt.date(2019, 1, 15)
REPLACED_END = dt.date(2019, 2, 14)
PAUSE_LIMIT_SECONDS = 120

# A rollup-answered summary, a rollup-answered breakdown, and one that must read raw rows
# (invoice_id is in no rollup; excluding a value no row has keeps every row).
SPECS: dict[str, QuerySpec] = {
    "summary": Summary(datasource="sales", metrics=("revenue", "lines", "units_sold")),
    "branches": Breakdown(datasource="sales", by=("branch",), metrics=("revenue", "lines")),
    "raw": Summary(
        datasource="sales",
        metrics=("revenue", "lines", "units_sold"),
        filters=Filters(exclude={"invoice_id": ("no-such-invoice",)}),
    ),
}


@dataclass(frozen=True)
class Totals:
    revenue: float
    lines: int
    units_sold: int

    def matches(self, revenue: float, lines: int, units_sold: int) -> bool:
        return abs(revenue - self.revenue) < 0.005 and (lines, units_sold) == (self.lines, self.units_sold)


def real_file_totals(path: Path, *, outside: tuple[dt.date, dt.date] | None = None) -> Totals:
    """Totals straight from the source CSV, optionally without the rows inside `outside`."""
    revenue, lines, units = 0.0, 0, 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            day = dt.datetime.strptime(row["Date"], "%d-%b-%Y").date()
            if outside and outside[0] <= day <= outside[1]:
                continue
            revenue += float(row["Total"])
            lines += 1
            units += int(row["Quantity"])
    return Totals(revenue=revenue, lines=lines, units_sold=units)


@dataclass(frozen=True)
class Observation:
    spec: str
    data_version: int | None
    revenue: float
    lines: int
    units_sold: int | None
    cached: bool


def observe(*, use_cache: bool) -> list[Observation]:
    observations = []
    for name, spec in SPECS.items():
        result = run_query(spec, user=None, use_cache=use_cache)
        rows = result.rows
        observations.append(
            Observation(
                spec=name,
                data_version=result.data_version,
                revenue=sum(row["revenue"] for row in rows),
                lines=sum(row["lines"] for row in rows),
                units_sold=sum(row["units_sold"] for row in rows) if "units_sold" in result.columns else None,
                cached=result.cached,
            )
        )
    return observations


def consistent(observation: Observation, totals: Totals) -> bool:
    units = totals.units_sold if observation.units_sold is None else observation.units_sold
    return totals.matches(observation.revenue, observation.lines, units)


class Reader(threading.Thread):
    """Queries in a loop with its own database connection until told to stop (or `rounds` are done)."""

    def __init__(self, *, rounds: int | None = None, use_cache: bool = False) -> None:
        super().__init__(daemon=True)
        self.rounds = rounds
        self.use_cache = use_cache
        self.stop = threading.Event()
        self.observations: list[Observation] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            done = 0
            while not self.stop.is_set() and (self.rounds is None or done < self.rounds):
                self.observations.extend(observe(use_cache=self.use_cache))
                done += 1
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            connections.close_all()


class PausedWriter(threading.Thread):
    """Publishes the replace; `publish_pause_point` holds it inside the switch transaction."""

    def __init__(self, *, rows: list[dict], workdir: Path) -> None:
        super().__init__(daemon=True)
        self.rows = rows
        self.workdir = workdir
        self.paused = threading.Event()
        self.release = threading.Event()
        self.outcome: services.PublishOutcome | None = None
        self.error: BaseException | None = None

    def pause_point(self) -> None:
        if threading.current_thread() is not self:
            return
        self.paused.set()
        if not self.release.wait(timeout=PAUSE_LIMIT_SECONDS):
            raise RuntimeError("the test never released the paused publish")

    def run(self) -> None:
        try:
            self.outcome = synthetic_publish(datasource="sales", rows=self.rows, workdir=self.workdir, replace=True)
        except BaseException as exc:
            self.error = exc
        finally:
            self.paused.set()  # never leave the test waiting for a writer that failed early
            connections.close_all()


READER_SCRIPT = """
import json
from analytics.query import Summary
from analytics.runner import run_query
result = run_query(Summary(datasource="sales", metrics=("revenue", "lines", "units_sold")), user=None, use_cache=False)
print(json.dumps({"data_version": result.data_version, **result.first}))
"""


def test_readers_see_old_or_new_totals_never_a_mix(real_file: Path, tmp_path: Path, monkeypatch) -> None:
    call_command("ingest", str(real_file), "--datasource", "sales", stdout=io.StringIO(), stderr=io.StringIO())
    old = real_file_totals(real_file)
    assert old.matches(322_966.749, 1000, 5510)

    replacement = sales_rows(start=REPLACED_START, days=(REPLACED_END - REPLACED_START).days + 1, per_day=4, seed=7)
    kept = real_file_totals(real_file, outside=(REPLACED_START, REPLACED_END))
    added = rows_totals(replacement)
    new = Totals(
        revenue=kept.revenue + added["revenue"],
        lines=kept.lines + added["lines"],
        units_sold=kept.units_sold + added["units_sold"],
    )
    assert not new.matches(old.revenue, old.lines, old.units_sold)

    before = observe(use_cache=True)
    assert all(o.data_version == 1 and consistent(o, old) for o in before), before
    sources = {name: run_query(spec, user=None).source for name, spec in SPECS.items()}
    assert sources["summary"] != "raw" and sources["branches"] != "raw" and sources["raw"] == "raw", sources

    writer = PausedWriter(rows=replacement, workdir=tmp_path)
    monkeypatch.setattr(services, "publish_pause_point", writer.pause_point)
    writer.start()
    try:
        assert writer.paused.wait(timeout=60), "the publish never reached its pause point"
        assert writer.error is None, writer.error
        assert writer.is_alive(), "the writer must be held inside its transaction"

        # While the switch is written but not committed: only the old version, from every reader.
        during = [Reader(rounds=5, use_cache=use_cache) for use_cache in (False, False, True, True)]
        for reader in during:
            reader.start()
        for reader in during:
            reader.join(timeout=60)
        other_process = json.loads(manage_py("shell", "-c", READER_SCRIPT).stdout.strip().splitlines()[-1])
        for reader in during:
            assert not reader.is_alive(), "a reader was blocked by the paused publish"
            assert reader.error is None, reader.error
            assert len(reader.observations) == 5 * len(SPECS)
            assert all(o.data_version == 1 and consistent(o, old) for o in reader.observations), reader.observations
        assert other_process["data_version"] == 1
        assert old.matches(other_process["revenue"], other_process["lines"], other_process["units_sold"])
        assert writer.is_alive()

        # Readers keep reading while the switch commits.
        across = [Reader(use_cache=use_cache) for use_cache in (False, True)]
        for reader in across:
            reader.start()
        _wait_for(lambda: all(len(r.observations) >= 2 * len(SPECS) for r in across), "readers before release")
    finally:
        writer.release.set()
        writer.join(timeout=60)
    assert writer.error is None, writer.error
    assert writer.outcome is not None and writer.outcome.data_version == 2

    seen_after_commit = [len(reader.observations) for reader in across]
    _wait_for(
        lambda: all(len(r.observations) >= n + 3 * len(SPECS) for r, n in zip(across, seen_after_commit, strict=True)),
        "readers after release",
    )
    for reader in across:
        reader.stop.set()
        reader.join(timeout=60)
        assert reader.error is None, reader.error
        versions = [o.data_version for o in reader.observations]
        assert versions == sorted(versions), f"a reader went back to an older version: {versions}"
        assert set(versions) == {1, 2}, versions
        for observation in reader.observations:
            expected = old if observation.data_version == 1 else new
            assert consistent(observation, expected), observation

    for use_cache in (True, False):
        after = observe(use_cache=use_cache)
        assert all(o.data_version == 2 and consistent(o, new) for o in after), after


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
