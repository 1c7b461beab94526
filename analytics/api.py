"""The thin metrics router: /api/metrics/*."""

import datetime as dt
from typing import Annotated

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from pydantic import WithJsonSchema

from accounts.roles import Capability
from analytics.metrics import METRICS, SUMMARY_METRICS
from analytics.query import (
    Breakdown,
    Comparison,
    Filters,
    Grain,
    QueryError,
    QuerySpec,
    ResultTooLarge,
    Summary,
    TimeSeries,
    TopN,
    bucket_partial,
)
from analytics.runner import QueryResult, breakdown_run_bounded, run_query
from sales_analytics.errors import ApiError, error_responses, require_capability
from sales_analytics.query_params import IsoDate, blank_parameters_dropped, unknown_parameters_refused

router = Router(tags=["metrics"])
router.add_decorator(blank_parameters_dropped, mode="view")
router.add_decorator(unknown_parameters_refused, mode="operation")

# 400 `invalid_query`: rules across parameters (start after end, sort not among the columns, an unknown
# dimension of this datasource); 422 `invalid_request`: a parameter of the wrong type.
METRIC_RESPONSES = error_responses(400, 422)
GRAINS = ("day", "week", "month", "quarter", "year")
DIMENSIONS_HELP = (
    "A dimension: branch, product_line, city, customer_type, gender, payment, weekday, hour, "
    "or any extra column the datasource was loaded with, by its stored name (`order_note`) "
    "or its header (`Order Note`)."
)


def documented(schema: dict, description: str = "") -> WithJsonSchema:
    """The OpenAPI description of a parameter that the query layer checks itself (400 when wrong)."""
    return WithJsonSchema({**schema, "description": description} if description else schema)


MetricNames = Annotated[
    list[str],
    documented(
        {"type": "array", "items": {"type": "string", "enum": list(METRICS)}},
        "Metrics to compute (repeat the parameter); the first ranks top-N. Default: revenue.",
    ),
]

FILTER_DIMENSIONS = ("branch", "product_line", "city", "customer_type", "gender", "payment")


class FilterQuery(Schema):
    datasource: str | None = None
    start: IsoDate | None = None
    end: IsoDate | None = None
    branch: list[str] = []
    product_line: list[str] = []
    city: list[str] = []
    customer_type: list[str] = []
    gender: list[str] = []
    payment: list[str] = []


class SummaryOut(Schema):
    total_revenue: float
    # Null when none of the lines has a cost (0 without lines).
    total_cost: float | None
    gross_profit: float | None
    gross_margin: float | None
    lines: int
    transactions: int
    units_sold: int
    average_ticket: float | None
    data_version: int | None
    engine: str
    source: str


def filters_from(query: FilterQuery) -> Filters:
    try:
        return Filters(
            start=query.start,
            end=query.end,
            include={name: tuple(values) for name in FILTER_DIMENSIONS if (values := getattr(query, name))},
        )
    except QueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None


@router.get("/summary", response={200: SummaryOut, **METRIC_RESPONSES})
def summary(request: HttpRequest, query: Query[FilterQuery]):
    """KPI totals; `start`/`end` are inclusive whole days; dimension parameters repeat for several values."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    spec = Summary(datasource=query.datasource or settings.DEFAULT_DATASOURCE, filters=filters_from(query))
    try:
        result = run_query(spec, user=request.user)
    except QueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None
    row = result.first
    return {
        "total_revenue": row["revenue"],
        "total_cost": row["cost"],
        "gross_profit": row["gross_profit"],
        "gross_margin": row["gross_margin"],
        "lines": row["lines"],
        "transactions": row["transactions"],
        "units_sold": row["units_sold"],
        "average_ticket": row["average_ticket"],
        "data_version": result.data_version,
        "engine": result.engine,
        "source": result.source,
    }


class SpecQuery(FilterQuery):
    exclude_branch: list[str] = []
    exclude_product_line: list[str] = []
    metric: MetricNames = []
    comparison: Comparison | None = None


class ResultOut(Schema):
    columns: list[str]
    rows: list[dict] = Field(
        description="One object per answer row, keyed by `columns`. Sums of cost, gross profit and tax are null "
        "over lines none of which has that value (0 over no lines); quotients are null without a denominator. "
        "A time series' rows also have `partial`: true when `period` starts after the first day of the row's "
        "`bucket` or ends before its last (the bucket is named by its first day but sums fewer days)."
    )
    engine: str
    source: str
    data_version: int | None
    uploads: list[dict]
    period: list[dt.date | None]
    comparison: dict | None = None


def spec_filters(query: SpecQuery) -> Filters:
    try:
        return Filters(
            start=query.start,
            end=query.end,
            include={name: tuple(values) for name in FILTER_DIMENSIONS if (values := getattr(query, name))},
            exclude={
                name: tuple(values)
                for name in ("branch", "product_line")
                if (values := getattr(query, f"exclude_{name}"))
            },
        )
    except QueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None


def series_rows_marked(result: QueryResult, *, grain: Grain) -> list[dict]:
    """A time series' rows, each saying whether the result's period cuts its bucket (`partial`)."""
    start, end = result.period
    return [{**row, "partial": bucket_partial(row["bucket"], grain, start=start, end=end)} for row in result.rows]


def result_out(result: QueryResult, *, grain: Grain | None = None) -> dict:
    """The answer's body; with the `grain` of a time series, its rows (and its comparison's) say
    which buckets the period cuts: pages label them "(partial week)", programs read `partial`."""
    rows, columns = result.rows, result.columns
    if grain is not None:
        rows, columns = series_rows_marked(result, grain=grain), [*result.columns, "partial"]
    body = {
        "columns": columns,
        "rows": rows,
        "engine": result.engine,
        "source": result.source,
        "data_version": result.data_version,
        "uploads": [{"upload_id": u.upload_id, "name": u.name, "uploaded_at": u.uploaded_at} for u in result.uploads],
        "period": list(result.period),
    }
    if result.comparison is not None:
        comparison = result.comparison
        body["comparison"] = {
            "rows": comparison.rows if grain is None else series_rows_marked(comparison, grain=grain),
            "period": list(comparison.period),
        }
    return body


def answer(request: HttpRequest, spec: QuerySpec) -> dict:
    require_capability(request, Capability.VIEW_DASHBOARDS)
    try:
        if isinstance(spec, Breakdown):
            result = breakdown_run_bounded(spec, user=request.user, max_rows=settings.METRICS_MAX_ROWS)
        else:
            result = run_query(spec, user=request.user)
    except ResultTooLarge as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    except QueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None
    return result_out(result, grain=spec.grain if isinstance(spec, TimeSeries) else None)


def _datasource(query: FilterQuery) -> str:
    return query.datasource or settings.DEFAULT_DATASOURCE


@router.get("/timeseries", response={200: ResultOut, **METRIC_RESPONSES})
def timeseries(
    request: HttpRequest,
    query: Query[SpecQuery],
    grain: Annotated[str, documented({"type": "string", "enum": list(GRAINS), "default": "day"})] = "day",
    split_by: Annotated[str | None, documented({"type": "string"}, DIMENSIONS_HELP)] = None,
):
    """Metrics per day, week, month, quarter or year; `split_by` adds one series per dimension value.

    Each row's `bucket` is the first day of its week (Monday), month, quarter or year; `partial` is
    true when `start` or `end` cuts that bucket, so its sum covers only the days inside the period."""
    try:
        spec = TimeSeries(
            datasource=_datasource(query),
            filters=spec_filters(query),
            metrics=tuple(query.metric) or ("revenue",),
            grain=Grain.parse(grain),
            split_by=split_by,
            comparison=query.comparison,
        )
    except QueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None
    return answer(request, spec)


@router.get("/topn", response={200: ResultOut, **METRIC_RESPONSES})
def topn(
    request: HttpRequest,
    query: Query[SpecQuery],
    dimension: Annotated[
        str, documented({"type": "string", "default": "product_line"}, DIMENSIONS_HELP)
    ] = "product_line",
    n: Annotated[int, documented({"type": "integer", "minimum": 1, "maximum": 1000, "default": 10})] = 10,
    ascending: bool = False,
):
    """The top (or bottom) `n` values of a dimension by the first `metric` (default revenue)."""
    metrics = tuple(query.metric) or ("revenue",)
    spec = TopN(
        datasource=_datasource(query),
        filters=spec_filters(query),
        dimension=dimension,
        metric=metrics[0],
        n=n,
        also=metrics[1:],
        ascending=ascending,
        comparison=query.comparison,
    )
    return answer(request, spec)


@router.get("/breakdown", response={200: ResultOut, **METRIC_RESPONSES})
def breakdown(
    request: HttpRequest,
    query: Query[SpecQuery],
    by: list[str] = Query(
        ["branch"],
        min_length=1,
        max_length=2,
        description="One or two dimensions (repeat the parameter). " + DIMENSIONS_HELP,
    ),
    sort: Annotated[str | None, documented({"type": "string"}, "One of the requested metrics or dimensions.")] = None,
    descending: bool = True,
    limit: Annotated[
        int | None,
        documented(
            {"type": "integer", "minimum": 1, "maximum": settings.METRICS_MAX_ROWS},
            "The first rows in `sort` order; at most METRICS_MAX_ROWS. Without it, an answer longer than "
            "that is refused (400 `result_too_large`), never cut.",
        ),
    ] = None,
):
    """Metrics by one or two dimensions (e.g. `by=branch&by=product_line`).

    At most METRICS_MAX_ROWS rows (default 10,000): without `limit`, a longer answer is 400
    `result_too_large`; pass `limit` or narrow the filters."""
    spec = Breakdown(
        datasource=_datasource(query),
        filters=spec_filters(query),
        by=tuple(by),
        metrics=tuple(query.metric) or ("revenue",),
        sort=sort,
        descending=descending,
        limit=limit,
        comparison=query.comparison,
    )
    return answer(request, spec)


@router.get("/compare", response={200: ResultOut, **METRIC_RESPONSES})
def compare(request: HttpRequest, query: Query[SpecQuery]):
    """KPI totals for the period and for `comparison` (default: the previous period of the same length)."""
    spec = Summary(
        datasource=_datasource(query),
        filters=spec_filters(query),
        metrics=tuple(query.metric) or SUMMARY_METRICS,
        comparison=query.comparison or Comparison.PREVIOUS_PERIOD,
    )
    return answer(request, spec)
