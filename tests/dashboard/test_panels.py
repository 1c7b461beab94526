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
