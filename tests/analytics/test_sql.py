"""Generated SQL per spec kind and per source (raw rows vs a rollup), DuckDB dialect.

The expected SQL and bound parameters live in `__snapshots__/sql.json`, so a review shows how
a query changed. After an intended change, rewrite the file and review its diff:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/analytics/test_sql.py -p no:cacheprovider

Values are always bound parameters and identifiers are checked: hostile filter values never
reach the SQL text, and unknown or malformed dimension names are a QueryError.
"""

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from analytics.engines.embedded import EmbeddedEngine
from analytics.models import Rollup
from analytics.query import (
    Breakdown,
    Comparison,
    DistinctCount,
    Filters,
    Grain,
    QueryError,
    QuerySpec,
    Summary,
    TimeSeries,
    TopN,
)
from analytics.runner import run_query
from analytics.sql import CompiledQuery, DuckDBDialect, Source, compile_spec
from tests.analytics.publishing import sales_rows, synthetic_publish

SNAPSHOT_FILE = Path(__file__).parent / "__snapshots__" / "sql.json"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"

# The embedded engine's sources, with fixed paths (the table SQL is what matters; see
# test_snapshots_are_what_run_query_executes for the engine's own sources).
SOURCES = {
    "raw": Source(
        name="raw",
        table_sql="read_parquet(?, union_by_name = true)",
        table_params=(["/segments/one.parquet", "/segments/two.parquet"],),
    ),
    "rollup": Source(
        name="day_all_dimensions", table_sql="read_parquet(?)", table_params=("/rollups/r.parquet",), is_rollup=True
    ),
}

JANUARY = Filters(start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 31))
SPECS: dict[str, QuerySpec] = {
    "summary": Summary(datasource="sales"),
    "summary-filtered": Summary(
        datasource="sales",
        filters=Filters(
            start=dt.date(2024, 1, 1),
            end=dt.date(2024, 1, 31),
            include={"branch": ("A", "B"), "product_line": ("Health and beauty",)},
            exclude={"payment": ("Ewallet",)},
        ),
    ),
    "summary-empty-in-list": Summary(datasource="sales", metrics=("revenue",), filters=Filters(include={"branch": ()})),
    "summary-every-metric": Summary(
        datasource="sales",
        metrics=(
            "revenue",
            "cost",
            "gross_profit",
            "tax",
            "units_sold",
            "lines",
            "transactions",
            "gross_margin",
            "average_ticket",
            "average_unit_price",
            "average_rating",
        ),
    ),
    **{
        f"timeseries-{grain.value}": TimeSeries(
            datasource="sales", grain=grain, metrics=("revenue", "gross_margin"), filters=JANUARY
        )
        for grain in Grain
    },
    "timeseries-split-by-branch": TimeSeries(datasource="sales", grain=Grain.MONTH, split_by="branch"),
    "topn": TopN(datasource="sales", dimension="product_line", metric="revenue", n=5, also=("units_sold",)),
    "topn-ascending-filtered": TopN(
        datasource="sales",
        dimension="branch",
        metric="gross_profit",
        n=3,
        ascending=True,
        filters=Filters(exclude={"city": ("Mandalay", "Yangon")}),
    ),
    "breakdown": Breakdown(datasource="sales", by=("branch",), metrics=("revenue", "average_ticket")),
    "breakdown-two-dimensions-sorted-limited": Breakdown(
        datasource="sales",
        by=("branch", "product_line"),
        metrics=("revenue", "gross_profit"),
        sort="gross_profit",
        descending=False,
        limit=10,
    ),
    "distinct-count-filtered": DistinctCount(
        datasource="sales", dimension="branch", filters=Filters(include={"product_line": ("Health and beauty",)})
    ),
    # None stands for rows without a value: what a top-N shows as "(none)" and its "Other" leaves out.
    "summary-null-listed": Summary(
        datasource="sales",
        metrics=("revenue", "lines"),
        filters=Filters(include={"payment": (None, "Cash")}, exclude={"city": (None,), "branch": (None, "A")}),
    ),
}
# Without invoice ids, transactions (and the average ticket) count sale lines instead.
WITHOUT_INVOICE_ID = {"summary-without-invoice-id": Summary(datasource="sales")}

CASES = [(name, source) for name in {**SPECS, **WITHOUT_INVOICE_ID} for source in SOURCES]


def case_id(name: str, source: str) -> str:
    return f"{name}/{source}"


def compiled(name: str, source: str) -> CompiledQuery:
    spec = SPECS.get(name) or WITHOUT_INVOICE_ID[name]
    return compile_spec(
        spec, source=SOURCES[source], dialect=DuckDBDialect(), has_invoice_id=name not in WITHOUT_INVOICE_ID
    )


# Stored one clause per line so that a diff shows which clause changed; joined with a space it
# is the exact SQL.
_CLAUSE = re.compile(r" (?=(?:FROM|WHERE|GROUP BY|ORDER BY|LIMIT|AND) )")


def sql_lines(sql: str) -> list[str]:
    return _CLAUSE.split(sql)


def as_snapshot(query: CompiledQuery) -> dict:
    return {"sql": sql_lines(query.sql), "params": json.loads(json.dumps(query.params, default=str))}


class Snapshots:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stored: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}
        self.recorded: dict[str, dict] = {}

    def check(self, key: str, value: dict) -> None:
        if UPDATE:
            self.recorded[key] = value
            return
        assert key in self.stored, f"no snapshot {key!r}: run with UPDATE_SNAPSHOTS=1 and review the diff"
        assert value == self.stored[key], f"SQL for {key!r} changed: run with UPDATE_SNAPSHOTS=1 and review the diff"

    def write(self) -> None:
        known = {case_id(*case) for case in CASES}
        merged = {key: value for key, value in {**self.stored, **self.recorded}.items() if key in known}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(merged, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@pytest.fixture(scope="module")
def snapshots():
    store = Snapshots(SNAPSHOT_FILE)
    yield store
    if UPDATE and store.recorded:
        store.write()


@pytest.mark.parametrize(("name", "source"), CASES, ids=[case_id(*case) for case in CASES])
def test_sql_snapshot(snapshots: Snapshots, name: str, source: str) -> None:
    query = compiled(name, source)
    assert " ".join(sql_lines(query.sql)) == query.sql
    snapshots.check(case_id(name, source), as_snapshot(query))


@pytest.mark.skipif(UPDATE, reason="the snapshot file is being rewritten")
def test_snapshot_file_has_no_stale_entries() -> None:
    stored = json.loads(SNAPSHOT_FILE.read_text())
    assert set(stored) == {case_id(*case) for case in CASES}


def test_rollup_sql_re_sums_parts_and_raw_sql_aggregates_rows() -> None:
    raw, rollup = compiled("summary", "raw").sql, compiled("summary", "rollup").sql
    assert "count(DISTINCT invoice_id) + count(*) - count(invoice_id) AS invoices" in raw and "count(*) AS lines" in raw
    assert "sum(invoices) AS invoices" in rollup and "sum(lines) AS lines" in rollup
    assert "invoice_id" not in compiled("summary-without-invoice-id", "raw").sql


def test_every_grain_has_a_duckdb_expression() -> None:
    assert set(DuckDBDialect.time_grains) == set(Grain)
    assert set(DuckDBDialect.time_grains) == {"P1D", "P1W", "P1M", "P3M", "P1Y"}


# --- bound parameters -----------------------------------------------------------------------

HOSTILE_VALUES = [
    "x'); DROP TABLE y; --",
    "' OR '1'='1",
    '"; DROP TABLE y; --',
    "A' --",
    "\\'; SELECT 42; --",
    "A\x00B",
    "Ünïcödé — \u202e",
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_filter_values_are_bound_never_pasted(value: str, source: str) -> None:
    for filters in (Filters(include={"branch": (value, "A")}), Filters(exclude={"product_line": (value,)})):
        for spec in (
            Summary(datasource="sales", filters=filters),
            TopN(datasource="sales", filters=filters),
            TimeSeries(datasource="sales", grain=Grain.WEEK, filters=filters),
            Breakdown(datasource="sales", by=("branch", "city"), filters=filters),
        ):
            query = compile_spec(spec, source=SOURCES[source], dialect=DuckDBDialect(), has_invoice_id=True)
            assert value not in query.sql
            assert value in query.params
            assert query.sql.count("?") == len(query.params)


BAD_NAMES = [
    'branch" ; DROP TABLE y; --',
    "branch; DROP TABLE y",
    "Branch",
    "1branch",
    "branch name",
    "branch)",
    "a" * 64,
    "",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_malformed_dimension_names_are_a_query_error(name: str) -> None:
    specs: list[QuerySpec] = [
        Breakdown(datasource="sales", by=(name,)),
        Breakdown(datasource="sales", by=("branch", name)),
        TopN(datasource="sales", dimension=name),
        Summary(datasource="sales", filters=Filters(include={name: ("A",)})),
        Summary(datasource="sales", filters=Filters(exclude={name: ("A",)})),
    ]
    if name:
        specs.append(TimeSeries(datasource="sales", split_by=name))
    for spec in specs:
        with pytest.raises(QueryError):
            compile_spec(spec, source=SOURCES["raw"], dialect=DuckDBDialect(), has_invoice_id=True)


def test_sort_and_metrics_are_checked_before_any_sql() -> None:
    with pytest.raises(QueryError):
        Breakdown(datasource="sales", sort='revenue" DESC; DROP TABLE y; --').validate()
    with pytest.raises(QueryError):
        Summary(datasource="sales", metrics=("revenue; DROP TABLE y",)).validate()
    with pytest.raises(QueryError):
        TopN(datasource="sales", metric="profit").validate()
    with pytest.raises(QueryError):
        TopN(datasource="sales", n=0).validate()


@pytest.mark.parametrize(
    "spec",
    [
        # `revenue` is also a column: grouping by it gave two "revenue" columns, one overwriting the other.
        pytest.param(Breakdown(datasource="sales", by=("revenue",)), id="breakdown-by-a-metric"),
        pytest.param(TopN(datasource="sales", dimension="cost", metric="revenue"), id="topn-by-a-metric"),
        pytest.param(TimeSeries(datasource="sales", split_by="gross_profit"), id="split-by-a-metric"),
        pytest.param(Breakdown(datasource="sales", by=("branch", "branch")), id="dimension-twice"),
        # A negative limit reached DuckDB ("LIMIT/OFFSET cannot be negative"): a 500 from /api/metrics/breakdown.
        pytest.param(Breakdown(datasource="sales", limit=-1), id="negative-limit"),
        pytest.param(Breakdown(datasource="sales", limit=0), id="zero-limit"),
    ],
)
def test_specs_that_cannot_be_answered_as_asked_are_a_query_error(spec: QuerySpec) -> None:
    with pytest.raises(QueryError):
        spec.validate()


# --- through run_query, against published data ------------------------------------------------


@pytest.fixture
def engine_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    execute = EmbeddedEngine.execute

    def counting(self, sql: str, params: list) -> list[tuple]:
        calls.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(EmbeddedEngine, "execute", counting)
    return calls


@pytest.fixture
def published(db, tmp_path: Path) -> list[dict]:
    rows = sales_rows(start=dt.date(2023, 12, 20), days=60, per_day=5, seed=11)
    for row in rows[::3]:
        row["payment"] = "Ewallet"
        row["city"] = "Mandalay"
    synthetic_publish(datasource="sales", rows=rows, workdir=tmp_path)
    return rows


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(Breakdown(datasource="sales", by=("colour",)), id="breakdown-unknown"),
        pytest.param(Breakdown(datasource="sales", by=('branch"; DROP TABLE y; --',)), id="breakdown-malicious"),
        pytest.param(TopN(datasource="sales", dimension="colour"), id="topn-unknown"),
        pytest.param(TopN(datasource="sales", dimension="product_line; --"), id="topn-malicious"),
        pytest.param(TimeSeries(datasource="sales", split_by="colour"), id="timeseries-unknown"),
        pytest.param(
            Summary(datasource="sales", filters=Filters(include={"colour": ("red",)})), id="filter-include-unknown"
        ),
        pytest.param(
            Summary(datasource="sales", filters=Filters(exclude={"x') OR 1=1 --": ("red",)})),
            id="filter-exclude-malicious",
        ),
    ],
)
def test_unknown_or_malicious_dimension_is_a_query_error_before_the_engine(
    published, engine_calls, spec: QuerySpec
) -> None:
    with pytest.raises(QueryError):
        run_query(spec, user=None)
    assert engine_calls == []


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_filter_values_match_nothing_and_harm_nothing(published, value: str) -> None:
    engine = EmbeddedEngine()
    # The engine's own DuckDB connection, with a table the hostile values try to drop.
    engine.execute("CREATE OR REPLACE TABLE y AS SELECT 42 AS answer", [])
    try:
        everything = run_query(Summary(datasource="sales"), user=None).first
        for spec in (
            Summary(datasource="sales", filters=Filters(include={"branch": (value,)})),
            Summary(datasource="sales", filters=Filters(include={"invoice_id": (value,)})),  # raw rows
        ):
            assert run_query(spec, user=None).first["lines"] == 0
        kept = run_query(Summary(datasource="sales", filters=Filters(exclude={"product_line": (value,)})), user=None)
        assert kept.first == everything
        assert engine.execute("SELECT answer FROM y", []) == [(42,)]
    finally:
        engine.execute("DROP TABLE IF EXISTS y", [])


def _largest_rollup(*, spec, filters, snapshot) -> Rollup:
    return max(snapshot.rollups, key=lambda rollup: len(rollup.dimensions))


@pytest.mark.skipif(UPDATE, reason="the snapshot file is being rewritten")
def test_snapshots_are_what_run_query_executes(published, monkeypatch) -> None:
    """Every snapshot (with invoice ids) is the SQL run_query runs, and raw and rollup agree."""
    import analytics.runner

    stored = json.loads(SNAPSHOT_FILE.read_text())
    for name, spec in SPECS.items():
        answers = {}
        for source, chooser in (("raw", lambda **_: None), ("rollup", _largest_rollup)):
            monkeypatch.setattr(analytics.runner, "rollup_choose", chooser)
            result = run_query(spec, user=None, use_cache=False)
            assert (result.source == "raw") == (source == "raw")
            assert result.sql == " ".join(stored[case_id(name, source)]["sql"]), case_id(name, source)
            answers[source] = result.rows
        assert len(answers["raw"]) == len(answers["rollup"]), name
        for raw_row, rollup_row in zip(answers["raw"], answers["rollup"], strict=True):
            assert raw_row.keys() == rollup_row.keys()
            for key, value in raw_row.items():
                assert rollup_row[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)
        if isinstance(spec, Summary) and name != "summary-empty-in-list":
            assert answers["raw"][0]["lines"] > 0, name


@pytest.mark.parametrize("comparison", list(Comparison))
def test_a_comparison_runs_the_same_sql_with_shifted_dates(published, engine_calls, comparison) -> None:
    spec = Summary(datasource="sales", filters=Filters(start=dt.date(2024, 1, 11), end=dt.date(2024, 1, 20)))
    run_query(Summary(datasource="sales", filters=spec.filters, comparison=comparison), user=None)
    assert len(engine_calls) == 2
    assert engine_calls[0] == engine_calls[1]


@pytest.mark.parametrize("dialect", ["duckdb", "druid"])
def test_a_limit_beyond_32_bits_is_sent_as_the_largest_every_engine_takes(dialect: str) -> None:
    # Druid refused LIMIT 2147483648 (a 503) although the API documents limits up to 2⁶³ − 1.
    from analytics.engines.druid import DruidDialect

    engine_dialect = DuckDBDialect() if dialect == "duckdb" else DruidDialect()
    for spec in (
        Breakdown(datasource="sales", by=("branch",), limit=2**63 - 1),
        TopN(datasource="sales", dimension="branch", n=2**40),
    ):
        sql = compile_spec(spec, source=SOURCES["raw"], dialect=engine_dialect, has_invoice_id=True).sql
        assert sql.endswith(" LIMIT 2147483647"), sql


@pytest.mark.django_db
@pytest.mark.parametrize("column", ["date", "datetime", "quantity", "unit_price", "revenue"])
def test_a_stored_measure_or_date_is_not_a_dimension(column: str, tmp_path: Path) -> None:
    # The embedded engine grouped by them; Druid, which stores only dimensions, answered 503.
    synthetic_publish(datasource="sales", rows=sales_rows(start=dt.date(2024, 1, 1), days=2), workdir=tmp_path)
    with pytest.raises(QueryError, match=r"Unknown dimension|not a dimension"):
        run_query(Breakdown(datasource="sales", by=(column,)), user=None)
