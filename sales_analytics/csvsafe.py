"""Cells that spreadsheet programs would run as formulas are neutralised in every export."""

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: object) -> object:
    """Prefix text that a spreadsheet would evaluate (`=cmd|…`, `@SUM(…)`) with a quote.

    Numbers stay numbers: a negative amount is data, not a formula.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value
