"""The Druid reconciliation's comparison, with Druid's side given (tests/druid/test_sync.py runs it
against the real Druid)."""

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analytics.catalogue import datasource_snapshot
from analytics.engines import druid_sync
from tests.analytics.publishing import sales_rows, synthetic_publish

pytestmark = pytest.mark.django_db

DRUID_COLUMNS = {"__time": "TIMESTAMP", "branch": "VARCHAR", "product_line": "VARCHAR", "invoice_id": "VARCHAR"}


def _druid_holds(monkeypatch, *, cells: dict, values: dict) -> None:
    monkeypatch.setattr(druid_sync, "_druid_columns", lambda datasource: DRUID_COLUMNS)
    monkeypatch.setattr(druid_sync, "_druid_cells", lambda datasource, columns: cells)
    monkeypatch.setattr(druid_sync, "_druid_values", lambda datasource, dimensions, columns: values)


def _catalogue(name: str) -> tuple[dict, dict]:
    snapshot = datasource_snapshot(name=name)
    dimensions = druid_sync._compared_dimensions(snapshot, DRUID_COLUMNS)
    return druid_sync._catalogue_cells(snapshot), druid_sync._catalogue_values(snapshot, dimensions)


def test_rows_moved_between_days_are_found_although_the_totals_agree(tmp_path: Path, monkeypatch) -> None:
    # A day/month fix that reached Druid but not the catalogue: same lines, same revenue in total.
    rows = sales_rows(start=dt.date(2024, 3, 1), days=4, seed=8)
    synthetic_publish(datasource="moved", rows=rows, workdir=tmp_path)
    ours, our_values = _catalogue("moved")
    first, second = dt.date(2024, 3, 1), dt.date(2024, 3, 2)

    def swapped(day: dt.date) -> dt.date:
        return second if day == first else first if day == second else day

    theirs = {(swapped(day), branch): cell for (day, branch), cell in ours.items()}
    their_values = {(name, swapped(day), value): lines for (name, day, value), lines in our_values.items()}
    _druid_holds(monkeypatch, cells=theirs, values=their_values)

    result = druid_sync.druid_reconcile(datasource_name="moved")

    assert (result.catalogue_lines, result.druid_lines) == (len(rows), len(rows))
    assert result.catalogue_revenue == pytest.approx(result.druid_revenue)
    assert not result.in_sync
    moved_cells = {key for key in ours.keys() | theirs.keys() if key[0] in (first, second)}
    assert result.cells_apart_count == len(moved_cells)
    assert result.cells_apart[0].startswith("2024-03-01 branch ")


def test_rows_with_another_product_line_are_found_although_every_amount_agrees(tmp_path: Path, monkeypatch) -> None:
    # Druid holds the same sales with one line's product line wrong: every part per day and
    # branch adds up the same, only the product lines' lines per day differ.
    rows = sales_rows(start=dt.date(2024, 3, 1), days=3, seed=9)
    synthetic_publish(datasource="relabelled", rows=rows, workdir=tmp_path)
    ours, our_values = _catalogue("relabelled")
    wrong = rows[0]
    their_values = dict(our_values)
    right_key = ("product_line", wrong["date"], wrong["product_line"])
    wrong_key = ("product_line", wrong["date"], "Electronic accessories")
    their_values[right_key] -= 1
    their_values[wrong_key] = their_values.get(wrong_key, 0) + 1
    _druid_holds(monkeypatch, cells=dict(ours), values=their_values)

    result = druid_sync.druid_reconcile(datasource_name="relabelled")

    assert not result.in_sync
    assert (result.cells_apart_count, result.values_apart_count) == (0, 2)
    assert "2024-03-01 product_line 'Electronic accessories': catalogue 0 lines, Druid 1 line" in result.values_apart
    assert "day×dimension value" in result.describe()


def test_every_additive_part_is_compared_per_day_and_branch(tmp_path: Path, monkeypatch) -> None:
    # Same lines and revenue, but Druid's quantities are wrong: units sold would be off.
    rows = sales_rows(start=dt.date(2024, 3, 1), days=2, seed=10)
    synthetic_publish(datasource="quantities", rows=rows, workdir=tmp_path)
    ours, our_values = _catalogue("quantities")
    cell = min(ours)
    theirs = {**ours, cell: {**ours[cell], "quantity_sum": ours[cell]["quantity_sum"] + 5}}
    _druid_holds(monkeypatch, cells=theirs, values=our_values)

    result = druid_sync.druid_reconcile(datasource_name="quantities")

    assert (result.cells_apart_count, result.values_apart_count) == (1, 0)
    expected = ours[cell]["quantity_sum"]
    assert result.cells_apart == (
        f"{cell[0]} branch {cell[1]}: quantity_sum catalogue {expected:,}, Druid {expected + 5:,}",
    )


def test_only_datasources_of_the_catalogue_are_compared_or_loaded(tmp_path: Path, monkeypatch) -> None:
    # Another application's Druid datasource on a shared cluster is never touched.
    synthetic_publish(datasource="ours", rows=sales_rows(start=dt.date(2024, 3, 1), days=1), workdir=tmp_path)

    def druid_asked(datasource: str) -> dict:
        raise AssertionError(f"Druid was asked about {datasource}")

    monkeypatch.setattr(druid_sync, "_druid_columns", druid_asked)
    with pytest.raises(CommandError, match="Not datasources of this catalogue: theirs"):
        call_command("druid_sync", "--datasource", "theirs", stdout=io.StringIO())


def test_check_and_force_together_are_refused() -> None:
    with pytest.raises(CommandError, match="choose one"):
        call_command("druid_sync", "--check", "--force", stdout=io.StringIO())


@pytest.mark.parametrize("has_column", [True, False], ids=["current-rows", "rows-of-an-earlier-release"])
def test_druid_rows_without_the_revenue_with_profit_column_can_still_be_compared(monkeypatch, has_column) -> None:
    # Druid refuses a column none of a table's segments has: the sync that brings the column (the
    # README's upgrade step) failed at its first comparison.
    asked: list[str] = []
    monkeypatch.setattr(druid_sync, "druid_sql", lambda sql, params: asked.append(sql) or [])
    columns = {**DRUID_COLUMNS, **({"revenue_with_profit": "DOUBLE"} if has_column else {})}

    assert druid_sync._druid_cells("sales", columns) == {}

    assert ('"revenue_with_profit"' in asked[0]) is has_column
    assert 'CASE WHEN "gross_profit_sum" IS NOT NULL THEN "revenue_sum" END' in asked[0]
