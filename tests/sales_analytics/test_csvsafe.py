"""Cells a spreadsheet would run as formulas are neutralised; numbers written as text are not."""

import pytest

from sales_analytics.csvsafe import neutralize_cell


@pytest.mark.parametrize(
    "value", ["=HYPERLINK(1)", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1)", "-", "\t=1"]
)
def test_formula_like_text_is_prefixed(value: str) -> None:
    assert neutralize_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-66.65", "+12", "-1,234.50", "-1.5e3", "-0,75", -66.65, 12])
def test_numbers_stay_numbers(value: object) -> None:
    # An error report's rejected "-66.65" was written '-66.65.
    assert neutralize_cell(value) == value
