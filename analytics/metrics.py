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
    # Stored columns the raw SQL reads: over rows without one of them (an old segment) the part is NULL.
    reads: tuple[str, ...] = ()


PARTS: dict[str, Part] = {
    part.name: part
    for part in (
        Part("revenue_sum", "sum(revenue)", reads=("revenue",)),
        Part("cost_sum", "sum(cost)", reads=("cost",)),
        Part("gross_profit_sum", "sum(gross_profit)", reads=("gross_profit",)),
        # The revenue of the lines whose gross profit is known: the margin's denominator, so that
        # lines of a file without cost do not dilute it (their profit is unknown, not 0).
        Part(
            "revenue_with_profit",
            "sum(CASE WHEN gross_profit IS NOT NULL THEN revenue END)",
            reads=("revenue", "gross_profit"),
        ),
        Part("quantity_sum", "sum(quantity)", reads=("quantity",)),
        Part("tax_sum", "sum(tax)", reads=("tax",)),
        Part("lines", "count(*)"),
        Part("rating_sum", "sum(rating)", reads=("rating",)),
        Part("rating_count", "count(rating)", reads=("rating",)),
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
    # A quotient (margin, averages): undefined, not 0, without rows.
    is_quotient: bool = False

    @property
    def rank_decimals(self) -> int | None:
        """Decimals a ranking by this metric compares: float sums and quotients carry noise in
        their last bits (equal margins differ in the 16th digit), which must not order ties."""
        if self.is_count:
            return None
        return RATIO_RANK_DECIMALS if self.is_ratio or self.is_quotient else AMOUNT_RANK_DECIMALS


# Far below what any page shows (a tenth of a percent point, a cent), far above summation noise.
RATIO_RANK_DECIMALS = 9
AMOUNT_RANK_DECIMALS = 6


def _ratio(numerator: str, denominator: str) -> str:
    return f"CAST({numerator} AS DOUBLE) / NULLIF({denominator}, 0)"


def _known_sum(part: str) -> str:
    """A sum that is 0 over no rows, but unknown (NULL) over rows none of which has the value
    (cost and gross profit of a file without cost, tax of a file without a tax column): not 0,
    which would read as "no profit" or "tax-free"."""
    return f"CASE WHEN coalesce(lines, 0) = 0 THEN 0 ELSE {part} END"


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("revenue", "Revenue", ("revenue_sum",), "coalesce(revenue_sum, 0)", is_currency=True),
        Metric("cost", "Cost", ("cost_sum", "lines"), _known_sum("cost_sum"), is_currency=True),
        Metric(
            "gross_profit",
            "Gross profit",
            ("gross_profit_sum", "lines"),
            _known_sum("gross_profit_sum"),
            is_currency=True,
        ),
        Metric("tax", "Tax", ("tax_sum", "lines"), _known_sum("tax_sum"), is_currency=True),
        Metric("units_sold", "Units sold", ("quantity_sum",), "coalesce(quantity_sum, 0)", is_count=True),
        Metric("lines", "Sale lines", ("lines",), "coalesce(lines, 0)", is_count=True),
        # `transactions` is rewritten to `lines` for datasources without invoice ids.
        Metric("transactions", "Transactions", ("invoices",), "coalesce(invoices, 0)", is_count=True),
        Metric(
            "gross_margin",
            "Gross margin",
            ("gross_profit_sum", "revenue_with_profit"),
            _ratio("gross_profit_sum", "revenue_with_profit"),
            is_ratio=True,
            is_quotient=True,
        ),
        # What the gross margin is of: equal to revenue unless some lines have no cost.
        Metric(
            "revenue_with_cost",
            "Revenue with known cost",
            ("revenue_with_profit",),
            "coalesce(revenue_with_profit, 0)",
            is_currency=True,
        ),
        Metric(
            "average_ticket",
            "Average ticket",
            ("revenue_sum", "invoices"),
            _ratio("revenue_sum", "invoices"),
            is_currency=True,
            is_quotient=True,
        ),
        Metric(
            "average_unit_price",
            "Average unit price",
            ("revenue_sum", "quantity_sum"),
            _ratio("revenue_sum", "quantity_sum"),
            is_currency=True,
            is_quotient=True,
        ),
        Metric(
            "average_rating",
            "Average rating",
            ("rating_sum", "rating_count"),
            _ratio("rating_sum", "rating_count"),
            is_quotient=True,
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
