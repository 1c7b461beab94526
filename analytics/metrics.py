"""Metrics, declared once (DESIGN.md "Metrics and filters").

Every metric is computed from additive *parts*. Raw rows and rollups provide the same parts
(a rollup stores them pre-summed), so a ratio is always computed from sums, never by
averaging averages, and the answer does not depend on where it came from.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """An additive aggregate: how raw rows compute it and how a rollup column re-sums it."""

    name: str
    raw_sql: str
    needs_column: str | None = None


PARTS: dict[str, Part] = {
    part.name: part
    for part in (
        Part("revenue_sum", "sum(revenue)"),
        Part("cost_sum", "sum(cost)"),
        Part("gross_profit_sum", "sum(gross_profit)"),
        Part("quantity_sum", "sum(quantity)"),
        Part("tax_sum", "sum(tax)"),
        Part("lines", "count(*)"),
        Part("rating_sum", "sum(rating)"),
        Part("rating_count", "count(rating)"),
        # Exact distinct count; not additive across rollup cells (see analytics.routing). A line
        # without an invoice id is a transaction of its own, so a branch's count never depends on
        # whether *other* rows of the datasource carry ids (branch scope = rows deleted).
        Part("invoices", "count(DISTINCT invoice_id) + count(*) - count(invoice_id)", needs_column="invoice_id"),
    )
}

# Parts a rollup stores as plain sums; `invoices` is stored per cell and summed only where exact.
ADDITIVE_PARTS: tuple[str, ...] = tuple(name for name in PARTS if name != "invoices")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    parts: tuple[str, ...]
    # An SQL expression over part aliases; identical in every dialect.
    expression: str
    is_currency: bool = False
    is_ratio: bool = False
    is_count: bool = False


def _ratio(numerator: str, denominator: str) -> str:
    return f"CAST({numerator} AS DOUBLE) / NULLIF({denominator}, 0)"


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("revenue", "Revenue", ("revenue_sum",), "coalesce(revenue_sum, 0)", is_currency=True),
        Metric("cost", "Cost", ("cost_sum",), "coalesce(cost_sum, 0)", is_currency=True),
        Metric(
            "gross_profit", "Gross profit", ("gross_profit_sum",), "coalesce(gross_profit_sum, 0)", is_currency=True
        ),
        Metric("tax", "Tax", ("tax_sum",), "coalesce(tax_sum, 0)", is_currency=True),
        Metric("units_sold", "Units sold", ("quantity_sum",), "coalesce(quantity_sum, 0)", is_count=True),
        Metric("lines", "Sale lines", ("lines",), "coalesce(lines, 0)", is_count=True),
        # `transactions` is rewritten to `lines` for datasources without invoice ids.
        Metric("transactions", "Transactions", ("invoices",), "coalesce(invoices, 0)", is_count=True),
        Metric(
            "gross_margin",
            "Gross margin",
            ("gross_profit_sum", "revenue_sum"),
            _ratio("gross_profit_sum", "revenue_sum"),
            is_ratio=True,
        ),
        Metric(
            "average_ticket",
            "Average ticket",
            ("revenue_sum", "invoices"),
            _ratio("revenue_sum", "invoices"),
            is_currency=True,
        ),
        Metric(
            "average_unit_price",
            "Average unit price",
            ("revenue_sum", "quantity_sum"),
            _ratio("revenue_sum", "quantity_sum"),
            is_currency=True,
        ),
        Metric(
            "average_rating", "Average rating", ("rating_sum", "rating_count"), _ratio("rating_sum", "rating_count")
        ),
    )
}

SUMMARY_METRICS: tuple[str, ...] = (
    "revenue",
    "cost",
    "gross_profit",
    "gross_margin",
    "lines",
    "transactions",
    "units_sold",
    "average_ticket",
)


def metric_parts(metric_names: tuple[str, ...] | list[str], *, has_invoice_id: bool) -> tuple[str, ...]:
    """The parts the metrics need, with `invoices` replaced by `lines` when there are no invoice ids."""
    needed: list[str] = []
    for name in metric_names:
        for part in METRICS[name].parts:
            resolved = part if has_invoice_id or part != "invoices" else "lines"
            if resolved not in needed:
                needed.append(resolved)
    return tuple(needed)


def metric_expression(name: str, *, has_invoice_id: bool) -> str:
    expression = METRICS[name].expression
    return expression if has_invoice_id else expression.replace("invoices", "lines")
