"""Number formatting for pages: amounts are rounded only here, for display."""

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.utils import timezone

from ingestion.wording import page_spelling

register = template.Library()

# Times are shown to the minute, in the site's time zone (settings.TIME_ZONE), on pages and in exports.
DATETIME_SHOWN = "%Y-%m-%d %H:%M"


def site_datetime(value: dt.datetime) -> dt.datetime:
    """`value` in the site's time zone, without its zone (a spreadsheet cell has none)."""
    return timezone.localtime(value).replace(tzinfo=None) if timezone.is_aware(value) else value


def site_time_zone_name() -> str:
    return timezone.get_current_timezone_name()


def site_time_shown(value: dt.datetime) -> str:
    """A moment as pages show it: to the minute in the site's time zone, with that zone's
    abbreviation at that moment ("2025-01-01 13:00 CET", "… 14:00 CEST" in summer, "… +0630")."""
    if not timezone.is_aware(value):
        return value.strftime(DATETIME_SHOWN)  # a naive time says nothing of its zone
    local = timezone.localtime(value)
    return f"{local.strftime(DATETIME_SHOWN)} {local.tzname()}"


def format_value(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "currency":
        return f"{_cents(value):,.2f}"
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "number":
        return f"{value:,.0f}" if float(value).is_integer() else f"{_cents(value):,.2f}"
    if kind == "datetime" and isinstance(value, dt.datetime):
        return site_time_shown(value)
    return str(value)


def _cents(value: float | int) -> Decimal:
    """Rounded to the cent half up, from the value to 6 decimals: a sum of 43,731.135 is held as
    43731.134999… in binary and would show as .13 here while an export (6 decimals, exact) shows
    .14 once a spreadsheet rounds it."""
    return Decimal(repr(round(float(value), 6))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@register.filter
def formatted(value: Any, kind: str) -> str:
    return format_value(value, kind)


@register.filter
def cell(row: dict, column: Any) -> str:
    """A table cell: the row's value for the column, formatted by the column's kind (or the row's)."""
    kind = row.get("kind", "text") if column.kind == "auto" else column.kind
    return format_value(row.get(column.key), kind)


@register.filter
def page_wording(message: str) -> str:
    """A task's message with the API's option names as the upload form's labels."""
    return page_spelling(message or "")
