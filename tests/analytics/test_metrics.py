"""Metric definitions over awkward data: lines without a cost or a tax, and rollups of an earlier release."""

import datetime as dt
import math

import duckdb
import pytest
from django.core.cache import cache

from analytics.catalogue import _VERSION_FILES, datasource_snapshot
from analytics.models import Rollup
from analytics.query import Breakdown, Filters, Summary, TopN
from analytics.runner import run_query
from analytics.segments import segment_local_path
from tests.analytics.helpers import rows_publish, sale_line

# Branch A: one file with cost (margin 4/10 on every line) and one without; branch B: no cost at all.
WITH_COST = [sale_line(branch="A", revenue=10.0, cost=6.0, gross_profit=4.0) for _ in range(3)]
WITHOUT_COST = [
    sale_line(branch=branch, revenue=20.0, cost=None, gross_profit=None, date=dt.date(2024, 3, 5))
    for branch in ("A", "B")
]


@pytest.fixture
def mixed_cost(db) -> str:
    rows_publish(datasource="mixed_cost", rows=[*WITH_COST, *WITHOUT_COST], cuts=(len(WITH_COST),))
    return "mixed_cost"


def by_branch(datasource: str) -> dict[str, dict]:
    spec = Breakdown(
        datasource=datasource,
        by=("branch",),
        metrics=("revenue", "cost", "gross_profit", "gross_margin", "revenue_with_cost"),
        sort="branch",
        descending=False,
    )
    return {row["branch"]: row for row in run_query(spec, user=None).rows}


def test_margin_is_of_the_revenue_whose_cost_is_known(mixed_cost) -> None:
    rows = by_branch(mixed_cost)

    assert rows["A"]["revenue"] == 50.0  # every line's revenue
    assert (rows["A"]["cost"], rows["A"]["gross_profit"]) == (18.0, 12.0)  # the lines with a cost
    assert rows["A"]["revenue_with_cost"] == 30.0
    assert math.isclose(rows["A"]["gross_margin"], 0.4)  # 12 / 30, not 12 / 50


def test_cost_and_profit_of_lines_none_of_which_has_a_cost_are_unknown_not_zero(mixed_cost) -> None:
    rows = by_branch(mixed_cost)

    assert rows["B"]["revenue"] == 20.0
    assert (rows["B"]["cost"], rows["B"]["gross_profit"], rows["B"]["gross_margin"]) == (None, None, None)
    assert rows["B"]["revenue_with_cost"] == 0.0


def test_no_lines_at_all_are_zero_cost_and_profit(mixed_cost) -> None:
    spec = Summary(datasource=mixed_cost, filters=Filters(start=dt.date(2030, 1, 1), end=dt.date(2030, 1, 2)))
    row = run_query(spec, user=None).first

    assert (row["revenue"], row["cost"], row["gross_profit"], row["gross_margin"]) == (0.0, 0.0, 0.0, None)


def test_summary_api_reports_unknown_cost_as_null(mixed_cost, viewer_api) -> None:
    body = viewer_api.get("/api/metrics/summary", {"datasource": mixed_cost, "branch": "B"}).json()

    assert (body["total_revenue"], body["total_cost"], body["gross_profit"], body["gross_margin"]) == (
        20.0,
        None,
        None,
        None,
    )


# Branch A: one file with a tax column (1.25 a line) and one without; branch B: no tax at all.
WITH_TAX = [sale_line(branch="A", tax=1.25, revenue=11.25) for _ in range(2)]
WITHOUT_TAX = [sale_line(branch=branch, tax=None, date=dt.date(2024, 3, 5)) for branch in ("A", "B")]


@pytest.fixture
def mixed_tax(db) -> str:
    rows_publish(datasource="mixed_tax", rows=[*WITH_TAX, *WITHOUT_TAX], cuts=(len(WITH_TAX),))
    return "mixed_tax"


def test_tax_of_lines_none_of_which_has_one_is_unknown_not_zero(mixed_tax) -> None:
    spec = Breakdown(datasource=mixed_tax, by=("branch",), metrics=("revenue", "tax"), sort="branch", descending=False)
    rows = {row["branch"]: row for row in run_query(spec, user=None).rows}

    assert rows["A"]["tax"] == 2.5  # the lines that have one
    assert (rows["B"]["revenue"], rows["B"]["tax"]) == (10.0, None)  # a file without tax is not tax-free
    # Over no lines at all the tax is 0, as revenue and cost are.
    empty = Summary(datasource=mixed_tax, metrics=("tax",), filters=Filters(start=dt.date(2030, 1, 1)))
    assert run_query(empty, user=None).first["tax"] == 0.0


def test_unknown_tax_is_null_in_rest_and_graphql(mixed_tax, viewer_api) -> None:
    rest = viewer_api.get("/api/metrics/breakdown", {"datasource": mixed_tax, "by": "branch", "metric": "tax"}).json()
    graphql = viewer_api.post(
        "/graphql",
        {
            "query": '{ dashboardData(datasource: "mixed_tax", filters: {branch: ["B"]}) { topProducts(metric: "tax") '
            "{ productLine value } } }"
        },
        content_type="application/json",
    ).json()

    assert {row["branch"]: row["tax"] for row in rest["rows"]} == {"A": 2.5, "B": None}
    assert graphql["data"]["dashboardData"]["topProducts"] == [{"productLine": "Food", "value": None}]


def _rollups_of_an_earlier_release(datasource: str) -> None:
    """The current version's rollup files and catalogue rows as a release before `revenue_with_profit` stored them."""
    for rollup in Rollup.objects.filter(datasource__name=datasource):
        path = segment_local_path(segment=rollup)
        older = path.with_suffix(".older")
        with duckdb.connect() as con:
            con.execute(
                "COPY (SELECT * EXCLUDE (revenue_with_profit) FROM read_parquet($1)) TO $2 (FORMAT parquet)".replace(
                    "$2", "'" + str(older).replace("'", "''") + "'"
                ),
                [str(path)],
            )
        older.replace(path)
        rollup.parts = [part for part in rollup.parts if part != "revenue_with_profit"]
        rollup.save(update_fields=["parts"])
    # As after a deployment: no process holds the catalogue rows read before the migration.
    _VERSION_FILES.clear()
    cache.clear()


def test_rollups_of_an_earlier_release_answer_what_they_hold_and_raw_rows_the_rest(mixed_cost) -> None:
    expected = by_branch(mixed_cost)
    _rollups_of_an_earlier_release(mixed_cost)

    margins = run_query(Breakdown(datasource=mixed_cost, by=("branch",), metrics=("gross_margin",)), user=None)
    revenue = run_query(Breakdown(datasource=mixed_cost, by=("branch",), metrics=("revenue",)), user=None)

    assert margins.source == "raw"
    assert {row["branch"]: row["gross_margin"] for row in margins.rows} == {
        branch: row["gross_margin"] for branch, row in expected.items()
    }
    assert revenue.source != "raw"


def test_the_next_upload_rebuilds_rollups_of_an_earlier_release(mixed_cost) -> None:
    _rollups_of_an_earlier_release(mixed_cost)

    rows_publish(datasource=mixed_cost, rows=[sale_line(branch="B", date=dt.date(2024, 3, 6))])

    snapshot = datasource_snapshot(name=mixed_cost)
    assert all("revenue_with_profit" in rollup.parts for rollup in snapshot.rollups)
    margins = run_query(Breakdown(datasource=mixed_cost, by=("branch",), metrics=("gross_margin",)), user=None)
    assert margins.source != "raw"
    assert {row["branch"]: row["gross_margin"] for row in margins.rows} == {"A": pytest.approx(0.4), "B": 0.4}


# Every line's margin is 1/21 (cost c, revenue 1.05 c, gross profit 0.05 c, as in the real file),
# but each branch's sums differ from 1/21 in the last binary digits, each in its own way.
EQUAL_MARGINS = [
    sale_line(branch=branch, cost=cost, revenue=cost * 1.05, gross_profit=cost * 0.05)
    for branch, costs in (
        ("A", (507.56, 285.19, 133.02)),
        ("B", (344.32, 164.55, 659.37)),
        ("C", (186.11, 756.06, 92.71)),
        ("D", (599.15, 628.98, 864.05)),
    )
    for cost in costs
]


@pytest.mark.parametrize("ascending", [True, False])
def test_equal_margins_tie_and_rank_by_name_whatever_their_float_noise(db, ascending: bool) -> None:
    rows_publish(datasource="equal_margins", rows=EQUAL_MARGINS)
    spec = Breakdown(
        datasource="equal_margins",
        by=("branch",),
        metrics=("gross_margin",),
        sort="gross_margin",
        descending=not ascending,
    )
    topn = TopN(datasource="equal_margins", dimension="branch", metric="gross_margin", n=3, ascending=ascending)

    breakdown = run_query(spec, user=None).rows
    assert len({row["gross_margin"] for row in breakdown}) > 1  # the noise is there…
    assert all(math.isclose(row["gross_margin"], 1 / 21) for row in breakdown)
    assert [row["branch"] for row in breakdown] == ["A", "B", "C", "D"]  # …and does not order them
    assert [row["branch"] for row in run_query(topn, user=None).rows] == ["A", "B", "C"]
