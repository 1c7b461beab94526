"""Random specs on random data: `run_query` equals a pure-Python oracle over the raw rows, and a
spec that a rollup covers is answered from that rollup (DESIGN.md data flow step 9)."""

import datetime as dt
import itertools

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analytics.query import Breakdown, Comparison, Filters, Summary
from analytics.rollups import ROLLUP_DEFINITIONS
from analytics.runner import run_query
from tests.analytics.helpers import (
    expected_source,
    full_answer_check,
    query_specs,
    rows_equal,
    rows_publish,
    sale_line,
    sales_rows,
    spec_for,
)

ROLLUPS = {definition.name: definition.dimensions for definition in ROLLUP_DEFINITIONS}
# Each example publishes to a datasource of its own, so no example sees another's rows or cache.
_datasource_numbers = itertools.count()


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=sales_rows(),
    cuts=st.lists(st.integers(1, 39), max_size=2).map(tuple),
    specs=st.lists(query_specs(), min_size=1, max_size=4),
)
def test_run_query_equals_oracle_and_uses_covering_rollup(monkeypatch, rows, cuts, specs):
    cache.clear()
    datasource = f"prop_{next(_datasource_numbers)}"
    rows_publish(datasource=datasource, rows=rows, cuts=cuts)

    for generic_spec in specs:
        spec = spec_for(generic_spec, datasource=datasource)
        result = run_query(spec, user=None)
        event(f"{spec.kind} from {result.source}")
        full_answer_check(result, spec, rows)

        assert result.source == expected_source(spec, rows, filters=spec.filters, rollups=ROLLUPS)
        if result.comparison is not None:
            assert result.comparison.source == result.source

        with monkeypatch.context() as patched:
            patched.setattr("analytics.runner.rollup_choose", lambda **kwargs: None)
            from_raw = run_query(spec, user=None, use_cache=False)
        assert from_raw.source == "raw"
        assert rows_equal(result.rows, from_raw.rows), f"rollup {result.rows} ≠ raw {from_raw.rows}"
        if spec.comparison is not None:
            assert rows_equal(result.comparison.rows, from_raw.comparison.rows)

        again = run_query(spec, user=None)
        assert again.cached
        assert rows_equal(again.rows, result.rows)


@pytest.mark.django_db
def test_same_period_last_year_of_a_leap_day():
    rows = [
        sale_line(date=dt.date(2023, 2, 28), revenue=1.0),
        sale_line(date=dt.date(2023, 3, 1), revenue=100.0),
        sale_line(date=dt.date(2024, 2, 29), revenue=5.0),
    ]
    rows_publish(datasource="leap", rows=rows)
    for filters in (Filters(start=dt.date(2024, 2, 1), end=dt.date(2024, 2, 29)), Filters(start=dt.date(2024, 2, 1))):
        spec = Summary(datasource="leap", filters=filters, comparison=Comparison.SAME_PERIOD_LAST_YEAR)
        result = run_query(spec, user=None)
        full_answer_check(result, spec, rows)
        assert result.comparison.period == (dt.date(2023, 2, 1), dt.date(2023, 2, 28))
        assert result.comparison.first["revenue"] == 1.0


@pytest.mark.django_db
def test_invoice_with_a_dimension_on_some_lines_only_counts_once():
    # City NULL on one line and "Yangon" on the other: two cells of any rollup keeping the city,
    # so summing per-cell invoice counts over the city would count the invoice twice.
    rows = [sale_line(invoice_id="I-1", city=None), sale_line(invoice_id="I-1", city="Yangon", product_line="Home")]
    rows_publish(datasource="partial_city", rows=rows)
    spec = Breakdown(datasource="partial_city", by=("gender",), metrics=("transactions", "average_ticket"))
    result = run_query(spec, user=None)
    full_answer_check(result, spec, rows)
    assert result.rows == [{"gender": "Female", "transactions": 1, "average_ticket": 20.0}]
    assert result.source == expected_source(spec, rows, filters=spec.filters, rollups=ROLLUPS) == "raw"
