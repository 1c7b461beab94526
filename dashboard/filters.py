"""The filter bar: state lives in the query string, so every view is a shareable link."""

import datetime as dt
import logging
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import QueryDict

from analytics.catalogue import Snapshot, datasource_snapshot
from analytics.engines import EngineError
from analytics.query import Comparison, Filters, Grain, QueryError, comparison_range
from analytics.runner import data_days_visible
from sales_analytics.query_params import iso_date_parse

logger = logging.getLogger(__name__)

# The API's filter dimensions (analytics.api.FILTER_DIMENSIONS): a link that filters the API
# filters the pages alike.
MULTI_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("branch", "Branch"),
    ("product_line", "Product line"),
    ("city", "City"),
    ("customer_type", "Customer type"),
    ("gender", "Gender"),
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
    # First and last day of the data the user may see (a branch scope narrows it), or None.
    visible_days: tuple[dt.date, dt.date] | None = None
    # The engine could not say which days those are: the panels show its error, not "no data".
    days_unknown: bool = False

    @property
    def analytics_filters(self) -> Filters:
        return Filters(start=self.start, end=self.end, include=self.include)

    @property
    def data_range(self) -> tuple[dt.date, dt.date] | None:
        return self.visible_days

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

    @property
    def period_words(self) -> str:
        """The period as a person says it; an open side is not a day ("from 2019-01-15")."""
        if self.start is None and self.end is None:
            return "all data"
        if self.end is None:
            return f"from {self.start}"
        if self.start is None:
            return f"up to {self.end}"
        return f"{self.start} to {self.end}"

    def describe(self) -> list[tuple[str, str]]:
        """The filters in words, for exports and headings."""
        lines = [("Datasource", self.datasource), ("Period", self.period_words)]
        lines += [(label, ", ".join(self.include[name])) for name, label in MULTI_DIMENSIONS if name in self.include]
        return lines


def page_filters_parse(query: QueryDict, *, user: AbstractBaseUser | None) -> PageFilters:
    """Read the filter bar from a query string; unknown or malformed values raise FilterError."""
    datasource = (query.get("datasource") or settings.DEFAULT_DATASOURCE).strip()
    snapshot = datasource_snapshot(name=datasource)
    visible_days, days_unknown = _visible_days(snapshot=snapshot, user=user)
    preset = query.get("preset") or ("custom" if query.get("start") or query.get("end") else "all")
    if _dates_typed(query):
        preset = "custom"
    if preset not in dict(PRESETS):
        raise FilterError(f"Unknown period preset {preset!r}.")
    start, end = _period(preset, query, visible_days)
    include = {
        name: tuple(v for v in query.getlist(name) if v != "") for name, _ in MULTI_DIMENSIONS if query.getlist(name)
    }
    include = {name: values for name, values in include.items() if values}
    grain_choice = query.get("grain") or "auto"
    if grain_choice not in dict(GRAINS):
        raise FilterError(f"Unknown grain {grain_choice!r}.")
    try:
        Filters(start=start, end=end, include=include)
        if start is not None and end is not None:
            # The key figures compare with the period before: refuse here what they cannot.
            comparison_range(Comparison.PREVIOUS_PERIOD, start, end)
    except QueryError as exc:
        raise FilterError(str(exc)) from None
    return PageFilters(datasource, preset, start, end, include, grain_choice, snapshot, visible_days, days_unknown)


def _visible_days(
    *, snapshot: Snapshot | None, user: AbstractBaseUser | None
) -> tuple[tuple[dt.date, dt.date] | None, bool]:
    """The days `user` may see (None: none), and whether they are unknown: a branch-scoped user's
    come from the engine, and an engine that cannot answer leaves the presets open and the panels
    show its error — not the "no data of your branches" page."""
    if snapshot is None:
        return None, False
    try:
        return data_days_visible(snapshot=snapshot, user=user), False
    except EngineError:
        logger.warning(
            "the days of %s visible to user %s could not be loaded", snapshot.datasource.name, user, exc_info=True
        )
        return None, True


def _dates_typed(query: QueryDict) -> bool:
    """Whether the filter bar was sent with dates typed over the ones it showed while its preset
    was left as it was: without JavaScript (which switches the preset to "custom" as one types)
    the form sends the preset still selected, which would otherwise win over the typed dates."""
    if "shown_preset" not in query or query.get("preset") != query.get("shown_preset"):
        return False  # a link, or a preset newly chosen: the preset decides
    typed = (query.get("start") or "", query.get("end") or "")
    return typed != (query.get("shown_start") or "", query.get("shown_end") or "")


def _period(
    preset: str, query: QueryDict, visible_days: tuple[dt.date, dt.date] | None
) -> tuple[dt.date | None, dt.date | None]:
    if preset == "custom":
        return _date(query.get("start")), _date(query.get("end"))
    if preset == "all" or visible_days is None:
        return None, None
    # Presets count back from the last day with data the user may see, not from today: a file
    # from last quarter still shows its own "last 30 days", a branch its own.
    last = visible_days[1]
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
        return iso_date_parse(value)
    except ValueError as exc:
        raise FilterError(str(exc)) from None
