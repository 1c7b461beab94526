"""The filter bar: state lives in the query string, so every view is a shareable link."""

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.http import QueryDict

from analytics.catalogue import Snapshot, datasource_snapshot
from analytics.query import Filters, Grain, QueryError

MULTI_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("branch", "Branch"),
    ("product_line", "Product line"),
    ("customer_type", "Customer type"),
    ("payment", "Payment"),
)
PRESETS: tuple[tuple[str, str], ...] = (
    ("all", "All data"),
    ("last_7", "Last 7 days of data"),
    ("last_30", "Last 30 days of data"),
    ("last_90", "Last 90 days of data"),
    ("mtd", "Month to date"),
    ("qtd", "Quarter to date"),
    ("ytd", "Year to date"),
    ("custom", "Custom range"),
)
GRAINS: tuple[tuple[str, str], ...] = (
    ("auto", "Automatic"),
    ("day", "Day"),
    ("week", "Week"),
    ("month", "Month"),
    ("quarter", "Quarter"),
)


class FilterError(ValueError):
    pass


@dataclass
class PageFilters:
    datasource: str
    preset: str
    start: dt.date | None
    end: dt.date | None
    include: dict[str, tuple[str, ...]] = field(default_factory=dict)
    grain_choice: str = "auto"
    snapshot: Snapshot | None = None

    @property
    def analytics_filters(self) -> Filters:
        return Filters(start=self.start, end=self.end, include=self.include)

    @property
    def data_range(self) -> tuple[dt.date, dt.date] | None:
        return self.snapshot.date_range if self.snapshot is not None else None

    @property
    def grain(self) -> Grain:
        """The chosen grain, or one that gives a readable number of points for the range."""
        if self.grain_choice != "auto":
            return Grain.parse(self.grain_choice)
        span = self._span_days()
        if span <= 45:
            return Grain.DAY
        if span <= 200:
            return Grain.WEEK
        if span <= 3 * 366:
            return Grain.MONTH
        return Grain.QUARTER

    def _span_days(self) -> int:
        if self.data_range is None:
            return 0
        start = self.start or self.data_range[0]
        end = self.end or self.data_range[1]
        return (end - start).days + 1

    def query_string(self, **overrides: object) -> str:
        """This filter state as a query string, with some values replaced (None drops a key)."""
        params: dict[str, object] = {"datasource": self.datasource}
        if self.preset not in ("all", "custom"):
            params["preset"] = self.preset
        elif self.preset == "custom":
            params.update(preset="custom", start=self.start, end=self.end)
        params.update({name: list(values) for name, values in self.include.items()})
        if self.grain_choice != "auto":
            params["grain"] = self.grain_choice
        params.update(overrides)
        clean = {k: v for k, v in params.items() if v not in (None, "", [])}
        return urlencode(clean, doseq=True)

    def describe(self) -> list[tuple[str, str]]:
        """The filters in words, for exports and headings."""
        period = "all data" if self.start is None and self.end is None else f"{self.start} to {self.end}"
        lines = [("Datasource", self.datasource), ("Period", period)]
        lines += [(label, ", ".join(self.include[name])) for name, label in MULTI_DIMENSIONS if name in self.include]
        return lines


def page_filters_parse(query: QueryDict) -> PageFilters:
    """Read the filter bar from a query string; unknown or malformed values raise FilterError."""
    datasource = (query.get("datasource") or settings.DEFAULT_DATASOURCE).strip()
    snapshot = datasource_snapshot(name=datasource)
    preset = query.get("preset") or ("custom" if query.get("start") or query.get("end") else "all")
    if preset not in dict(PRESETS):
        raise FilterError(f"Unknown period preset {preset!r}.")
    start, end = _period(preset, query, snapshot)
    include = {
        name: tuple(v for v in query.getlist(name) if v != "") for name, _ in MULTI_DIMENSIONS if query.getlist(name)
    }
    include = {name: values for name, values in include.items() if values}
    grain_choice = query.get("grain") or "auto"
    if grain_choice not in dict(GRAINS):
        raise FilterError(f"Unknown grain {grain_choice!r}.")
    try:
        Filters(start=start, end=end, include=include)
    except QueryError as exc:
        raise FilterError(str(exc)) from None
    return PageFilters(datasource, preset, start, end, include, grain_choice, snapshot)


def _period(preset: str, query: QueryDict, snapshot: Snapshot | None) -> tuple[dt.date | None, dt.date | None]:
    if preset == "custom":
        return _date(query.get("start")), _date(query.get("end"))
    if preset == "all" or snapshot is None:
        return None, None
    # Presets count back from the last day with data, not from today: a file from last
    # quarter still shows its own "last 30 days".
    last = snapshot.date_range[1]
    if preset.startswith("last_"):
        return last - dt.timedelta(days=int(preset.removeprefix("last_")) - 1), last
    if preset == "mtd":
        return last.replace(day=1), last
    if preset == "qtd":
        return last.replace(month=3 * ((last.month - 1) // 3) + 1, day=1), last
    return last.replace(month=1, day=1), last


def _date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{value!r} is not a date (use YYYY-MM-DD).") from None
