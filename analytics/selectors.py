"""Reads for analytics: what is published, and the KPI summary over it."""

import datetime as dt
from dataclasses import dataclass, field

import duckdb
from django.db.models import QuerySet

from analytics.models import Datasource, Segment
from analytics.segments import segment_local_path

# Dimensions a caller may filter on in the summary; values are always bound parameters.
FILTERABLE_DIMENSIONS = ("branch", "product_line", "city", "customer_type", "gender", "payment")


@dataclass(frozen=True)
class SummaryFilters:
    start: dt.date | None = None
    end: dt.date | None = None
    include: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    total_revenue: float
    total_cost: float
    gross_profit: float
    gross_margin: float | None
    lines: int
    transactions: int
    units_sold: int
    average_ticket: float | None
    data_version: int | None


EMPTY_SUMMARY = Summary(0.0, 0.0, 0.0, None, 0, 0, 0, None, None)


def datasource_active_segments(*, datasource: Datasource) -> QuerySet[Segment]:
    return Segment.objects.filter(datasource=datasource, active=True).order_by("id")


def summary_compute(*, datasource_name: str, filters: SummaryFilters) -> Summary:
    """KPI totals over the active segments; an empty or unknown datasource gives zeros."""
    datasource = Datasource.objects.filter(name=datasource_name).first()
    if datasource is None:
        return EMPTY_SUMMARY
    segments = list(datasource_active_segments(datasource=datasource))
    if not segments:
        return Summary(**{**EMPTY_SUMMARY.__dict__, "data_version": datasource.data_version or None})
    paths = [str(segment_local_path(segment=segment)) for segment in segments]
    source = "read_parquet($paths, union_by_name = true)"
    with duckdb.connect() as con:
        described = con.execute(f"DESCRIBE SELECT * FROM {source}", {"paths": paths}).fetchall()  # noqa: S608
        columns = {row[0] for row in described}
        where, params = _where_clause(filters=filters, columns=columns)
        transactions = "count(DISTINCT invoice_id)" if "invoice_id" in columns else "count(*)"
        row = con.execute(
            f"SELECT coalesce(sum(revenue), 0), coalesce(sum(cost), 0), coalesce(sum(gross_profit), 0), "  # noqa: S608
            f"count(*), {transactions}, coalesce(sum(quantity), 0) FROM {source} {where}",
            {"paths": paths, **params},
        ).fetchone()
    revenue, cost, profit, lines, transaction_count, units = row
    return Summary(
        total_revenue=float(revenue),
        total_cost=float(cost),
        gross_profit=float(profit),
        gross_margin=float(profit) / float(revenue) if revenue else None,
        lines=int(lines),
        transactions=int(transaction_count),
        units_sold=int(units),
        average_ticket=float(revenue) / transaction_count if transaction_count else None,
        data_version=datasource.data_version,
    )


def _where_clause(*, filters: SummaryFilters, columns: set[str]) -> tuple[str, dict]:
    clauses: list[str] = []
    params: dict = {}
    if filters.start is not None:
        clauses.append("date >= $start")
        params["start"] = filters.start
    if filters.end is not None:
        clauses.append("date <= $end")
        params["end"] = filters.end
    for dimension, values in filters.include.items():
        if dimension not in FILTERABLE_DIMENSIONS:
            raise ValueError(f"unknown dimension {dimension}")
        if dimension not in columns:
            clauses.append("false")
            continue
        params[dimension] = list(values)
        clauses.append(f'"{dimension}" = ANY(${dimension})')
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
