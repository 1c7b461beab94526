"""A fixed list of query specs that exercises every part of the SQL an engine runs.

Summaries with every metric, filters (`in` lists with an absent value, `not in` that keeps
NULLs, an empty `in` list, a range without rows), every time grain, splits by a dimension with
NULLs and by the virtual weekday and hour, rankings in both directions (ties, NULL metrics),
breakdowns sorted by a dimension or a metric with limits, and both comparison periods.
"""

import datetime as dt

from analytics.query import Breakdown, Comparison, Filters, Grain, QuerySpec, Summary, TimeSeries, TopN

FEBRUARY = Filters(start=dt.date(2024, 2, 1), end=dt.date(2024, 2, 29))
MARCH_FIRST_WEEK = Filters(start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 7))
ALL_METRICS = (
    "revenue",
    "cost",
    "gross_profit",
    "tax",
    "units_sold",
    "lines",
    "transactions",
    "gross_margin",
    "average_ticket",
    "average_unit_price",
    "average_rating",
)


def parity_specs(datasource: str) -> dict[str, QuerySpec]:
    """The specs, asked of `datasource`."""

    def spec(kind: type[QuerySpec], **fields) -> QuerySpec:
        return kind(datasource=datasource, **fields)

    return {
        "summary-all-metrics": spec(Summary, metrics=ALL_METRICS),
        "summary-filtered": spec(
            Summary,
            metrics=ALL_METRICS,
            filters=Filters(
                start=dt.date(2024, 2, 10),
                end=dt.date(2024, 3, 3),
                include={"branch": ("A", "B", "Nowhere"), "product_line": ("Food", "Home")},
                exclude={"payment": ("Cash",), "city": ("Yangon",)},
            ),
        ),
        "summary-replaced-days": spec(Summary, metrics=ALL_METRICS, filters=MARCH_FIRST_WEEK),
        "summary-empty-in-list": spec(
            Summary, metrics=("revenue", "transactions"), filters=Filters(include={"branch": ()})
        ),
        "summary-no-rows-in-range": spec(Summary, metrics=ALL_METRICS, filters=Filters(start=dt.date(2030, 1, 1))),
        "summary-previous-period": spec(
            Summary,
            metrics=("revenue", "transactions", "average_ticket"),
            filters=FEBRUARY,
            comparison=Comparison.PREVIOUS_PERIOD,
        ),
        "summary-last-year-open-range": spec(
            Summary, metrics=("revenue", "units_sold"), comparison=Comparison.SAME_PERIOD_LAST_YEAR
        ),
        **{
            f"timeseries-{grain.value}": spec(
                TimeSeries, grain=grain, metrics=("revenue", "transactions", "gross_margin", "average_rating")
            )
            for grain in Grain
        },
        "timeseries-week-by-city-with-nulls": spec(
            TimeSeries, grain=Grain.WEEK, split_by="city", metrics=("revenue", "lines"), filters=FEBRUARY
        ),
        "timeseries-day-by-hour": spec(TimeSeries, grain=Grain.DAY, split_by="hour", filters=MARCH_FIRST_WEEK),
        "timeseries-month-by-weekday": spec(TimeSeries, grain=Grain.MONTH, split_by="weekday", metrics=("units_sold",)),
        "timeseries-quarter-last-year": spec(
            TimeSeries, grain=Grain.QUARTER, metrics=("revenue",), comparison=Comparison.SAME_PERIOD_LAST_YEAR
        ),
        "topn-product-lines": spec(TopN, dimension="product_line", metric="revenue", n=3, also=("units_sold", "tax")),
        "topn-hours-by-rating-ascending": spec(
            TopN, dimension="hour", metric="average_rating", n=30, ascending=True, also=("lines",)
        ),
        "topn-payment-by-transactions": spec(TopN, dimension="payment", metric="transactions", n=5),
        "topn-weekday-filtered": spec(
            TopN,
            dimension="weekday",
            metric="gross_profit",
            n=7,
            filters=FEBRUARY,
            comparison=Comparison.PREVIOUS_PERIOD,
        ),
        "breakdown-branch-by-payment-sorted-by-branch": spec(
            Breakdown, by=("branch", "payment"), metrics=("revenue", "transactions"), sort="branch", descending=True
        ),
        # Branch D of the parity data has no tax at all: unknown (NULL), while the others' is a sum.
        "breakdown-branch-tax": spec(Breakdown, by=("branch",), metrics=("revenue", "tax", "lines")),
        "breakdown-customer-type-ascending": spec(
            Breakdown, by=("customer_type",), metrics=("average_unit_price", "gross_margin"), descending=False
        ),
        "breakdown-weekday-hour-limited": spec(
            Breakdown, by=("weekday", "hour"), metrics=("lines", "average_rating"), sort="average_rating", limit=10
        ),
        "breakdown-gender-city-filtered": spec(
            Breakdown,
            by=("gender", "city"),
            metrics=("revenue", "average_ticket"),
            filters=Filters(exclude={"gender": ("Male",)}, start=dt.date(2024, 2, 20)),
        ),
    }
