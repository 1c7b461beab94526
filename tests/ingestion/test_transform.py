"""Batch transform: parsing, derivations and Pandera row validation (DESIGN.md step 6)."""

import decimal
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from unittest import mock

import pandera.config
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from ingestion import readers
from ingestion.dates import date_format_choose
from ingestion.mapping import mapping_resolve
from ingestion.readers import source_detect, source_read_batches
from ingestion.transform import (
    OUTPUT_FIELDS,
    TransformPlan,
    amounts_parse,
    batch_transform,
    date_max,
    decimal_parse,
)
from tests.conftest import REAL_FILE

BASIC = ["Date", "Branch", "Product line", "Quantity", "Unit price", "Total", "Note"]


def batch_make(columns: list[str], rows: list[list[str | None]], first_row: int = 2) -> pl.DataFrame:
    """A batch as the readers yield it: every column a trimmed string (null when empty), plus the
    source row number."""
    frame = pl.DataFrame(rows, schema={name: pl.String for name in columns}, orient="row")
    return as_read(frame.with_row_index("__row_number", offset=first_row))


def as_read(frame: pl.DataFrame) -> pl.DataFrame:
    """Cells trimmed and empty ones null, as every reader yields them (tests/ingestion/test_readers.py)."""
    text = [name for name in frame.columns if name != "__row_number"]
    trimmed = frame.with_columns(pl.col(text).str.strip_chars())
    return trimmed.with_columns(
        *(pl.when(pl.col(name) != "").then(pl.col(name)).alias(name) for name in text),
        pl.col("__row_number").cast(pl.Int64),
    )


def plan_make(columns: list[str], date_format: str = "%d/%m/%y", **options) -> TransformPlan:
    return TransformPlan.from_mapping(mapping=mapping_resolve(columns=columns), date_format=date_format, **options)


def transform(columns: list[str], rows: list[list[str | None]], **options):
    return batch_transform(batch_make(columns, rows), plan_make(columns, **options))


# --- the real file --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_result():
    assert REAL_FILE.exists(), f"missing {REAL_FILE}"
    frame = as_read(pl.read_csv(REAL_FILE, infer_schema=False).with_row_index("__row_number", offset=2))
    columns = [name for name in frame.columns if name != "__row_number"]
    mapping = mapping_resolve(columns=columns)
    choice = date_format_choose(frame[mapping.fields["date"]])
    assert choice.format == "%d-%b-%Y"
    return batch_transform(frame, TransformPlan.from_mapping(mapping=mapping, date_format=choice.format))


def test_real_file_loads_every_row(real_result):
    assert real_result.valid.height == 1000
    assert real_result.rejected.height == 0


def test_real_file_totals_reconcile_with_the_source(real_result):
    valid = real_result.valid
    assert valid["revenue"].sum() == pytest.approx(322966.749, abs=0.005)
    assert valid["cost"].sum() == pytest.approx(307587.38, abs=0.005)
    assert valid["gross_profit"].sum() == pytest.approx(15379.369, abs=0.005)
    assert valid["quantity"].sum() == 5510
    assert valid.filter(pl.col("branch") == "A")["revenue"].sum() == pytest.approx(106200.3705, abs=0.005)
    january = valid.filter(pl.col("date").is_between(date(2019, 1, 1), date(2019, 1, 31)))
    assert january["revenue"].sum() == pytest.approx(116291.868, abs=0.005)


def test_real_file_output_shape(real_result):
    valid = real_result.valid
    assert valid.columns == [*OUTPUT_FIELDS, "gross_margin_percentage"]
    assert valid.schema["date"] == pl.Date
    assert valid.schema["datetime"] == pl.Datetime("us")
    assert valid.schema["quantity"] == pl.Int64
    assert valid.schema["revenue"] == pl.Float64
    first = valid.row(0, named=True)
    assert first["date"] == date(2019, 1, 1)
    assert first["datetime"] == datetime(2019, 1, 1, 10, 39)  # Time column merged in
    assert first["invoice_id"] == "765-26-6951"
    assert first["revenue"] == 457.443  # never rounded
    assert first["rating"] == 6.9


# --- rejected rows --------------------------------------------------------------------------

PARTLY_INVALID = [
    ["03/01/19", "A", "Food", "3", "10.00", "31.50", "fine"],
    ["32/01/19", "A", "Food", "1.5", "10", "10", "two problems"],
    ["04/01/19", " ", "Food", "2", "10", "20", None],
    ["05/01/19", "B", "Food", "abc", "10", "20", None],
    ["06/01/19", "B", "Food", "2", "-10", "-20", None],
    ["07/01/85", "B", "Food", "2", "10", "20", None],
    ["08/01/19", "B", "Food", "2", "10", "1e400", None],
    ["09/01/19", "B", None, "3.0", "$1,234.50", "20", None],
    ["10/01/19", "B", "Food", "-2", "10", "-20", "a return"],
    ["11/01/19", "B", "Food", "0", "0", "0", None],
    ["12/01/19", "B", "Food", "2", "12,50", "N/A", None],
    ["", "B", "Food", "2", "10", "20", None],
]


@pytest.mark.parametrize(
    ("time_zone", "latest"),
    [
        ("Pacific/Kiritimati", date(2025, 3, 1)),  # UTC+14: already 29 February 2024 there
        ("UTC", date(2025, 2, 28)),
        ("America/Adak", date(2025, 2, 28)),  # UTC-10: still 28 February
    ],
)
def test_the_latest_date_accepted_is_a_year_after_the_site_s_today(monkeypatch, time_zone: str, latest: date):
    # "Today" is the business's (settings.TIME_ZONE), as for freshness alerts: not the server clock's zone.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2024, 2, 28, 12, 0, tzinfo=UTC))
    with override_settings(TIME_ZONE=time_zone):
        assert date_max() == latest


def test_partly_invalid_rows_give_exact_report_rows():
    result = transform(BASIC, PARTLY_INVALID)
    latest = date_max().isoformat()
    assert result.rejected.rows() == [
        (3, "Date", "32/01/19", "not a date in format %d/%m/%y"),
        (3, "Quantity", "1.5", "quantity must be a whole number"),
        (4, "Branch", None, "branch is missing"),  # a blank cell reads as empty
        (5, "Quantity", "abc", "not a number"),
        (6, "Unit price", "-10", "unit price must not be negative"),
        (7, "Date", "07/01/85", f"date must be between 1990-01-01 and {latest}"),
        (8, "Total", "1e400", "revenue is not a finite number"),
        (9, "Product line", None, "product line is missing"),
        (12, "Unit price", "12,50", "not a number"),
        (12, "Total", "N/A", "revenue is missing"),
        (13, "Date", None, "date is missing"),
    ]
    assert result.rejected["row_number"].n_unique() == 9
    assert result.valid.height == len(PARTLY_INVALID) - 9
    assert result.valid["note"].to_list() == ["fine", "a return", None]
    assert result.valid["quantity"].to_list() == [3, -2, 0]
    assert result.valid.columns == [*OUTPUT_FIELDS, "note"]
    assert "__row_number" not in result.valid.columns


def test_valid_and_rejected_partition_the_batch():
    batch = batch_make(BASIC, PARTLY_INVALID)
    result = batch_transform(batch, plan_make(BASIC))
    assert result.valid.height + result.rejected["row_number"].n_unique() == batch.height


def test_quantity_must_be_whole():
    result = transform(BASIC, [["03/01/19", "A", "F", q, "1", "1", None] for q in ("3", "3.0", "-1", "1.5", "2.01")])
    assert result.valid["quantity"].to_list() == [3, 3, -1]
    assert result.rejected["value"].to_list() == ["1.5", "2.01"]
    assert set(result.rejected["reason"]) == {"quantity must be a whole number"}


def test_a_bad_value_in_the_last_batch_of_many_is_rejected():
    # Value checks (not parsing) must run on every batch: a range and a sign failure, last batch only.
    good = ["03/01/19", "A", "Food", "2", "10", "20", None]
    plan = plan_make(BASIC)
    results = []
    for number in range(3):
        rows = [list(good) for _ in range(5000)]
        if number == 2:
            rows[4000][4] = "-3"
            rows[4999][0] = "01/01/68"  # 2068: past today + 1 year
        results.append(batch_transform(batch_make(BASIC, rows, first_row=2 + number * 5000), plan))
    assert [result.rejected.height for result in results] == [0, 0, 2]
    assert results[2].rejected.select("row_number", "column", "value").rows() == [
        (14002, "Unit price", "-3"),
        (15001, "Date", "01/01/68"),
    ]
    assert sum(result.valid.height for result in results) == 14998


def test_value_checks_run_even_when_pandera_is_configured_for_schema_only():
    rows = [["03/01/19", "A", "Food", "2", "-10", "20", None]]
    with pandera.config.config_context(validation_depth=pandera.config.ValidationDepth.SCHEMA_ONLY):
        result = transform(BASIC, rows)
    assert result.rejected["reason"].to_list() == ["unit price must not be negative"]


# --- numbers ---------------------------------------------------------------------------------


def test_decimal_comma():
    rows = [
        ["03.01.2019", "A", "F", "3,0", "1.234,56", "3.703,68", None],
        ["04.01.2019", "A", "F", "1", "€ 12,50", "12,5 €", None],
        ["05.01.2019", "A", "F", "1", "1,234.56", "1", None],
    ]
    result = transform(BASIC, rows, date_format="%d.%m.%Y", decimal_comma=True)
    assert result.valid.select("quantity", "unit_price", "revenue").rows() == [(3, 1234.56, 3703.68), (1, 12.5, 12.5)]
    assert result.rejected.rows() == [(4, "Unit price", "1,234.56", "not a number")]


@pytest.mark.parametrize(
    ("text", "decimal_comma", "expected"),
    [
        ("$1,234.50", False, 1234.5),
        ("1,234.56", False, 1234.56),
        ("1234.5678", False, 1234.5678),
        ("(12.50)", False, -12.5),
        ("-0.5", False, -0.5),
        ("USD 7", False, 7.0),
        ("1 234,56", True, 1234.56),
        ("1.234,56", True, 1234.56),
        ("€ 12,50", True, 12.5),
        ("12,50", False, None),  # a decimal comma read as a thousands separator would be 100× off
        ("₹1,23,456.00", False, 123456.0),  # India's grouping: lakhs and crores
        ("1,23,45,678", False, 12345678.0),
        ("1,00,000.50", False, 100000.5),
        ("1,2,345", False, None),
        ("12,34,56", False, None),
        ("1.2.3", False, None),
        ("\u2212457.44", False, -457.44),  # the typographic minus sign
        ("457.44-", False, -457.44),  # a trailing minus, as SAP exports negatives
        ("1.234,56-", True, -1234.56),
        ("5-", False, -5.0),
        ("- 5", False, -5.0),
        ("4-5", False, None),
        ("-457.44-", False, None),
        ("nan", False, None),
        ("abc", False, None),
        (None, False, None),
    ],
)
def test_decimal_parse(text, decimal_comma, expected):
    parsed = decimal_parse(pl.Series([text], dtype=pl.String), decimal_comma=decimal_comma)
    assert parsed.dtype == pl.Float64
    assert parsed[0] == expected


@pytest.mark.parametrize(
    ("texts", "decimal_comma", "currencies"),
    [
        (["12.5", "3", None], False, set()),
        (["$1,234.50", "US$ 3", "USD 4", "5"], False, {"USD"}),
        (["€ 12,50", "1.234,56 EUR", "7"], True, {"EUR"}),
        (["CHF 1'234.50", "£ 3"], False, {"CHF", "GBP"}),
        (["NIL", "TBD", "n/a", "$ 5"], False, {"USD"}),  # a word where an amount should be is no currency
    ],
)
def test_amounts_name_the_currencies_they_are_written_with(texts, decimal_comma, currencies):
    _, found = amounts_parse(pl.Series(texts, dtype=pl.String), decimal_comma=decimal_comma)
    assert found == currencies


# --- derivations -----------------------------------------------------------------------------


def test_revenue_from_unit_price_and_quantity():
    columns = ["Date", "Branch", "Product line", "Quantity", "Unit price"]
    result = transform(columns, [["03/01/19", "A", "F", "3", "10.5"], ["04/01/19", "A", "F", "-1", "2.25"]])
    assert result.valid["revenue"].to_list() == [31.5, -2.25]
    assert result.valid["cost"].to_list() == [None, None]


def test_revenue_includes_tax_when_given():
    columns = ["Date", "Branch", "Product line", "Quantity", "Unit price", "Tax"]
    result = transform(
        columns, [["03/01/19", "A", "F", "6", "72.61", "21.783"], ["04/01/19", "A", "F", "1", "2", None]]
    )
    assert result.valid["revenue"].to_list() == pytest.approx([457.443, 2.0])


def test_gross_profit_and_unit_price_from_revenue_and_cost():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total", "cogs"]
    rows = [["03/01/19", "A", "F", "4", "100", "60"], ["04/01/19", "A", "F", "0", "5", "0"]]
    result = transform(columns, rows)
    assert result.valid.select("unit_price", "revenue", "cost", "gross_profit").rows() == [
        (25.0, 100.0, 60.0, 40.0),
        (None, 5.0, 0.0, 5.0),  # no unit price for a zero quantity, and the row is kept
    ]


def test_cost_from_revenue_and_gross_profit():
    columns = ["Date", "Branch", "Product line", "Quantity", "Sales", "Profit"]
    result = transform(columns, [["03/01/19", "A", "F", "2", "50", "12.5"]])
    assert result.valid.select("cost", "gross_profit", "unit_price").row(0) == (37.5, 12.5, 25.0)


def test_a_derived_value_breaking_a_rule_is_reported_against_its_input():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total"]
    result = transform(columns, [["03/01/19", "A", "F", "-2", "20"], ["04/01/19", "A", "F", "x", "20"]])
    assert result.rejected.rows() == [
        (2, "Total", "20", "unit price (computed) must not be negative"),
        (3, "Quantity", "x", "not a number"),  # not also "unit price is missing"
    ]


# --- dates and dimensions --------------------------------------------------------------------


def test_datetime_format_keeps_a_date_column_and_a_datetime():
    columns = ["Order Date", "Store", "Category", "Qty", "Amount"]
    rows = [["2019-01-03 10:15:00", "A", "F", "1", "1"], ["2019-01-04 23:59:59", "A", "F", "1", "1"]]
    result = transform(columns, rows, date_format="%Y-%m-%d %H:%M:%S")
    assert result.valid["date"].to_list() == [date(2019, 1, 3), date(2019, 1, 4)]
    assert result.valid["datetime"].to_list() == [datetime(2019, 1, 3, 10, 15), datetime(2019, 1, 4, 23, 59, 59)]


def test_a_bad_time_rejects_the_row():
    columns = ["Date", "Time", "Branch", "Product line", "Quantity", "Total"]
    rows = [["03/01/19", "1:08:00 PM", "A", "F", "1", "1"], ["03/01/19", "teatime", "A", "F", "1", "1"]]
    result = transform(columns, rows)
    assert result.valid["datetime"].to_list() == [datetime(2019, 1, 3, 13, 8)]
    assert result.rejected.rows() == [(3, "Time", "teatime", "not a time of day (e.g. 13:08 or 1:08 PM)")]


def test_a_mapped_cell_holding_an_excel_error_rejects_its_row_with_the_error_as_reason():
    columns = ["Date", "Branch", "Product line", "Quantity", "Total", "Cost", "Colour"]
    rows = [
        ["03/01/19", "A", "F", "1", None, "6", None],  # Total holds #REF!
        ["03/01/19", "A", "F", "1", "10", None, None],  # Cost (optional) holds #N/A: unknown, not "no cost"
        ["03/01/19", "A", "F", "1", "10", "6", None],  # Colour (an extra dimension) holds #DIV/0!
    ]
    batch = batch_make(columns, rows).with_columns(
        pl.Series(readers.cell_error_column("Total"), ["#REF!", None, None], dtype=pl.String),
        pl.Series(readers.cell_error_column("Cost"), [None, "#N/A", None], dtype=pl.String),
        pl.Series(readers.cell_error_column("Colour"), [None, None, "#DIV/0!"], dtype=pl.String),
    )
    result = batch_transform(batch, plan_make(columns))
    assert result.rejected.rows() == [(2, "Total", "#REF!", "cell holds #REF!"), (3, "Cost", "#N/A", "cell holds #N/A")]
    assert result.valid["revenue"].to_list() == [10.0]


def test_dimensions_are_stripped_strings(tmp_path) -> None:
    # Trimming is the readers' part of the batch contract; this checks the two together.
    path = tmp_path / "padded.csv"
    path.write_text(
        'Date,Branch,Product line,Quantity,Total,City,Colour\n03/01/19,  A , Food,1,1," Yangon\u00a0",  \n',
        encoding="utf-8",
    )
    detected = source_detect(path)
    (batch,) = source_read_batches(path, detected)
    result = batch_transform(batch, plan_make(detected.columns))
    assert result.valid.select("branch", "product_line", "city", "colour").row(0) == ("A", "Food", "Yangon", None)


@pytest.mark.parametrize("repeats", [1, 10])
def test_parse_distinct_matches_parsing_every_value(repeats: int) -> None:
    from ingestion.dates import time_parse
    from ingestion.transform import parse_distinct

    values = pl.Series("Time", ["13:08", "1:08 PM", None, "noon", " 09:00 ", "13:08"] * repeats)
    calls: list[int] = []

    def counted(series: pl.Series) -> pl.Series:
        calls.append(len(series))
        return time_parse(series)

    assert parse_distinct(values, counted).to_list() == time_parse(values).to_list()
    assert calls == ([len(values)] if repeats == 1 else [5])  # only the 5 distinct values when they repeat


def test_amounts_and_quantities_past_any_sale_are_rejected() -> None:
    # 1e308 is a finite float, but summing two overflowed the totals to infinity (invalid JSON).
    rows = [
        ["03/01/19", "A", "Food", "1", "1e308", "1e308", None],
        ["03/01/19", "A", "Food", "2000000000", "1", "2000000000", None],
        ["03/01/19", "A", "Food", "1", "999999999999999", "999999999999999", None],
    ]
    result = transform(BASIC, rows)
    assert result.rejected.select("row_number", "column", "reason").rows() == [
        (2, "Unit price", "unit price is beyond ±1,000,000,000,000,000"),
        (2, "Total", "revenue is beyond ±1,000,000,000,000,000"),
        (3, "Quantity", "quantity is beyond ±1,000,000,000"),
    ]
    assert result.valid["revenue"].to_list() == [999999999999999.0]


@pytest.mark.parametrize("quantity", ["1", "-1", "3"])
def test_a_revenue_past_any_sale_is_blamed_on_the_revenue_not_on_what_it_computes(quantity: str) -> None:
    """The unit price computed from it is beyond the limit too; the row's reason is the revenue's own."""
    columns = ["Date", "Branch", "Product line", "Quantity", "Total"]
    result = transform(columns, [["03/01/19", "A", "Food", quantity, "2000000000000000.00"]])
    assert result.rejected.select("row_number", "column", "reason").rows() == [
        (2, "Total", "revenue is beyond ±1,000,000,000,000,000"),
    ]


def test_a_parquet_decimal_revenue_past_any_sale_is_blamed_on_the_revenue(tmp_path) -> None:
    path = tmp_path / "decimal.parquet"
    table = pa.table(
        {
            "Date": ["2019-01-03"],
            "Branch": ["A"],
            "Product line": ["Food"],
            "Quantity": [1],
            "Total": pa.array([decimal.Decimal("2000000000000000.00")], type=pa.decimal128(18, 2)),
        }
    )
    pq.write_table(table, path)
    detected = source_detect(path)
    (batch,) = source_read_batches(path, detected)
    result = batch_transform(batch, plan_make(detected.columns, date_format="%Y-%m-%d"))
    assert result.rejected.select("column", "reason").rows() == [("Total", "revenue is beyond ±1,000,000,000,000,000")]


def test_a_computed_value_is_still_blamed_when_its_input_is_within_the_rules() -> None:
    columns = ["Date", "Branch", "Product line", "Quantity", "Total"]
    result = transform(columns, [["03/01/19", "A", "Food", "-2", "20"]])
    reasons = result.rejected.select("column", "reason").rows()
    assert reasons == [("Total", "unit price (computed) must not be negative")]


def test_placeholder_invoice_ids_are_no_invoice_but_other_text_is_kept():
    # Every "N/A" line was one invoice (transactions undercounted), and "already published" in
    # every later file with one; a branch literally called "NA" stays a branch.
    columns = ["Invoice ID", "Date", "Branch", "Product line", "Quantity", "Total"]
    rows = [
        ["INV-1", "01/01/24", "NA", "Food", "1", "10"],
        ["N/A", "01/01/24", "A", "Food", "1", "10"],
        [" - ", "01/01/24", "A", "Food", "1", "10"],
        ["none", "01/01/24", "A", "Food", "1", "10"],
    ]
    result = transform(columns, rows)
    assert result.rejected.height == 0
    assert result.valid["invoice_id"].to_list() == ["INV-1", None, None, None]
    assert result.valid["branch"].to_list() == ["NA", "A", "A", "A"]


# Number cells as files write them: mostly plain numbers, then numbers a typed read parses but whose
# text matters (signs, padding, trailing zeros, non-finite, out of bounds, empty), then text only
# the rules read or refuse.
_PLAIN_NUMBERS = st.one_of(
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(repr),
    st.decimals(min_value=0, max_value=10_000, places=2).map(str),
    st.integers(min_value=0, max_value=1000).map(str),
)
_PARSED_NUMBERS = st.sampled_from(
    [
        "",
        "-5.50",
        "-3",
        "0",
        "-0",
        "+5",
        "00012",
        "1e5",
        "inf",
        "NaN",
        "-inf",
        "1e400",
        "1e16",
        "2e9",
        " 12.5",
        "6.0",
        "12.50",
        "150000",
        "9223372036854775807",
        "4.9e-330",
    ]
)
_TEXT_NUMBERS = st.sampled_from(
    ["N/A", "-", "$12", "(3.10)", "1,234.5", "12.5 ", "abc", "1_000", '"7"', "5.50-", "\u22123"]
)
_NUMBER_CELLS = st.one_of(_PLAIN_NUMBERS, _PLAIN_NUMBERS, _PARSED_NUMBERS, _PARSED_NUMBERS, _TEXT_NUMBERS)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(_NUMBER_CELLS, _NUMBER_CELLS, _NUMBER_CELLS), min_size=1, max_size=30),
    # The unit price given, or computed from the total (then a tax above the total rejects the row).
    measures=st.sampled_from(["Quantity,Unit price,Tax 5%", "Quantity,Total,Tax 5%"]),
)
@example(rows=[("2", "5", "10")], measures="Quantity,Total,Tax 5%")  # unit price (5 - 10) / 2 < 0
@example(rows=[("", "0", "1")], measures="Quantity,Unit price,Tax 5%")  # no quantity: no revenue
def test_reading_number_columns_typed_gives_what_reading_them_as_text_does(rows, measures) -> None:
    # The typed read (TypedColumns) is only a faster way to the same rows and the same report: for
    # any cells, blocks of a few rows, some read typed and some as text, give what text alone gives.
    def quoted(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if "," in cell and not cell.startswith('"') else cell

    lines = [f"Date,Branch,Product line,{measures}"]
    lines += [f"03/01/19,A,Food,{quoted(q)},{quoted(p)},{quoted(t)}" for q, p, t in rows]
    # Blocks of one or two rows: most blocks then hold only numbers a typed read parses.
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(readers, "BLOCK_BYTES_PER_ROW", 0),
        mock.patch.object(readers, "BLOCK_BYTES_MIN", 40),
    ):
        path = Path(folder) / "numbers.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        detected = source_detect(path)
        plan = plan_make(detected.columns)
        results = {
            name: [
                batch_transform(batch, plan) for batch in source_read_batches(path, detected, batch_rows=1, typed=typed)
            ]
            for name, typed in (("text", None), ("typed", plan.typed_columns()))
        }
    valid, rejected = (
        {name: pl.concat([getattr(result, part) for result in found]) for name, found in results.items()}
        for part in ("valid", "rejected")
    )
    assert_frame_equal(valid["typed"], valid["text"])
    assert_frame_equal(rejected["typed"], rejected["text"])


def test_blocks_of_plain_numbers_are_read_typed_and_the_others_as_text(tmp_path) -> None:
    # The faster read is really used (not only equivalent): the first block is all plain numbers,
    # the second has an "N/A", so its batch holds text, parsed by the rules.
    path = tmp_path / "mixed.csv"
    rows = ["03/01/19,A,Food,2,10.5"] * 5 + ["03/01/19,A,Food,N/A,10.5"] + ["03/01/19,A,Food,3,1.25"] * 4
    path.write_text("Date,Branch,Product line,Quantity,Unit price\n" + "\n".join(rows) + "\n", encoding="utf-8")
    detected = source_detect(path)
    plan = plan_make(detected.columns)
    with (
        mock.patch.object(readers, "BLOCK_BYTES_PER_ROW", 0),
        mock.patch.object(readers, "BLOCK_BYTES_MIN", 5 * len(rows[0]) + 5),
    ):
        batches = list(source_read_batches(path, detected, batch_rows=100, typed=plan.typed_columns()))
    kinds = [(batch["__row_number"].to_list(), batch["Quantity"].dtype, batch["Unit price"].dtype) for batch in batches]
    assert kinds[0] == ([2, 3, 4, 5, 6], pl.Int64, pl.Float64)
    with_text = [(rows, quantity) for rows, quantity, _ in kinds if 7 in rows]
    assert with_text == [(with_text[0][0], pl.String)]
    assert sum(batch.height for batch in batches) == 10
    result = pl.concat([batch_transform(batch, plan).valid for batch in batches])
    assert result["quantity"].to_list() == [2] * 5 + [3] * 4
    assert result["revenue"].sum() == pytest.approx(5 * 21 + 4 * 3.75)


def test_a_totals_row_is_rejected_not_counted_as_a_sale() -> None:
    # A spreadsheet's last row "Grand Total" with a date and a branch passed as a sale: every total
    # doubled. Labels are matched whole, so a product line that merely contains the word stays.
    rows = [
        ["03/01/19", "A", "Food", "1", "10", "10", None],
        ["03/01/19", "A", "Total Gym", "2", "5", "10", None],
        ["03/01/19", "A", "Grand Total", "3", "", "20", None],
        ["03/01/19", "TOTAL:", "Food", "3", "", "20", None],
    ]
    result = transform(BASIC, rows)
    assert result.rejected.select("row_number", "column", "value", "reason").rows() == [
        (4, "Product line", "Grand Total", "product line names a totals row, not a sale"),
        (5, "Branch", "TOTAL:", "branch names a totals row, not a sale"),
    ]
    assert result.valid["product_line"].to_list() == ["Food", "Total Gym"]
