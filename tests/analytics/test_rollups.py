"""Which dimensions stay constant within an invoice: hashed comparison equals the exact one."""

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from analytics import rollups

ROWS = {
    "invoice_id": ["i1", "i1", "i2", "i2", "i3", "i3", "i4", None],
    "date": [date(2019, 1, 1)] * 8,
    "branch": ["A", "A", "B", "B", "C", "C", "A", "B"],  # constant
    "product_line": ["x", "y", "x", "x", "x", "x", "x", "x"],  # varies in i1
    "city": ["p", "p", "q", None, "r", "r", None, "r"],  # NULL and a value in i2
    "payment": [None, None, "c", "c", "d", "d", None, "e"],  # all NULL in i1 is one value
}


@pytest.fixture
def table(tmp_path: Path) -> str:
    path = tmp_path / "rows.parquet"
    pl.DataFrame(ROWS).write_parquet(path)
    return f"read_parquet('{path}')"


def _constant(table: str) -> list[str]:
    with duckdb.connect() as con:
        return rollups._invoice_constant_dimensions(con, table, list(ROWS))


def test_hash_comparison_finds_the_constant_dimensions(table: str) -> None:
    with duckdb.connect() as con:
        assert rollups._hash_injective_dimensions(con, table, ["branch", "city", "payment"]) == [
            "branch",
            "city",
            "payment",
        ]  # NULLs are not values that could collide
    assert _constant(table) == ["date", "branch", "payment"]


def test_dimensions_whose_hashes_collide_are_compared_exactly(table: str, monkeypatch) -> None:
    hashed = _constant(table)
    monkeypatch.setattr(rollups, "_hash_injective_dimensions", lambda con, table, dimensions: [])
    assert _constant(table) == hashed


@pytest.mark.parametrize("with_invoice_ids", [True, False])
def test_rollups_summed_from_finer_ones_equal_rollups_built_from_rows(
    tmp_path: Path, with_invoice_ids: bool, monkeypatch
) -> None:
    rows = pl.DataFrame(
        {
            **ROWS,
            "invoice_id": ROWS["invoice_id"] if with_invoice_ids else [None] * 8,
            "city": ["p", "p", "q", "q", "r", "r", None, "r"],
            "datetime": [datetime(2019, 1, 1, hour) for hour in (9, 9, 10, 10, 11, 11, 12, 13)],
            "customer_type": ["m"] * 8,
            "gender": ["f", "f", "m", "m", "f", "f", "m", "m"],
            "quantity": [1, 2, 3, 4, 5, 6, 7, 8],
            "revenue": [1.5, 2.25, 3.0, 4.0, 5.0, 6.0, 7.0, 8.125],
            "cost": [1.0] * 8,
            "gross_profit": [0.5] * 8,
            "tax": [0.1] * 8,
            "rating": [None, 7.0, 8.0, None, 9.0, 9.0, 10.0, 4.0],
        }
    )
    path = tmp_path / "rows.parquet"
    rows.write_parquet(path)
    derived: list[str] = []
    derive = rollups._rollup_derive
    monkeypatch.setattr(
        rollups,
        "_rollup_derive",
        lambda con, finer, name, *args: derived.append(name) or derive(con, finer, name, *args),
    )
    facts = rollups.version_facts_build(segment_paths=[path], workdir=tmp_path / "facts")
    table = f"read_parquet('{path}')"
    with duckdb.connect() as con:
        for built in facts.rollups:
            direct = rollups._rollup_build(
                con, table, built.name, built.dimensions, facts.has_invoice_id, facts.columns, tmp_path
            )
            got, expected = (pl.read_parquet(rollup.local_path) for rollup in (built, direct))
            assert got.schema == expected.schema, built.name
            assert got.equals(expected), built.name
    # Only product_line varies within an invoice: summing it away keeps the invoice counts exact.
    if with_invoice_ids:
        assert facts.invoice_constant_dimensions == [
            "date",
            "branch",
            "city",
            "customer_type",
            "gender",
            "payment",
            "hour",
        ]
    summed = [
        "day_branch",
        "day_branch_product_line",
        "day_product_line",
    ]  # day_invoice_dimensions would drop product_line
    assert sorted(derived) == (summed if with_invoice_ids else sorted([*summed, "day_invoice_dimensions"]))
