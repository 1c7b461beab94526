"""The panels of each page: every number comes from `run_query`, scoped to the viewer.

A panel is a title plus a table (always, for accessibility and export) and optionally
KPI cards or a chart option that the page's script hands to ECharts.
"""

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from analytics.metrics import METRICS
from analytics.query import (
    DISTINCT_VALUES,
    Breakdown,
    Comparison,
    DistinctCount,
    Filters,
    Grain,
    QuerySpec,
    Summary,
    TimeSeries,
    TopN,
    bucket_partial,
)
from analytics.runner import QueryResult, data_days_matching, run_query
from dashboard.filters import PageFilters
from dashboard.templatetags.dashboard_format import format_value, site_time_zone_name

logger = logging.getLogger(__name__)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text, currency, number, percent, datetime, or auto (each row says)


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict[str, Any]]


@dataclass
class Kpi:
    label: str
    value: float | int | None
    kind: str
    previous: float | int | None = None
    # False when the comparison period starts before the data does: a change against the few
    # days it covers (+400 % near the data's first day) would mislead.
    comparable: bool = True

    @property
    def in_points(self) -> bool:
        """A ratio (the margin) changes by percentage points: a relative change of a percentage
        misreads (4.0 % → 4.4 % is "+10 %"), and of two equal ones shows their float noise."""
        return self.kind == "percent"

    @property
    def change(self) -> float | None:
        """Change vs the comparison period: relative, or in points (as a fraction) for a ratio;
        None when it has no (whole) base."""
        if self.value is None or self.previous is None or not self.comparable:
            return None
        if self.in_points:
            return self.value - self.previous
        if not self.previous:
            return None
        return (self.value - self.previous) / abs(self.previous)

    @property
    def change_text(self) -> str:
        """The change as shown, to one decimal: "+0.3 pp", "-2.5%", or unsigned when it rounds to zero."""
        if self.change is None:
            return ""
        shown = round(self.change * 100, 1)
        unit = " pp" if self.in_points else "%"
        return f"{0.0:.1f}{unit}" if shown == 0 else f"{shown:+.1f}{unit}"

    @property
    def direction(self) -> str:
        """ "up", "down", or "" when the change shown is zero (neither a rise nor a drop)."""
        if self.change is None or round(self.change * 100, 1) == 0:
            return ""
        return "up" if self.change > 0 else "down"


@dataclass
class Panel:
    key: str
    title: str
    table: Table | None = None
    chart: dict | None = None
    kpis: list[Kpi] = field(default_factory=list)
    note: str = ""
    error: str = ""
    wide: bool = False
    links: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PanelContext:
    filters: PageFilters
    user: AbstractBaseUser

    def run(self, spec: QuerySpec) -> QueryResult:
        return run_query(spec, user=self.user)

    @property
    def datasource(self) -> str:
        return self.filters.datasource


def metric_column(name: str) -> Column:
    metric = METRICS[name]
    kind = "percent" if metric.is_ratio else "currency" if metric.is_currency else "number"
    return Column(name, metric.label, kind)


def _bucket_label(day: dt.date, grain: Grain, filters: PageFilters) -> str:
    """A time bucket's name; one the selected period cuts says so ("2022-01-01 (partial week)"),
    and a day-named bucket is named by its first day inside the period, never one outside it."""
    first = max(day, filters.start) if filters.start else day
    partial = bucket_partial(day, grain, start=filters.start, end=filters.end)
    if grain is Grain.MONTH:
        label = day.strftime("%Y-%m")
    elif grain is Grain.QUARTER:
        label = f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    elif grain is Grain.YEAR:
        label = str(day.year)
    else:
        label = first.isoformat()
    return f"{label} (partial {grain.name.lower()})" if partial else label


def _series_chart(kind: str, categories: list[str], series: dict[str, list], *, value_kind: str) -> dict:
    return {
        "valueKind": value_kind,
        "option": {
            "tooltip": {"trigger": "axis"},
            "legend": {"show": len(series) > 1},
            "grid": {"left": 60, "right": 20, "top": 30 if len(series) > 1 else 10, "bottom": 30},
            "xAxis": {"type": "category", "data": categories},
            "yAxis": {"type": "value"},
            "series": [
                {"name": name, "type": kind, "data": values, "smooth": kind == "line"}
                for name, values in series.items()
            ],
        },
    }


def _bar_chart(rows: list[dict[str, Any]], dimension: str, metric: str) -> dict:
    categories = [_text(row[dimension]) for row in rows]
    return _series_chart(
        "bar", categories, {METRICS[metric].label: [row[metric] for row in rows]}, value_kind=metric_column(metric).kind
    )


def _text(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _cost_coverage_note(ctx: PanelContext) -> str:
    """Where margins are shown: whether some lines in the filters have no cost (a file without
    one), so that the margins are of the rest of the revenue only."""
    row = ctx.run(
        Summary(
            datasource=ctx.datasource, filters=ctx.filters.analytics_filters, metrics=("revenue", "revenue_with_cost")
        )
    ).first
    revenue, known = row.get("revenue"), row.get("revenue_with_cost")
    if not revenue or known is None or math.isclose(known, revenue, rel_tol=1e-9, abs_tol=0.005):
        return ""
    return (
        f"Some lines have no cost: gross profit and margins cover {format_value(known, 'currency')} "
        f"of {format_value(revenue, 'currency')} revenue ({format_value(known / revenue, 'percent')})."
    )


def positions_of(labels: list[str]) -> dict[str, int]:
    """Each label's index on a chart axis, for constant-time lookups per result row."""
    return {label: index for index, label in enumerate(labels)}


def _notes(*notes: str) -> str:
    return " ".join(note for note in notes if note)


# --- Bounded lists ---------------------------------------------------------------------
# A list-shaped panel shows its top values by revenue and sums the rest in one "Other" row:
# 100,000 branches made a 26 MB panel and a 115 MB page. The rows still add up to the totals,
# and the panel says how many values it shows of how many.

LIST_SHOWN = 25
TREND_SERIES_SHOWN = 10
HEATMAP_SHOWN = 25
# The colour scale's least span (a hundredth of a percent point): equal margins get one colour.
MARGIN_SCALE_SPAN_MIN = 1e-4

# How a panel names a dimension's values ("25 of 2,000 branches"); others say "values".
DIMENSION_NOUNS: dict[str, tuple[str, str]] = {
    "branch": ("branch", "branches"),
    "product_line": ("product line", "product lines"),
    "payment": ("payment method", "payment methods"),
    "customer_type": ("customer type", "customer types"),
    "city": ("city", "cities"),
}


def dimension_count_words(dimension: str, count: int) -> str:
    """ "1 branch", "2,000 branches"."""
    singular, plural = DIMENSION_NOUNS.get(dimension, ("value", "values"))
    return f"{count:,} {singular if count == 1 else plural}"


@dataclass
class TopValues:
    """A dimension's values with the most revenue in the filters, and what they leave out."""

    dimension: str
    rows: list[dict[str, Any]]
    # How many values the filters have in all; equal to len(rows) when nothing is left out.
    total: int
    # The Filters of the values left out (the page's, excluding the top ones); None when none are.
    rest_filters: Filters | None

    @property
    def values(self) -> tuple[str | None, ...]:
        return tuple(row[self.dimension] for row in self.rows)

    @property
    def left_out(self) -> int:
        return self.total - len(self.rows)

    @property
    def other_label(self) -> str:
        return f"Other ({dimension_count_words(self.dimension, self.left_out)})"

    @property
    def shown_words(self) -> str:
        """ "25 of 2,000 branches"."""
        return f"{len(self.rows):,} of {dimension_count_words(self.dimension, self.total)}"


def top_values_find(ctx: PanelContext, *, dimension: str, n: int, metrics: tuple[str, ...] = ("revenue",)) -> TopValues:
    """The `n` values of `dimension` with the most revenue (with `metrics`), and how many others there are."""
    filters = ctx.filters.analytics_filters
    top = ctx.run(
        TopN(datasource=ctx.datasource, filters=filters, dimension=dimension, metric="revenue", n=n, also=metrics)
    ).rows
    total = len(top)
    if total == n:  # a full list may have left values out: count them, never every value
        total = ctx.run(DistinctCount(datasource=ctx.datasource, filters=filters, dimension=dimension)).first.get(
            DISTINCT_VALUES, total
        )
    found = TopValues(dimension=dimension, rows=top, total=total, rest_filters=None)
    if found.left_out > 0:
        found.rest_filters = filters_excluding(filters, dimension=dimension, values=found.values)
    return found


def filters_excluding(filters: Filters, *, dimension: str, values: tuple[str | None, ...]) -> Filters:
    excluded = (*filters.exclude.get(dimension, ()), *values)
    return replace(filters, exclude={**filters.exclude, dimension: excluded})


def filters_including(filters: Filters, *, dimension: str, values: tuple[str | None, ...]) -> Filters:
    """`filters` narrowed to `values` (found within them, so within any values they already list)."""
    return replace(filters, include={**filters.include, dimension: values})


def other_rows(ctx: PanelContext, top: TopValues, *, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """The values a top list leaves out, summed in one row (ratios of their sums); none when it leaves none."""
    if top.rest_filters is None:
        return []
    rest = ctx.run(Summary(datasource=ctx.datasource, filters=top.rest_filters, metrics=metrics)).first
    return [{top.dimension: top.other_label, **{m: rest.get(m) for m in metrics}}]


def top_list_note(top: TopValues) -> str:
    if top.rest_filters is None:
        return ""
    return (
        f"The {top.shown_words} with the most revenue; “{top.other_label}” sums the rest, so the rows add up "
        "to the totals. Filter to see others."
    )


# --- Overview --------------------------------------------------------------------------

KPI_METRICS = ("revenue", "gross_profit", "gross_margin", "transactions", "units_sold", "average_ticket")


def panel_kpis(ctx: PanelContext) -> Panel:
    result = ctx.run(
        Summary(
            datasource=ctx.datasource,
            filters=ctx.filters.analytics_filters,
            metrics=KPI_METRICS,
            comparison=Comparison.PREVIOUS_PERIOD,
        )
    )
    previous = result.comparison.first if result.comparison else {}
    first_day = _first_day_matching(ctx) if result.comparison is not None else None
    comparable = not _comparison_before_data(result, first_day)
    kpis = [
        Kpi(METRICS[m].label, result.first.get(m), metric_column(m).kind, previous.get(m), comparable)
        for m in KPI_METRICS
    ]
    table = Table(
        [Column("metric", "Metric"), Column("value", "Value", "auto"), Column("previous", "Previous period", "auto")],
        [{"metric": k.label, "value": k.value, "previous": k.previous, "kind": k.kind} for k in kpis],
    )
    note = _notes(_comparison_note(result, first_day if not comparable else None), _cost_coverage_note(ctx))
    return Panel("kpis", "Key figures", table=table, kpis=kpis, wide=True, note=note)


def _first_day_matching(ctx: PanelContext) -> dt.date | None:
    """The first day of the data the page's filters (branch, product line…) select, whatever the period."""
    if ctx.filters.snapshot is None:  # nothing published yet
        return None
    if not ctx.filters.include:
        return ctx.filters.data_range[0] if ctx.filters.data_range else None
    days = data_days_matching(snapshot=ctx.filters.snapshot, user=ctx.user, include=ctx.filters.include)
    return days[0] if days else None


def _comparison_before_data(result: QueryResult, first_day: dt.date | None) -> bool:
    if result.comparison is None or result.comparison.period[0] is None or first_day is None:
        return False
    return result.comparison.period[0] < first_day


def _comparison_note(result: QueryResult, data_starts: dt.date | None = None) -> str:
    if result.comparison is None or result.comparison.period[0] is None:
        return ""
    start, end = result.comparison.period
    if data_starts is not None:
        return (
            f"No change shown: the previous period ({start} to {end}) starts before the data, "
            f"which begins on {data_starts}."
        )
    return f"Change against {start} to {end}."


def panel_freshness(ctx: PanelContext) -> Panel:
    result = ctx.run(Summary(datasource=ctx.datasource, metrics=("lines",)))
    uploads = result.uploads
    latest = max((u.uploaded_at for u in uploads if u.uploaded_at), default=None)
    data_range = ctx.filters.data_range
    rows = [{"upload": u.name, "uploaded_at": u.uploaded_at} for u in uploads]
    note = (
        "No data has been published yet."
        if not uploads
        else (
            f"Data as of {format_value(latest, 'datetime')}, "
            f"from {len(uploads)} upload{'s' if len(uploads) != 1 else ''}"
            + (f", covering {data_range[0]} to {data_range[1]}." if data_range else ".")
        )
    )
    return Panel(
        "freshness",
        "Data freshness",
        table=Table(
            [Column("upload", "Upload"), Column("uploaded_at", f"Uploaded ({site_time_zone_name()})", "datetime")], rows
        ),
        note=note,
        links=[("Uploads", "/uploads")],
    )


def panel_revenue_trend(ctx: PanelContext, metric: str = "revenue", key: str = "trend") -> Panel:
    grain = ctx.filters.grain
    result = ctx.run(
        TimeSeries(datasource=ctx.datasource, filters=ctx.filters.analytics_filters, metrics=(metric,), grain=grain)
    )
    labels = [_bucket_label(row["bucket"], grain, ctx.filters) for row in result.rows]
    chart = _series_chart(
        "line",
        labels,
        {METRICS[metric].label: [row[metric] for row in result.rows]},
        value_kind=metric_column(metric).kind,
    )
    rows = [{"period": label, metric: row[metric]} for label, row in zip(labels, result.rows, strict=True)]
    title = f"{METRICS[metric].label} by {grain.name.lower()}"
    return Panel(
        key, title, table=Table([Column("period", "Period"), metric_column(metric)], rows), chart=chart, wide=True
    )


def _breakdown_panel(
    ctx: PanelContext,
    *,
    key: str,
    title: str,
    dimension: str,
    metrics: tuple[str, ...],
    chart_metric: str = "revenue",
    link_page: str | None = None,
) -> Panel:
    top = top_values_find(ctx, dimension=dimension, n=LIST_SHOWN, metrics=metrics)
    others = other_rows(ctx, top, metrics=metrics)
    label = dimension.replace("_", " ").capitalize()
    table = Table([Column(dimension, label), *[metric_column(m) for m in metrics]], [*top.rows, *others])
    links = []
    if link_page:
        links = [
            (_text(row[dimension]), f"/{link_page}?{ctx.filters.query_string(**{dimension: [row[dimension]]})}")
            for row in top.rows
            if row[dimension] is not None
        ]
    # The chart shows the values named; the rest, one bar for thousands of values, would dwarf them.
    chart = _bar_chart(top.rows, dimension, chart_metric)
    return Panel(key, title, table=table, chart=chart, links=links, note=top_list_note(top))


def panel_revenue_by_branch(ctx: PanelContext) -> Panel:
    return _breakdown_panel(
        ctx,
        key="by_branch",
        title="Revenue by branch",
        dimension="branch",
        metrics=("revenue", "gross_profit", "transactions"),
        link_page="branches",
    )


def panel_revenue_by_product_line(ctx: PanelContext) -> Panel:
    return _breakdown_panel(
        ctx,
        key="by_product_line",
        title="Revenue by product line",
        dimension="product_line",
        metrics=("revenue", "gross_profit", "units_sold"),
        link_page="products",
    )


# --- Sales ------------------------------------------------------------------------------


def panel_sales_series(ctx: PanelContext) -> Panel:
    grain = ctx.filters.grain
    metrics = ("revenue", "transactions", "units_sold")
    result = ctx.run(
        TimeSeries(datasource=ctx.datasource, filters=ctx.filters.analytics_filters, metrics=metrics, grain=grain)
    )
    labels = [_bucket_label(row["bucket"], grain, ctx.filters) for row in result.rows]
    chart = _series_chart("bar", labels, {"Revenue": [row["revenue"] for row in result.rows]}, value_kind="currency")
    rows = [{"period": label, **{m: row[m] for m in metrics}} for label, row in zip(labels, result.rows, strict=True)]
    return Panel(
        "series",
        f"Sales by {grain.name.lower()}",
        table=Table([Column("period", "Period"), *[metric_column(m) for m in metrics]], rows),
        chart=chart,
        wide=True,
    )


def panel_by_weekday(ctx: PanelContext) -> Panel:
    result = ctx.run(
        Breakdown(
            datasource=ctx.datasource,
            filters=ctx.filters.analytics_filters,
            by=("weekday",),
            metrics=("revenue", "transactions"),
            sort="weekday",
            descending=False,
        )
    )
    rows = [
        {"weekday": WEEKDAYS[int(row["weekday"]) - 1], "revenue": row["revenue"], "transactions": row["transactions"]}
        for row in result.rows
        if row["weekday"] is not None
    ]
    chart = _series_chart(
        "bar", [r["weekday"] for r in rows], {"Revenue": [r["revenue"] for r in rows]}, value_kind="currency"
    )
    return Panel(
        "by_weekday",
        "Revenue by weekday",
        chart=chart,
        table=Table([Column("weekday", "Weekday"), metric_column("revenue"), metric_column("transactions")], rows),
    )


def panel_by_hour(ctx: PanelContext) -> Panel:
    result = ctx.run(
        Breakdown(
            datasource=ctx.datasource,
            filters=ctx.filters.analytics_filters,
            by=("hour",),
            metrics=("revenue", "transactions"),
            sort="hour",
            descending=False,
        )
    )
    rows = [
        {"hour": f"{int(row['hour']):02d}:00", "revenue": row["revenue"], "transactions": row["transactions"]}
        for row in result.rows
        if row["hour"] is not None
    ]
    if not rows:
        return Panel("by_hour", "Revenue by hour", note="The uploaded files have no time of day.")
    chart = _series_chart(
        "bar", [r["hour"] for r in rows], {"Revenue": [r["revenue"] for r in rows]}, value_kind="currency"
    )
    return Panel(
        "by_hour",
        "Revenue by hour",
        chart=chart,
        table=Table([Column("hour", "Hour"), metric_column("revenue"), metric_column("transactions")], rows),
    )


def panel_by_payment(ctx: PanelContext) -> Panel:
    return _breakdown_panel(
        ctx,
        key="by_payment",
        title="Revenue by payment",
        dimension="payment",
        metrics=("revenue", "transactions", "average_ticket"),
    )


def panel_by_customer_type(ctx: PanelContext) -> Panel:
    return _breakdown_panel(
        ctx,
        key="by_customer_type",
        title="Revenue by customer type",
        dimension="customer_type",
        metrics=("revenue", "transactions", "average_ticket"),
    )


# --- Products ---------------------------------------------------------------------------

PRODUCT_LINES_SHOWN = 50


def panel_product_ranking(ctx: PanelContext) -> Panel:
    metrics = ("revenue", "units_sold", "gross_profit", "gross_margin")
    top = top_values_find(ctx, dimension="product_line", n=PRODUCT_LINES_SHOWN, metrics=metrics)
    others = other_rows(ctx, top, metrics=metrics)
    # The share is of all revenue in the filters, not of the lines shown (at most PRODUCT_LINES_SHOWN).
    total = ctx.run(
        Summary(datasource=ctx.datasource, filters=ctx.filters.analytics_filters, metrics=("revenue",))
    ).first.get("revenue")
    rows = [{**row, "share": (row["revenue"] / total) if total else None} for row in [*top.rows, *others]]
    note = _notes(top_list_note(top), "Shares are of all revenue." if others else "", _cost_coverage_note(ctx))
    table = Table(
        [
            Column("product_line", "Product line"),
            *[metric_column(m) for m in metrics],
            Column("share", "Share of revenue", "percent"),
        ],
        rows,
    )
    chart = {
        "valueKind": "currency",
        "option": {
            "tooltip": {"trigger": "item"},
            "series": [
                {
                    "type": "pie",
                    "radius": ["40%", "70%"],
                    # "Other" is a slice too: a pie's slices are shares of the whole.
                    "data": [{"name": _text(r["product_line"]), "value": r["revenue"]} for r in rows],
                }
            ],
        },
    }
    links = [
        (_text(r["product_line"]), f"/products?{ctx.filters.query_string(product_line=[r['product_line']])}")
        for r in top.rows
        if r["product_line"] is not None
    ]
    return Panel(
        "ranking", "Product lines ranked by revenue", table=table, chart=chart, links=links, wide=True, note=note
    )


def _split_trend_panel(ctx: PanelContext, *, dimension: str, label: str) -> Panel:
    """Revenue over time, one line per value of `dimension` with the most revenue, and one for the rest."""
    grain = ctx.filters.grain
    top = top_values_find(ctx, dimension=dimension, n=TREND_SERIES_SHOWN)
    filters = ctx.filters.analytics_filters
    if top.rest_filters is not None:
        filters = filters_including(filters, dimension=dimension, values=top.values)
    result = ctx.run(
        TimeSeries(datasource=ctx.datasource, filters=filters, metrics=("revenue",), grain=grain, split_by=dimension)
    )
    result_rows = result.rows
    if top.rest_filters is not None:
        rest = ctx.run(
            TimeSeries(datasource=ctx.datasource, filters=top.rest_filters, metrics=("revenue",), grain=grain)
        )
        result_rows = [*result_rows, *({**row, dimension: top.other_label} for row in rest.rows)]
    row_labels = [_bucket_label(row["bucket"], grain, ctx.filters) for row in result_rows]
    labels = sorted(set(row_labels))
    # A position per label, looked up per row: `labels.index` was quadratic (7.9 s for 38 years of days).
    position = positions_of(labels)
    series: dict[str, list] = {}
    for period, row in zip(row_labels, result_rows, strict=True):
        series.setdefault(_text(row[dimension]), [None] * len(labels))[position[period]] = row["revenue"]
    rows = [
        {"period": period, dimension: row[dimension], "revenue": row["revenue"]}
        for period, row in zip(row_labels, result_rows, strict=True)
    ]
    return Panel(
        "trend",
        f"Revenue per {label.lower()} by {grain.name.lower()}",
        wide=True,
        chart=_series_chart("line", labels, series, value_kind="currency"),
        table=Table([Column("period", "Period"), Column(dimension, label), metric_column("revenue")], rows),
        note=top_list_note(top),
    )


def panel_product_trend(ctx: PanelContext) -> Panel:
    return _split_trend_panel(ctx, dimension="product_line", label="Product line")


# --- Branches ---------------------------------------------------------------------------


def panel_branch_comparison(ctx: PanelContext) -> Panel:
    metrics = ("revenue", "gross_profit", "gross_margin", "transactions", "average_ticket", "units_sold")
    panel = _breakdown_panel(
        ctx, key="comparison", title="Branches compared", dimension="branch", metrics=metrics, link_page="branches"
    )
    panel.wide = True
    panel.note = _notes(panel.note, _cost_coverage_note(ctx))
    return panel


def panel_branch_trend(ctx: PanelContext) -> Panel:
    return _split_trend_panel(ctx, dimension="branch", label="Branch")


# --- Profitability ----------------------------------------------------------------------


def panel_margin_heatmap(ctx: PanelContext) -> Panel:
    """Margins of the branches and product lines with the most revenue: every branch × product line
    cell (380,000 for 2,000 × 300: an 80 MB page) would be neither readable nor answerable."""
    top_branches = top_values_find(ctx, dimension="branch", n=HEATMAP_SHOWN)
    top_lines = top_values_find(ctx, dimension="product_line", n=HEATMAP_SHOWN)
    filters = ctx.filters.analytics_filters
    for top in (top_branches, top_lines):
        if top.rest_filters is not None:
            filters = filters_including(filters, dimension=top.dimension, values=top.values)
    result = ctx.run(
        Breakdown(
            datasource=ctx.datasource,
            filters=filters,
            by=("branch", "product_line"),
            metrics=("gross_profit", "gross_margin", "revenue"),
            sort="branch",
            descending=False,
        )
    )
    branches = sorted({_text(r["branch"]) for r in result.rows})
    lines = sorted({_text(r["product_line"]) for r in result.rows})
    line_position, branch_position = positions_of(lines), positions_of(branches)
    # Coloured as rankings compare them: equal margins that differ only by summation noise (the real
    # file's every cell is 4.7619…%) spanned the whole colour scale, the "worst" cell picked by noise.
    decimals = METRICS["gross_margin"].rank_decimals
    cells = [
        [
            line_position[_text(r["product_line"])],
            branch_position[_text(r["branch"])],
            None if r["gross_margin"] is None else round(r["gross_margin"], decimals),
        ]
        for r in result.rows
    ]
    margins = [c[2] for c in cells if c[2] is not None]
    chart = {
        "valueKind": "percent",
        "option": {
            "tooltip": {"position": "top"},
            "grid": {"left": 80, "right": 20, "top": 10, "bottom": 115},
            "xAxis": {"type": "category", "data": lines, "axisLabel": {"rotate": 30}},
            "yAxis": {"type": "category", "data": branches},
            "visualMap": {
                "min": min(margins, default=0),
                # One colour for equal margins: a scale needs a span (ECharts divides by it).
                "max": max(max(margins, default=1), min(margins, default=0) + MARGIN_SCALE_SPAN_MIN),
                "calculable": True,
                "orient": "horizontal",
                "left": "center",
                "bottom": 0,
            },
            "series": [{"type": "heatmap", "data": cells, "label": {"show": False}}],
        },
    }
    table = Table(
        [
            Column("branch", "Branch"),
            Column("product_line", "Product line"),
            metric_column("gross_profit"),
            metric_column("gross_margin"),
            metric_column("revenue"),
        ],
        result.rows,
    )
    return Panel(
        "heatmap",
        "Gross margin by branch and product line",
        table=table,
        chart=chart,
        wide=True,
        note=_notes(_heatmap_cut_note(top_branches, top_lines), _cost_coverage_note(ctx)),
    )


def _heatmap_cut_note(*tops: TopValues) -> str:
    """ "25 of 2,000 branches, 25 of 300 product lines, by revenue; filter to see others." """
    if all(top.rest_filters is None for top in tops):
        return ""
    return f"{', '.join(top.shown_words for top in tops)}, by revenue; filter to see others."


def panel_margin_trend(ctx: PanelContext) -> Panel:
    panel = panel_revenue_trend(ctx, metric="gross_margin", key="margin_trend")
    panel.note = _cost_coverage_note(ctx)
    return panel


def panel_lowest_margins(ctx: PanelContext) -> Panel:
    result = ctx.run(
        Breakdown(
            datasource=ctx.datasource,
            filters=ctx.filters.analytics_filters,
            by=("branch", "product_line"),
            metrics=("gross_margin", "gross_profit", "revenue"),
            sort="gross_margin",
            descending=False,
            limit=10,
        )
    )
    table = Table(
        [
            Column("branch", "Branch"),
            Column("product_line", "Product line"),
            metric_column("gross_margin"),
            metric_column("gross_profit"),
            metric_column("revenue"),
        ],
        result.rows,
    )
    return Panel("lowest", "Lowest-margin combinations", table=table, note=_cost_coverage_note(ctx))


PanelBuilder = Callable[[PanelContext], Panel]


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    panels: tuple[PanelBuilder, ...]
    intro: str = ""


PAGES: dict[str, Page] = {
    page.key: page
    for page in (
        Page(
            "overview",
            "Overview",
            (panel_kpis, panel_revenue_trend, panel_revenue_by_branch, panel_revenue_by_product_line, panel_freshness),
        ),
        Page(
            "sales",
            "Sales",
            (panel_sales_series, panel_by_weekday, panel_by_hour, panel_by_payment, panel_by_customer_type),
        ),
        Page("products", "Products", (panel_product_ranking, panel_product_trend)),
        Page("branches", "Branches", (panel_branch_comparison, panel_branch_trend)),
        Page("profitability", "Profitability", (panel_margin_heatmap, panel_margin_trend, panel_lowest_margins)),
    )
}


def panel_key(builder: PanelBuilder) -> str:
    return builder.__name__.removeprefix("panel_")


def panel_build(builder: PanelBuilder, ctx: PanelContext) -> Panel:
    """Build one panel; a failure is shown in that panel in plain words, never as invented numbers."""
    try:
        panel = builder(ctx)
    except Exception as exc:
        logger.exception("panel %s failed", panel_key(builder))
        panel = Panel(
            panel_key(builder),
            panel_key(builder).replace("_", " ").capitalize(),
            error=f"This panel could not be loaded ({type(exc).__name__}). The rest of the page is fine.",
        )
    panel.key = panel_key(builder)
    return panel
