"""Which source answers a spec: the smallest rollup that covers it exactly, else raw rows."""

from analytics.catalogue import Snapshot
from analytics.metrics import ADDITIVE_PARTS, metric_parts
from analytics.models import Rollup
from analytics.query import Filters, Grain, QuerySpec, TimeSeries
from analytics.sql import VIRTUAL_DIMENSIONS


def columns_needed(*, spec: QuerySpec, filters: Filters) -> set[str]:
    """Stored columns a source must keep to answer the spec (virtual dimensions map to their inputs)."""
    needed: set[str] = set()
    for dimension in set(spec.dimensions) | filters.dimensions:
        if dimension in VIRTUAL_DIMENSIONS:
            if VIRTUAL_DIMENSIONS[dimension] is not None:
                needed.add(VIRTUAL_DIMENSIONS[dimension])
        else:
            needed.add(dimension)
    return needed


def rollup_choose(*, spec: QuerySpec, filters: Filters, snapshot: Snapshot) -> Rollup | None:
    needed = columns_needed(spec=spec, filters=filters)
    has_invoice_id = snapshot.datasource.has_invoice_id
    parts = metric_parts(spec.metric_names, has_invoice_id=has_invoice_id)
    needs_invoices = "invoices" in parts
    summed_parts = set(parts) & set(ADDITIVE_PARTS)
    for rollup in snapshot.rollups:  # smallest first
        if not needed <= set(rollup.dimensions):
            continue
        if not summed_parts <= set(rollup.parts):
            continue  # stored by an earlier release, before this part existed: finer data answers
        if needs_invoices and not invoices_exact(spec=spec, rollup=rollup, snapshot=snapshot):
            continue
        return rollup
    return None


def invoices_exact(*, spec: QuerySpec, rollup: Rollup, snapshot: Snapshot) -> bool:
    """Summing per-cell distinct invoice counts is exact when no invoice spans two summed cells.

    The cells summed into one answer row differ only in the rollup keys the spec does not
    group by; if every such key has one value per invoice, each invoice sits in one cell.
    """
    grouped = set(spec.dimensions)
    if isinstance(spec, TimeSeries) and spec.grain is Grain.DAY:
        grouped.add("date")
    summed_over = ({"date"} | set(rollup.dimensions)) - grouped
    return summed_over <= set(snapshot.datasource.invoice_constant_dimensions)
