"""Rollups and the facts of a data version: hashed comparisons equal exact ones, rollups summed
from finer ones or from the previous version's equal rollups built from every row."""

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics import rollups
from tests.analytics.helpers import sale_line, sales_frame, sales_rows

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
    derive = rollups._rollup_sum
    monkeypatch.setattr(
        rollups,
        "_rollup_sum",
        lambda con, sources, summed, name, *args: derived.append(name) or derive(con, sources, summed, name, *args),
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


# --- appending: the new version's facts from the previous rollups and the added rows ------------


def _rollup_frames(facts: rollups.VersionFacts) -> dict[str, pl.DataFrame]:
    return {rollup.name: pl.read_parquet(rollup.local_path) for rollup in facts.rollups}


def _facts_equal(got: rollups.VersionFacts, expected: rollups.VersionFacts, *, constant_exact: bool = True) -> None:
    assert got.columns == expected.columns
    assert got.has_invoice_id == expected.has_invoice_id
    if constant_exact:
        assert got.invoice_constant_dimensions == expected.invoice_constant_dimensions
    assert [(r.name, r.dimensions, r.rows) for r in got.rollups] == [
        (r.name, r.dimensions, r.rows) for r in expected.rollups
    ]
    for name, frame in _rollup_frames(got).items():
        wanted = _rollup_frames(expected)[name]
        assert frame.schema == wanted.schema, name
        # Amounts are float sums taken in another order; counts and keys are exact.
        assert_frame_equal(frame, wanted, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)


def _invoice_ids(rows: list[dict]) -> set[str]:
    return {row["invoice_id"] for row in rows if row["invoice_id"] is not None}


def _timed(rows: list[dict]) -> bool:
    return any(row["datetime"] is not None for row in rows)


def _kinds_differ(first: list[dict], second: list[dict]) -> bool:
    """Rollups of another kind: invoice ids or times of day on one side only."""
    return bool(_invoice_ids(first)) != bool(_invoice_ids(second)) or _timed(first) != _timed(second)


def _append_not_exact(first: list[dict], second: list[dict]) -> bool:
    """What version_facts_append must refuse: an invoice on both sides, or rollups of another kind."""
    return bool(_invoice_ids(first) & _invoice_ids(second)) or _kinds_differ(first, second)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=sales_rows(), cut=st.integers(1, 39))
def test_appended_facts_equal_facts_built_from_every_row(tmp_path_factory, rows, cut) -> None:
    cut = min(cut, len(rows) - 1) or 1
    first, second = rows[:cut], rows[cut:]
    if not second:
        first, second = rows[:-1], rows[-1:]
    if not first:
        return  # one row: nothing to append to
    workdir = tmp_path_factory.mktemp("append")
    paths = [workdir / "first.parquet", workdir / "second.parquet"]
    for path, part in zip(paths, (first, second), strict=True):
        sales_frame(part).write_parquet(path)
    previous = rollups.version_facts_build(segment_paths=paths[:1], workdir=workdir / "previous")

    appended = rollups.version_facts_append(
        previous=previous, previous_paths=paths[:1], added_path=paths[1], workdir=workdir / "appended"
    )

    event("refused" if appended is None else "appended")
    assert (appended is None) == _append_not_exact(first, second)
    if appended is not None:
        _facts_equal(appended, rollups.version_facts_build(segment_paths=paths, workdir=workdir / "full"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=sales_rows(), cut=st.integers(1, 39))
def test_replaced_facts_equal_facts_built_from_the_rows_kept_and_added(tmp_path_factory, rows, cut) -> None:
    # A replace swaps every row dated from the upload's first to its last day.
    cut = min(cut, len(rows) - 1)
    if cut < 1:
        return  # one row: nothing to replace
    previous_rows, added = rows[:cut], rows[cut:]
    days = (min(row["date"] for row in added), max(row["date"] for row in added))
    kept = [row for row in previous_rows if not days[0] <= row["date"] <= days[1]]
    workdir = tmp_path_factory.mktemp("replace")
    paths = {name: workdir / f"{name}.parquet" for name in ("previous", "kept", "added")}
    for name, part in (("previous", previous_rows), ("kept", kept), ("added", added)):
        sales_frame(part).write_parquet(paths[name])
    previous = rollups.version_facts_build(segment_paths=[paths["previous"]], workdir=workdir / "previous")

    replaced = rollups.version_facts_append(
        previous=previous,
        previous_paths=[paths["kept"]] if kept else [],
        added_path=paths["added"],
        workdir=workdir / "replaced",
        replaced_days=days,
    )

    event("refused" if replaced is None else "replaced")
    # Refused when no row is kept (nothing to add to), an invoice is on both sides of the rows
    # kept, or the previous version's rollups (of all its rows) are of another kind.
    refused = not kept or bool(_invoice_ids(kept) & _invoice_ids(added)) or _kinds_differ(previous_rows, added)
    assert (replaced is None) == refused
    if replaced is not None:
        built = rollups.version_facts_build(segment_paths=[paths["kept"], paths["added"]], workdir=workdir / "full")
        # Constant within every invoice of the previous rows means constant within the rows kept;
        # a dimension that varied only in swapped rows is still taken as varying (never too many).
        assert set(replaced.invoice_constant_dimensions) <= set(built.invoice_constant_dimensions)
        _facts_equal(replaced, built, constant_exact=False)


def test_an_invoice_on_both_sides_is_not_appended(tmp_path: Path) -> None:
    line = sale_line(invoice_id="INV-1")
    paths = [tmp_path / "first.parquet", tmp_path / "second.parquet"]
    sales_frame([line]).write_parquet(paths[0])
    # The same invoice's second line, another product: summing each side's count would give 2.
    sales_frame([{**line, "product_line": "Drinks"}]).write_parquet(paths[1])
    previous = rollups.version_facts_build(segment_paths=paths[:1], workdir=tmp_path / "previous")

    assert (
        rollups.version_facts_append(
            previous=previous, previous_paths=paths[:1], added_path=paths[1], workdir=tmp_path / "appended"
        )
        is None
    )
