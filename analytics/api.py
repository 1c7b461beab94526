"""The thin metrics router: /api/metrics/*."""

import datetime as dt

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Schema

from accounts.roles import Capability
from analytics.query import Filters, QueryError, Summary
from analytics.runner import run_query
from sales_analytics.errors import ApiError, require_capability

router = Router(tags=["metrics"])

FILTER_DIMENSIONS = ("branch", "product_line", "city", "customer_type", "gender", "payment")


class FilterQuery(Schema):
    datasource: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    branch: list[str] = []
    product_line: list[str] = []
    city: list[str] = []
    customer_type: list[str] = []
    gender: list[str] = []
    payment: list[str] = []


class SummaryOut(Schema):
    total_revenue: float
    total_cost: float
    gross_profit: float
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


@router.get("/summary", response=SummaryOut)
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
