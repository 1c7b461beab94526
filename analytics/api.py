"""The thin metrics router: /api/metrics/*."""

import datetime as dt

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Schema

from accounts.roles import Capability
from analytics.selectors import SummaryFilters, summary_compute
from sales_analytics.errors import ApiError, require_capability

router = Router(tags=["metrics"])


class SummaryQuery(Schema):
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


@router.get("/summary", response=SummaryOut)
def summary(request: HttpRequest, query: Query[SummaryQuery]):
    """KPI totals; `start`/`end` are inclusive whole days; dimension parameters repeat for several values."""
    require_capability(request, Capability.VIEW_DASHBOARDS)
    if query.start and query.end and query.start > query.end:
        raise ApiError(400, "invalid_date_range", "start must be on or before end.")
    include = {
        name: values
        for name in ("branch", "product_line", "city", "customer_type", "gender", "payment")
        if (values := getattr(query, name))
    }
    result = summary_compute(
        datasource_name=query.datasource or settings.DEFAULT_DATASOURCE,
        filters=SummaryFilters(start=query.start, end=query.end, include=include),
    )
    return result.__dict__
