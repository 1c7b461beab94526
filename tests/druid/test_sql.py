"""The SQL the Druid engine sends, per spec (no Druid needed): snapshots, parameters, dialect rules.

The expected SQL and typed parameters live in `__snapshots__/druid_sql.json`, so a review shows
how a query changed. After an intended change, rewrite the file and review its diff:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/druid/test_sql.py -p no:cacheprovider
"""

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from analytics.engines.druid import PART_SQL, DruidDialect, sql_parameter
from analytics.engines.druid_ingestion import METRICS_SPEC, curated_dimensions, curated_ndjson_write
from analytics.metrics import ADDITIVE_PARTS, PARTS
from analytics.query import Filters, Grain, Summary
from analytics.sql import Source, compile_spec, quote
from tests.analytics.helpers import sale_line, sales_frame
from tests.druid.specs import parity_specs

SNAPSHOT_FILE = Path(__file__).parent / "__snapshots__" / "druid_sql.json"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
SOURCE = Source(name="druid", table_sql=quote("sales"), part_sql=PART_SQL)
SPECS = parity_specs("sales")


def compiled(name: str) -> dict:
    query = compile_spec(SPECS[name], source=SOURCE, dialect=DruidDialect(), has_invoice_id=True)
    return {"sql": query.sql, "parameters": [sql_parameter(value) for value in query.params]}


@pytest.fixture(scope="module")
def snapshots():
    stored = json.loads(SNAPSHOT_FILE.read_text()) if SNAPSHOT_FILE.exists() else {}
    current: dict = {}
    yield stored, current
    if UPDATE:
        SNAPSHOT_FILE.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("name", list(SPECS))
def test_sql_matches_snapshot(snapshots, name: str) -> None:
    stored, current = snapshots
    current[name] = compiled(name)
    if UPDATE:
        return
    assert name in stored, f"no snapshot for {name}: run with UPDATE_SNAPSHOTS=1 and review the diff"
    assert current[name] == stored[name]


def test_values_are_bound_never_pasted() -> None:
    hostile = "x'); DROP TABLE sales; --"
    spec = Summary(datasource="sales", filters=Filters(include={"branch": (hostile,)}, exclude={"city": (hostile,)}))
    query = compile_spec(spec, source=SOURCE, dialect=DruidDialect(), has_invoice_id=True)
    assert hostile not in query.sql
    assert [sql_parameter(value) for value in query.params] == [
        {"type": "VARCHAR", "value": hostile},
        {"type": "VARCHAR", "value": hostile},
    ]


def test_whole_days_are_half_open_on_time() -> None:
    params: list = []
    clauses = DruidDialect().date_range(params, dt.date(2024, 2, 28), dt.date(2024, 2, 29))
    assert clauses == ["__time >= ?", "__time < ?"]
    assert [sql_parameter(value) for value in params] == [
        {"type": "TIMESTAMP", "value": "2024-02-28 00:00:00"},
        {"type": "TIMESTAMP", "value": "2024-03-01 00:00:00"},
    ]


def test_grains_are_druid_time_floors_keyed_by_period() -> None:
    assert DruidDialect.time_grains == {grain: f"TIME_FLOOR({{column}}, '{grain.value}')" for grain in Grain}


def test_nulls_sort_last_in_both_directions() -> None:
    dialect = DruidDialect()
    assert dialect.order_term('"branch"') == '"branch" IS NULL, "branch"'
    assert dialect.order_term('"revenue"', direction="ASC") == '"revenue" IS NULL, "revenue" ASC'
    assert dialect.order_term('"revenue"', direction="DESC") == '"revenue" DESC'


def test_every_part_has_a_druid_column_and_query() -> None:
    assert set(PART_SQL) == set(PARTS)
    stored = {metric.get("name") or metric["aggregator"]["name"] for metric in METRICS_SPEC}
    assert stored == set(ADDITIVE_PARTS)
    assert "floatSum" not in json.dumps(METRICS_SPEC)
    # PART_SQL["invoices"] restates this definition for Druid's columns: change both together.
    assert PARTS["invoices"].raw_sql == "count(DISTINCT invoice_id) + count(*) - count(invoice_id)"


def test_curated_rows_become_druid_json_lines(tmp_path) -> None:
    rows = [
        sale_line(datetime=dt.datetime(2024, 3, 4, 18, 5), invoice_id="INV-1", tax=1.125, revenue=11.125),
        sale_line(branch="B", city=None, rating=None, quantity=-2, revenue=-20.0, cost=-12.0, gross_profit=-8.0),
    ]
    curated = tmp_path / "curated.parquet"
    sales_frame(rows).write_parquet(curated)

    lines = curated_ndjson_write(curated_path=curated, target=tmp_path / "rows.json").read_text().splitlines()

    first, second = (json.loads(line) for line in lines)
    assert first["date"] == "2024-03-04" and first["hour"] == 18 and first["invoice_id"] == "INV-1"
    assert (first["revenue"], first["tax"]) == (11.125, 1.125)
    assert second["hour"] is None and second["city"] is None and second["rating"] is None
    # A line without tax reaches Druid without one (its doubleSum stays NULL, as the embedded sum does), not as 0.
    assert second["tax"] is None
    assert second["quantity"] == -2
    assert "datetime" not in first and "unit_price" not in first
    assert curated_dimensions(curated) == [
        "branch",
        "product_line",
        "invoice_id",
        "city",
        "customer_type",
        "gender",
        "payment",
    ]
