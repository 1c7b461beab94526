"""Number formatting for pages: amounts are rounded only here, for display."""

import datetime as dt
from typing import Any

from django import template

register = template.Library()


def format_value(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "currency":
        return f"{value:,.2f}"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "number":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    if kind == "datetime" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


@register.filter
def formatted(value: Any, kind: str) -> str:
    return format_value(value, kind)


@register.filter
def cell(row: dict, column: Any) -> str:
    """A table cell: the row's value for the column, formatted by the column's kind (or the row's)."""
    kind = row.get("kind", "text") if column.kind == "auto" else column.kind
    return format_value(row.get(column.key), kind)


@register.filter
def signed_percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.1f}%"
