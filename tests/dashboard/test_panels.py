"""Panel pieces without a page: how a key figure's change reads."""

import pytest

from dashboard.panels import Kpi


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
