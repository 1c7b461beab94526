"""Random specs on random data: `run_query` equals a pure-Python oracle over the raw rows, and a
spec that a rollup covers is answered from that rollup (DESIGN.md data flow step 9)."""

import itertools

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analytics.rollups import ROLLUP_DEFINITIONS
from analytics.runner import run_query
from tests.analytics.helpers import (
    expected_source,
    full_answer_check,
    query_specs,
    rows_equal,
    rows_publish,
    sales_rows,
    spec_for,
)

ROLLUPS = {definition.name: definition.dimensions for definition in ROLLUP_DEFINITIONS}
# Each example publishes to a datasource of its own, so no example sees another's rows or cache.
_datasource_numbers = itertools.count()


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=sales_rows(),
    cuts=st.lists(st.integers(1, 39), max_size=2).map(tuple),
    specs=st.lists(query_specs(), min_size=1, max_size=4),
)
def test_run_query_equals_oracle_and_uses_covering_rollup(monkeypatch, rows, cuts, specs):
    cache.clear()
    datasource = f"prop_{next(_datasource_numbers)}"
    rows_publish(datasource=datasource, rows=rows, cuts=cuts)
    has_invoice_id = any(row["invoice_id"] is not None for row in rows)

    for generic_spec in specs:
        spec = spec_for(generic_spec, datasource=datasource)
        result = run_query(spec, user=None)
        event(f"{spec.kind} from {result.source}")
        full_answer_check(result, spec, rows, has_invoice_id=has_invoice_id)

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
