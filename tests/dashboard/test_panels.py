"""Panel pieces without a page: how a key figure's change reads, and panels over large results."""

import datetime as dt

import pytest
from django.http import QueryDict

from dashboard import panels
from dashboard.filters import page_filters_parse
from dashboard.panels import Kpi, PanelContext
from tests.analytics.helpers import rows_publish, sale_line


@pytest.mark.parametrize(
    ("kpi", "text", "direction"),
    [
        # A margin changes in percentage points, not by a percentage of itself.
        (Kpi("Gross margin", 0.044, "percent", previous=0.041), "+0.3 pp", "up"),
        (Kpi("Gross margin", 0.038, "percent", previous=0.041), "-0.3 pp", "down"),
        # Two equal margins whose floats differ in the 16th digit: no change, neither up nor down.
        (Kpi("Gross margin", 0.04761904761904762, "percent", previous=0.047619047619047616), "0.0 pp", ""),
        (Kpi("Gross margin", 0.05, "percent", previous=0.0), "+5.0 pp", "up"),
        (Kpi("Revenue", 110.0, "currency", previous=100.0), "+10.0%", "up"),
        (Kpi("Revenue", 90.0, "currency", previous=100.0), "-10.0%", "down"),
        # A change that rounds to zero is shown as zero, unsigned and unstyled.
        (Kpi("Revenue", 100.0001, "currency", previous=100.0), "0.0%", ""),
        (Kpi("Revenue", 99.9999, "currency", previous=100.0), "0.0%", ""),
    ],
)
def test_a_change_reads_as_it_rounds(kpi: Kpi, text: str, direction: str) -> None:
    assert (kpi.change_text, kpi.direction) == (text, direction)


def test_no_change_without_a_base() -> None:
    assert Kpi("Revenue", 100.0, "currency", previous=0).change is None
    assert Kpi("Gross margin", 0.05, "percent", previous=None).change is None
    assert Kpi("Gross margin", 0.05, "percent", previous=0.04, comparable=False).change_text == ""


# --- large results: every lookup per result row is constant-time ---------------------------------


class CountingLabel(str):
    """A period label that counts the equality tests made on it: a list's `.index` per row makes
    as many tests as the labels before it (quadratic), a dict lookup one."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountingLabel.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


@pytest.fixture
def years_of_days(db) -> str:
    """Every day of eleven years, at two branches: as many periods as a day grain over decades shows."""
    first = dt.date(2000, 1, 1)
    days = [first + dt.timedelta(days=offset) for offset in range(4000)]
    rows_publish(datasource="years", rows=[sale_line(date=day, branch=branch) for day in days for branch in ("A", "B")])
    return "years"


def test_a_split_trend_looks_each_period_up_once(years_of_days, viewer, monkeypatch) -> None:
    real_label = panels._bucket_label
    monkeypatch.setattr(panels, "_bucket_label", lambda *args: CountingLabel(real_label(*args)))
    CountingLabel.comparisons = 0
    ctx = PanelContext(filters=page_filters_parse(QueryDict("datasource=years&grain=day"), user=viewer), user=viewer)

    panel = panels.panel_branch_trend(ctx)

    rows = len(panel.table.rows)
    assert rows == 8000
    assert len(panel.chart["option"]["xAxis"]["data"]) == 4000
    # Linear: a few tests per row (deduplicating, sorting ties, the lookup), not thousands.
    assert CountingLabel.comparisons <= 4 * rows


# --- many branches and product lines: bounded panels whose rows still add up ---------------------

BRANCH_COUNT = 3000
LINE_COUNT = 40
PAYMENT_COUNT = 30


@pytest.fixture
def many_branches(db) -> list[dict]:
    """3,000 branches (the larger the number, the more revenue), 40 product lines, 30 payment
    methods and lines without one: more values than any panel may list."""
    rows = [
        sale_line(
            branch=f"Store {number:04d}",
            product_line=f"Line {number % LINE_COUNT:02d}",
            payment=None if number % 7 == 0 else f"Pay {number % PAYMENT_COUNT:02d}",
            revenue=float(number + 1),
            gross_profit=float(number + 1) / 4,
            cost=float(number + 1) * 3 / 4,
            invoice_id=f"I{number}",
            date=dt.date(2024, 1, 1) + dt.timedelta(days=number % 90),
        )
        for number in range(BRANCH_COUNT)
    ]
    rows_publish(datasource="many", rows=rows)
    return rows


def context_for(user, query: str = "") -> PanelContext:
    return PanelContext(filters=page_filters_parse(QueryDict(f"datasource=many&{query}"), user=user), user=user)


def column_sum(panel: panels.Panel, key: str) -> float:
    return sum(row[key] for row in panel.table.rows)


@pytest.mark.parametrize(
    ("builder", "dimension", "noun", "metrics"),
    [
        (panels.panel_revenue_by_branch, "branch", "branches", ("revenue", "gross_profit", "transactions")),
        (
            panels.panel_branch_comparison,
            "branch",
            "branches",
            ("revenue", "gross_profit", "transactions", "units_sold"),
        ),
        (
            panels.panel_revenue_by_product_line,
            "product_line",
            "product lines",
            ("revenue", "gross_profit", "units_sold"),
        ),
    ],
)
def test_a_long_list_shows_its_top_values_and_one_row_for_the_rest(
    many_branches, viewer, builder, dimension: str, noun: str, metrics: tuple[str, ...]
) -> None:
    panel = builder(context_for(viewer))

    rows = panel.table.rows
    values = len({row[dimension] for row in many_branches})
    shown = panels.LIST_SHOWN
    assert len(rows) == shown + 1
    # Every number still reconciles with the file: the rows add up to its totals.
    for metric in metrics:
        expected = len(many_branches) if metric in ("transactions", "units_sold") else None
        expected = expected or sum(row[metric] for row in many_branches)
        assert column_sum(panel, metric) == pytest.approx(expected)
    assert rows[-1][dimension] == f"Other ({values - shown:,} {noun})"
    assert f"The {shown} of {values:,} {noun} with the most revenue" in panel.note
    assert len(panel.chart["option"]["xAxis"]["data"]) == shown
    assert len(panel.links) == shown


def test_the_rest_keeps_its_own_margin_and_ticket(many_branches, viewer) -> None:
    panel = panels.panel_branch_comparison(context_for(viewer))
    assert [row["branch"] for row in panel.table.rows[:3]] == ["Store 2999", "Store 2998", "Store 2997"]
    other = panel.table.rows[-1]
    rest = [row for row in many_branches if row["branch"] < "Store 2975"]
    revenue = sum(row["revenue"] for row in rest)
    assert other["gross_margin"] == pytest.approx(0.25)  # of the rest's sums, not an average of margins
    assert other["average_ticket"] == pytest.approx(revenue / len(rest))


def test_values_without_one_are_ranked_and_left_out_like_any_other(many_branches, viewer) -> None:
    # Lines without a payment method (a NULL) are among the top values: the "Other" row must
    # neither drop them nor count them twice.
    panel = panels.panel_by_payment(context_for(viewer))
    shown = [row["payment"] for row in panel.table.rows[:-1]]
    assert None in shown
    assert column_sum(panel, "revenue") == pytest.approx(sum(row["revenue"] for row in many_branches))
    assert column_sum(panel, "transactions") == len(many_branches)


def test_a_split_trend_draws_the_top_values_and_one_line_for_the_rest(many_branches, viewer) -> None:
    panel = panels.panel_branch_trend(context_for(viewer, "grain=month"))

    series = panel.chart["option"]["series"]
    names = [line["name"] for line in series]
    assert len(series) == panels.TREND_SERIES_SHOWN + 1
    assert names[-1] == f"Other ({BRANCH_COUNT - panels.TREND_SERIES_SHOWN:,} branches)"
    assert column_sum(panel, "revenue") == pytest.approx(sum(row["revenue"] for row in many_branches))
    assert len(panel.table.rows) <= 3 * len(series)  # three months per line at most
    assert "Filter to see others" in panel.note


def test_the_heatmap_shows_the_top_branches_and_product_lines(many_branches, viewer) -> None:
    panel = panels.panel_margin_heatmap(context_for(viewer))

    option = panel.chart["option"]
    assert len(option["yAxis"]["data"]) <= panels.HEATMAP_SHOWN
    assert len(option["xAxis"]["data"]) <= panels.HEATMAP_SHOWN
    assert len(panel.table.rows) <= panels.HEATMAP_SHOWN**2
    assert "Store 2999" in option["yAxis"]["data"]
    assert "25 of 3,000 branches, 25 of 40 product lines, by revenue; filter to see others." in panel.note


def test_a_filter_narrows_a_bounded_list_to_what_it_names(many_branches, viewer) -> None:
    # Filtered to three branches, nothing is left out: no "Other" row, no note.
    panel = panels.panel_revenue_by_branch(context_for(viewer, "branch=Store 0001&branch=Store 0002&branch=Store 0003"))
    assert [row["branch"] for row in panel.table.rows] == ["Store 0003", "Store 0002", "Store 0001"]
    assert panel.note == ""


def test_equal_margins_get_one_colour_in_the_heatmap(real_file, viewer) -> None:
    # Every branch × product line of the real file has the margin 4.7619…%, equal up to summation
    # noise in the 17th digit: the colour scale ran between the noise, pale to dark red.
    import io

    from django.core.management import call_command

    call_command("ingest", str(real_file), "--datasource", "many", stdout=io.StringIO(), stderr=io.StringIO())
    option = panels.panel_margin_heatmap(context_for(viewer)).chart["option"]
    margins = {cell[2] for cell in option["series"][0]["data"]}
    assert len(option["series"][0]["data"]) == 18 and len(margins) == 1
    assert option["visualMap"]["min"] == pytest.approx(1 / 21)
    assert option["visualMap"]["max"] > option["visualMap"]["min"]
