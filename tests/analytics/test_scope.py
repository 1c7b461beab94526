"""Branch scope (DESIGN.md "Security model"): a scoped user's answer is the answer on data where
every other branch's rows were deleted — in summaries, series, top-N, breakdowns and comparisons."""

import datetime as dt
import itertools

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import user_branch_scope_set
from analytics.metrics import METRICS
from analytics.query import Breakdown, Comparison, Filters, Summary, TimeSeries, TopN
from analytics.runner import run_query, scope_apply
from tests.analytics.helpers import (
    DIMENSION_VALUES,
    full_answer_check,
    query_specs,
    rows_equal,
    rows_publish,
    sale_line,
    sales_rows,
    spec_for,
)
from tests.factories import UserFactory

_datasource_numbers = itertools.count()


@pytest.fixture
def scoped_user(db):
    return UserFactory()


@pytest.fixture
def unscoped_user(db):
    return UserFactory()


@pytest.mark.django_db
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=sales_rows(),
    scope=st.sets(st.sampled_from((*DIMENSION_VALUES["branch"], "Elsewhere")), min_size=1),
    specs=st.lists(query_specs(), min_size=1, max_size=4),
)
def test_scoped_answer_is_the_answer_without_other_branches(scoped_user, unscoped_user, rows, scope, specs):
    cache.clear()
    number = next(_datasource_numbers)
    everything, visible_only = f"scope_all_{number}", f"scope_visible_{number}"
    visible = [row for row in rows if row["branch"] in scope]
    rows_publish(datasource=everything, rows=rows)
    if visible:
        rows_publish(datasource=visible_only, rows=visible)
    user_branch_scope_set(user=scoped_user, branches=sorted(scope))

    for spec in specs:
        scoped = run_query(spec_for(spec, datasource=everything), user=scoped_user)
        expected = run_query(spec_for(spec, datasource=visible_only), user=unscoped_user)
        assert rows_equal(scoped.rows, expected.rows), f"scoped {scoped.rows} ≠ without other branches {expected.rows}"
        if spec.comparison is not None:
            assert rows_equal(scoped.comparison.rows, expected.comparison.rows), (
                f"comparison: scoped {scoped.comparison.rows} ≠ without other branches {expected.comparison.rows}"
            )
        if visible:
            full_answer_check(scoped, spec, visible)


# --- fixed cases ---------------------------------------------------------------------------------

TWO_BRANCHES = [
    sale_line(branch="A", revenue=10.0, gross_profit=4.0, cost=6.0, invoice_id="A-1"),
    sale_line(branch="A", revenue=20.0, gross_profit=5.0, cost=15.0, invoice_id="A-1", product_line="Home"),
    sale_line(branch="B", revenue=700.0, gross_profit=70.0, cost=630.0, invoice_id="B-1"),
    sale_line(branch="B", revenue=300.0, gross_profit=30.0, cost=270.0, invoice_id="B-2", date=dt.date(2024, 3, 1)),
]


@pytest.fixture
def two_branches(db) -> str:
    rows_publish(datasource="two_branches", rows=TWO_BRANCHES)
    return "two_branches"


def test_branch_outside_the_scope_gives_zeros_and_no_rows(two_branches, scoped_user):
    user_branch_scope_set(user=scoped_user, branches=["A"])
    only_b = Filters(include={"branch": ("B",)})
    not_a = Filters(exclude={"branch": ("A",)})
    for filters in (only_b, not_a):
        summary = run_query(
            Summary(datasource=two_branches, filters=filters, comparison=Comparison.PREVIOUS_PERIOD), user=scoped_user
        )
        assert summary.first["revenue"] == 0
        assert summary.first["lines"] == 0
        assert summary.first["transactions"] == 0
        assert summary.first["gross_margin"] is None
        assert summary.comparison.first["revenue"] == 0
        assert run_query(TimeSeries(datasource=two_branches, filters=filters), user=scoped_user).rows == []
        ranking = TopN(datasource=two_branches, filters=filters, dimension="branch")
        assert run_query(ranking, user=scoped_user).rows == []
        breakdown = Breakdown(datasource=two_branches, filters=filters, by=("branch", "product_line"))
        assert run_query(breakdown, user=scoped_user).rows == []


def test_scoped_ranking_never_shows_another_branch(two_branches, scoped_user):
    user_branch_scope_set(user=scoped_user, branches=["A"])
    ranking = run_query(TopN(datasource=two_branches, dimension="branch", n=10), user=scoped_user)
    assert ranking.rows == [{"branch": "A", "revenue": 30.0}]
    asked_for_both = Filters(include={"branch": ("A", "B")})
    summary = run_query(Summary(datasource=two_branches, filters=asked_for_both), user=scoped_user)
    assert summary.first["revenue"] == 30.0
    assert summary.first["transactions"] == 1


def test_superuser_is_never_scoped(two_branches, db):
    superuser = UserFactory(is_superuser=True)
    user_branch_scope_set(user=superuser, branches=["A"])
    totals = run_query(Summary(datasource=two_branches), user=superuser).first
    assert totals["revenue"] == 1030.0
    assert totals["transactions"] == 3


def test_empty_scope_means_every_branch(two_branches, scoped_user):
    user_branch_scope_set(user=scoped_user, branches=["A"])
    assert run_query(Summary(datasource=two_branches), user=scoped_user).first["revenue"] == 30.0
    user_branch_scope_set(user=scoped_user, branches=[])
    assert run_query(Summary(datasource=two_branches), user=scoped_user).first["revenue"] == 1030.0


def test_open_ended_comparison_uses_the_visible_data_s_own_days(scoped_user, unscoped_user, db):
    # Branch B's late sale must not stretch a branch-A user's "all data" period (and so the year-earlier one).
    rows = [
        sale_line(branch="A", date=dt.date(2023, 3, 1), revenue=5.0),
        sale_line(branch="A", date=dt.date(2024, 1, 10), revenue=7.0),
        sale_line(branch="B", date=dt.date(2024, 6, 1), revenue=900.0),
    ]
    rows_publish(datasource="late_b", rows=rows)
    rows_publish(datasource="late_b_visible", rows=rows[:2])
    user_branch_scope_set(user=scoped_user, branches=["A"])
    for comparison in Comparison:
        spec = Summary(datasource="late_b", comparison=comparison)
        scoped = run_query(spec, user=scoped_user)
        expected = run_query(spec_for(spec, datasource="late_b_visible"), user=unscoped_user)
        assert scoped.comparison.period == expected.comparison.period
        assert rows_equal(scoped.comparison.rows, expected.comparison.rows)


@pytest.mark.parametrize("first", ["scoped", "unscoped"])
def test_a_cached_comparison_is_never_served_to_a_user_of_another_scope(scoped_user, unscoped_user, db, first):
    # Both ask for branch A, so their scoped filters are equal; their open periods are not (the
    # unscoped one runs to B's last day), and whoever asked first filled the other's answer.
    cache.clear()
    rows = [
        sale_line(branch="A", date=dt.date(2023, 3, 1), revenue=100.0),
        sale_line(branch="A", date=dt.date(2024, 3, 1), revenue=10.0),
        sale_line(branch="B", date=dt.date(2025, 3, 1), revenue=1000.0),
    ]
    rows_publish(datasource="scope_cache", rows=rows)
    user_branch_scope_set(user=scoped_user, branches=["A"])
    spec = Summary(
        datasource="scope_cache",
        filters=Filters(include={"branch": ("A",)}),
        comparison=Comparison.SAME_PERIOD_LAST_YEAR,
    )
    users = {"scoped": scoped_user, "unscoped": unscoped_user}
    order = [first, *(name for name in users if name != first)]
    answers = {name: run_query(spec, user=users[name]).comparison for name in order}
    assert answers["scoped"].period == (dt.date(2022, 3, 1), dt.date(2023, 3, 1))
    assert answers["scoped"].first["revenue"] == 100.0
    assert answers["unscoped"].period == (dt.date(2022, 3, 1), dt.date(2024, 3, 1))
    assert answers["unscoped"].first["revenue"] == 110.0


def test_scope_with_no_visible_rows_answers_like_an_empty_datasource(two_branches, scoped_user, unscoped_user):
    user_branch_scope_set(user=scoped_user, branches=["Elsewhere"])
    spec = Summary(datasource=two_branches, metrics=tuple(METRICS), comparison=Comparison.PREVIOUS_PERIOD)
    scoped = run_query(spec, user=scoped_user)
    empty = run_query(spec_for(spec, datasource="never_published"), user=unscoped_user)
    assert scoped.rows == empty.rows
    assert scoped.comparison.rows == empty.comparison.rows


def test_lines_without_invoice_id_count_alike_with_or_without_other_branches(scoped_user, unscoped_user, db):
    # Branch B has invoice ids, branch A's lines have none: A's transactions must not depend on B.
    rows = [
        sale_line(branch="A", invoice_id=None),
        sale_line(branch="A", invoice_id=None),
        sale_line(branch="B", invoice_id="B-1"),
    ]
    rows_publish(datasource="mixed_ids", rows=rows)
    rows_publish(datasource="mixed_ids_a", rows=rows[:2])
    user_branch_scope_set(user=scoped_user, branches=["A"])
    spec = Summary(datasource="mixed_ids", metrics=("lines", "transactions", "average_ticket"))
    scoped = run_query(spec, user=scoped_user).first
    assert scoped == run_query(spec_for(spec, datasource="mixed_ids_a"), user=unscoped_user).first
    assert scoped == {"lines": 2, "transactions": 2, "average_ticket": 10.0}
    assert run_query(spec, user=unscoped_user).first == {"lines": 3, "transactions": 3, "average_ticket": 10.0}


def test_a_user_seeing_no_rows_gets_no_comparison_dates_from_rows_of_other_branches(scoped_user) -> None:
    rows_publish(datasource="others_only", rows=[sale_line(branch="B", date=dt.date(2019, 4, 23))])
    user_branch_scope_set(user=scoped_user, branches=["A"])

    result = run_query(
        Summary(datasource="others_only", comparison=Comparison.PREVIOUS_PERIOD, metrics=("revenue",)), user=scoped_user
    )

    assert result.first["revenue"] == 0
    assert result.comparison is not None and result.comparison.period == (None, None)
    assert result.comparison.first["revenue"] == 0


class CountingBranch(str):
    """A branch name that counts the equality tests made on it."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingBranch.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_scoping_a_long_branch_filter_tests_each_branch_once() -> None:
    # A user scoped to thousands of branches filtering on thousands: a membership test per
    # branch in a tuple was quadratic (2.25 million comparisons here).
    branches = [f"Store {number:05d}" for number in range(3000)]
    allowed = tuple(CountingBranch(branch) for branch in branches)
    CountingBranch.comparisons = 0

    scoped = scope_apply(Filters(include={"branch": tuple(branches[::2])}), allowed=allowed)

    assert scoped.include["branch"] == tuple(sorted(branches[::2]))
    assert CountingBranch.comparisons <= 2 * len(branches)
