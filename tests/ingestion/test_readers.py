"""Format detection and bounded reading of uploads (DESIGN.md, data flow step 3)."""

import bz2
import codecs
import datetime as dt
import gzip
import io
import lzma
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion import errors, readers
from ingestion.errors import IngestionError
from ingestion.readers import ROW_NUMBER, columns_name, source_column_parts, source_detect, source_read_batches
from tests.conftest import REAL_FILE
from tests.ingestion import sample_files as sf


def read_all(path, detected, **options) -> pl.DataFrame:
    return pl.concat(list(source_read_batches(path, detected, **options)))


def refused(path, **options) -> IngestionError:
    with pytest.raises(IngestionError) as caught:
        source_detect(path, **options)
    return caught.value


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """Temporary transcoded copies land here, so a test can prove they are removed."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- the real file -------------------------------------------------------------------------------


def test_real_file_detected_and_read_in_batches():
    detected = source_detect(REAL_FILE, filename_hint="supermarket_sales.csv")
    assert (detected.format, detected.encoding, detected.delimiter, detected.header_row) == ("csv", "utf-8", ",", 1)
    assert len(detected.columns) == 17
    assert detected.columns[:3] == ["Invoice ID", "Branch", "City"]
    assert detected.decimal_comma is False
    assert detected.sample_rows[0]["Total"] == "457.443"
    batches = list(source_read_batches(REAL_FILE, detected, batch_rows=300))
    assert [batch.height for batch in batches] == [300, 300, 300, 100]
    frame = pl.concat(batches)
    assert frame.height == 1000
    assert frame[ROW_NUMBER].to_list() == list(range(2, 1002))
    assert sum(batch["Total"].cast(pl.Float64).sum() for batch in batches) == pytest.approx(322966.749, abs=0.005)
    assert all(dtype == pl.String for name, dtype in frame.schema.items() if name != ROW_NUMBER)
    assert frame.schema[ROW_NUMBER] == pl.Int64


def _whole_column(path, detected, column: str) -> pl.Series:
    return pl.concat(list(source_column_parts(path, detected, column)))


def test_real_file_whole_column():
    detected = source_detect(REAL_FILE)
    dates = _whole_column(REAL_FILE, detected, "Date")
    assert dates.len() == 1000 and dates.dtype == pl.String
    assert dates[0] == "1-Jan-2019"
    with pytest.raises(IngestionError) as caught:
        _whole_column(REAL_FILE, detected, "Nope")
    assert caught.value.code == errors.INVALID_MAPPING


# --- encodings -----------------------------------------------------------------------------------

ACCENTED = [["Date", "Branch", "Product line", "Total"], ["05/01/2019", "Müller", "Café", "12.5"]]


@pytest.mark.parametrize(
    ("encoding", "bom", "expected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16-le"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16-be"),
        ("utf-16-le", b"", "utf-16-le"),
        ("cp1252", b"", "cp1252"),
    ],
)
def test_text_encodings(tmp_path, private_tempdir, encoding, bom, expected):
    path = sf.csv_write(tmp_path / "sales.csv", ACCENTED, encoding=encoding, bom=bom, newline="\r\n")
    detected = source_detect(path)
    assert detected.encoding == expected
    assert detected.columns == ["Date", "Branch", "Product line", "Total"]  # no BOM glued to "Date"
    assert detected.sample_rows == [{"Date": "05/01/2019", "Branch": "Müller", "Product line": "Café", "Total": "12.5"}]
    frame = read_all(path, detected)
    assert frame.rows() == [("05/01/2019", "Müller", "Café", "12.5", 2)]
    assert list(private_tempdir.iterdir()) == []  # transcoded copies removed


def test_cp1252_euro_sign_and_latin1_fallback(tmp_path):
    euro = sf.text_write(tmp_path / "euro.csv", "Branch,Total\nZürich,12 €\n", encoding="cp1252")
    assert source_detect(euro).encoding == "cp1252"
    assert read_all(euro, source_detect(euro))["Total"].to_list() == ["12 €"]
    # 0x81 is undefined in cp1252: only latin-1 maps every byte.
    odd = tmp_path / "odd.csv"
    odd.write_bytes("Branch,Total\nMüller,1\n".encode("latin-1") + b"x\x81y,2\n")
    detected = source_detect(odd)
    assert detected.encoding == "latin-1"
    assert read_all(odd, detected)["Branch"].to_list() == ["Müller", "x\x81y"]


def test_latin1_semicolon_decimal_comma(tmp_path):
    """The European export a popular BI tool reads as one column of mojibake."""
    path = sf.latin1_semicolon_decimal_comma(tmp_path / "export.csv")
    detected = source_detect(path)
    assert detected.encoding == "cp1252"
    assert detected.delimiter == ";"
    assert detected.decimal_comma is True
    assert detected.columns == ["Datum", "Filiale", "Kategorie", "Menge", "Preis", "Total", "Kunde"]
    frame = read_all(path, detected)
    assert frame["Filiale"].to_list() == ["Zürich", "Genève", "Zürich"]
    assert frame["Kunde"].to_list() == ["Müller", "Dupré", "Ærø"]
    assert frame["Total"].to_list() == ["37,50", "1.234,50", "0,50"]
    assert frame["Preis"].to_list() == ["12,50", "12,345", "0,5"]


def test_utf8_invalid_late_in_file_falls_back_to_cp1252(tmp_path):
    """One legacy byte after the sniffing window must not break the read half-way."""
    head = sf.csv_text([sf.SALES_HEADER, *sf.sales_rows(40_000)])
    path = tmp_path / "late.csv"
    path.write_bytes(head.encode() + "01/01/2019,Café,Food,1,1.0,1.00\n".encode("cp1252"))
    assert len(head) > readers.SNIFF_BYTES
    detected = source_detect(path)
    assert detected.encoding == "cp1252"
    frame = read_all(path, detected)
    assert frame.height == 40_001
    assert frame["Branch"][-1] == "Café"


def test_garbage_text_is_undecodable(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(sf.random_bytes(4000, low=0x80, high=0xFF))
    error = refused(path)
    assert (error.code, error.status) == (errors.UNDECODABLE_TEXT, 422)


def test_bom_that_lies_is_undecodable(tmp_path):
    path = tmp_path / "liar.csv"
    path.write_bytes(codecs.BOM_UTF8 + "Branch,Total\nMüller,1\n".encode("latin-1"))
    assert refused(path).code == errors.UNDECODABLE_TEXT


SALES_CSV_BYTES = sf.csv_text([sf.SALES_HEADER, *sf.sales_rows(50)]).encode()


def _zipped(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, SALES_CSV_BYTES)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "compression"),
    [
        ("sales.csv.gz", gzip.compress(SALES_CSV_BYTES), "gzip"),
        ("sales.csv.bz2", bz2.compress(SALES_CSV_BYTES), "bzip2"),
        ("sales.csv.xz", lzma.compress(SALES_CSV_BYTES), "xz"),
        ("sales.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + sf.random_bytes(400), "7z"),
        ("sales.rar", b"Rar!\x1a\x07\x01\x00" + sf.random_bytes(400), "RAR"),
        ("sales.zip", _zipped("export/sales.csv"), "zip"),
        ("sales.csv", _zipped("sales.tsv"), "zip"),
    ],
)
def test_compressed_tables_are_refused_with_what_to_do(tmp_path, name, content, compression):
    path = tmp_path / name
    path.write_bytes(content)
    error = refused(path, filename_hint=name)
    assert (error.code, error.status) == (errors.UNSUPPORTED_FORMAT, 415)
    assert f"it is {compression}-compressed: decompress it and upload the .csv" in error.detail
    assert "binary file" not in error.detail


def test_a_text_file_starting_like_a_compression_magic_is_still_read(tmp_path):
    path = sf.csv_write(tmp_path / "bz.csv", [["BZh", *sf.SALES_HEADER[1:]], ["x", *sf.sales_rows(1)[0][1:]]])
    assert source_detect(path).columns[0] == "BZh"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("picture.xlsx", sf.png_bytes()),
        ("random.csv", sf.random_bytes(4000)),
        ("report.xls", b"%PDF-1.7\n" + sf.random_bytes(500)),
        ("page.xls", b"<html><body><table><tr><td>Date</td></tr></table></body></html>"),
    ],
)
def test_non_tables_are_unsupported(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    error = refused(path, filename_hint=name)
    assert (error.code, error.status) == (errors.UNSUPPORTED_FORMAT, 415)
    assert name in error.detail


@pytest.mark.parametrize(
    "content",
    [
        '[{"a": 1}]',
        '{"rows": []}',
        ' \n[\n  {"Date": "2019-01-05", "Total": 1}\n]',
        '{"a": 1}\n{"a": 2}\n',
        "[]",
        '[["Date"]]',
    ],
)
def test_json_is_unsupported_and_named(tmp_path, content):
    # It was "has a header row but no data rows", which sent users looking for a missing row.
    path = sf.text_write(tmp_path / "export.json", content)
    error = refused(path)
    assert (error.code, error.status) == (errors.UNSUPPORTED_FORMAT, 415)
    assert "JSON" in error.detail


def test_a_csv_starting_with_brackets_is_no_json(tmp_path):
    path = sf.text_write(tmp_path / "b.csv", "[Date],[Branch],[Total]\n05/01/2019,A,1\n")
    assert source_detect(path).columns == ["[Date]", "[Branch]", "[Total]"]


@pytest.mark.parametrize("content", [b"", b"   \r\n\n\t  \n", codecs.BOM_UTF8 + b"\n\n"])
def test_empty_files(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert refused(path).code == errors.EMPTY_FILE


def test_header_only(tmp_path):
    path = sf.csv_write(tmp_path / "header.csv", [sf.SALES_HEADER, [], []])
    assert refused(path).code == errors.HEADER_ONLY


# --- delimiters, quoting, decimal comma ----------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_sniffed_with_quoted_fields(tmp_path, delimiter):
    tricky = "Food, drinks; snacks\t| more\nsecond line"
    rows = [sf.SALES_HEADER, *sf.sales_rows(30)]
    rows[5][2] = tricky
    path = sf.csv_write(tmp_path / "sales.txt", rows, delimiter=delimiter)
    detected = source_detect(path)
    assert detected.delimiter == delimiter
    assert detected.columns == sf.SALES_HEADER
    frame = read_all(path, detected)
    assert frame.height == 30
    assert frame["Product line"][4] == tricky
    # The quoted newline makes rows after it one line later than their record number.
    assert frame[ROW_NUMBER].to_list() == list(range(2, 32))
    assert frame["Quantity"][5] == "6"


def test_quoted_fields_with_newlines_and_quotes(tmp_path):
    text = 'Branch,Product line,Note,Total\nA,"Food\nand drinks","He said ""hi"", then left",1.5\n\nB,Toys,"a,b",2\n'
    path = sf.text_write(tmp_path / "q.csv", text)
    detected = source_detect(path)
    frame = read_all(path, detected)
    assert frame.rows() == [
        ("A", "Food\nand drinks", 'He said "hi", then left', "1.5", 2),
        ("B", "Toys", "a,b", "2", 4),  # record 3 is the blank line, skipped
    ]


def test_literal_quotes_inside_values(tmp_path):
    path = sf.text_write(tmp_path / "inch.csv", 'Branch;Product line;Total\nA;12" pizza;1,5\nB;6" sub;2,5\n')
    detected = source_detect(path)
    assert detected.quote_char is None
    assert read_all(path, detected)["Product line"].to_list() == ['12" pizza', '6" sub']


@pytest.mark.parametrize(
    ("delimiter", "values", "expected", "guessed"),
    [
        (";", ["1.234,56", "12,5", "7,00"], True, False),
        ("\t", ["12,5", "3,25", "0,5"], True, False),
        (";", ["12.5", "1,234.56", "3.25"], False, False),
        (",", ["12.5", "3.25", "1.0"], False, False),
        # Thousands or decimals? No number settles it: a ";" file takes the European convention.
        (";", ["1,234", "2,345", "3"], True, True),
        (";", ["52.192", "1.005", "588"], True, True),
        ("\t", ["52.192", "1.005", "588"], False, True),
        # A leading zero group is no thousands group; two groups are no decimals.
        (";", ["0.125", "52.192"], False, False),
        (";", ["0,125", "52.192"], True, False),
        ("\t", ["1.234.567", "52.192"], True, False),
        ("|", ["1,234,567", "52,192"], False, False),
        (";", ["12", "588", "7"], True, False),  # nothing reads differently: nothing to note
    ],
)
def test_decimal_comma_detection(tmp_path, delimiter, values, expected, guessed):
    rows = [["Date", "Branch", "Total"], *[["05/01/2019", "A", value] for value in values]]
    path = sf.csv_write(tmp_path / "d.csv", rows, delimiter=delimiter)
    detected = source_detect(path)
    assert detected.delimiter == delimiter
    assert detected.decimal_comma is expected
    assert bool(detected.decimal_note) is guessed
    if guessed:
        assert ("decimal comma" if expected else "decimal point") in detected.decimal_note
        assert ('decimal="."' if expected else 'decimal=","') in detected.decimal_note


def test_consistent_column_count_beats_decimal_commas(tmp_path):
    """`;` gives 3 columns on every line; `,` splits only the numbers, so it loses."""
    rows = [["Date", "Branch", "Total"], *[["05/01/2019", "A", f"{i},50"] for i in range(20)]]
    path = sf.csv_write(tmp_path / "d.csv", rows, delimiter=";")
    assert source_detect(path).delimiter == ";"


# --- header row ----------------------------------------------------------------------------------


def test_title_rows_above_header_are_skipped(tmp_path):
    rows = [["Sales export"], ["Generated 2019-02-01", "by POS"], [], sf.SALES_HEADER, *sf.sales_rows(5)]
    path = sf.csv_write(tmp_path / "t.csv", rows)
    detected = source_detect(path)
    assert detected.header_row == 4
    assert detected.columns == sf.SALES_HEADER
    frame = read_all(path, detected)
    assert frame[ROW_NUMBER].to_list() == [5, 6, 7, 8, 9]
    assert frame["Quantity"].to_list() == ["1", "2", "3", "4", "5"]


def test_header_row_override(tmp_path):
    rows = [["Report"], ["Date", "Branch", "Total"], ["When", "Where", "How much"], ["05/01/2019", "A", "1"]]
    path = sf.csv_write(tmp_path / "t.csv", rows)
    assert source_detect(path).header_row == 2
    detected = source_detect(path, header_row=3)
    assert detected.header_row == 3
    assert detected.columns == ["When", "Where", "How much"]
    assert read_all(path, detected).rows() == [("05/01/2019", "A", "1", 4)]
    assert refused(path, header_row=99).code == errors.HEADER_ROW_NOT_FOUND


def test_unknown_columns_still_find_the_header(tmp_path):
    rows = [["My title"], ["alpha", "beta", "gamma"], ["1", "2", "3"], ["4", "5", "6"]]
    detected = source_detect(sf.csv_write(tmp_path / "t.csv", rows))
    assert (detected.header_row, detected.columns) == (2, ["alpha", "beta", "gamma"])


def test_column_names_cleaned(tmp_path):
    path = sf.text_write(tmp_path / "c.csv", " Total ,Total,,Branch,Total_2\n1,2,3,A,4\n")
    assert source_detect(path).columns == ["Total", "Total_2", "column_3", "Branch", "Total_2_2"]


def test_columns_with_the_same_header_are_told_apart(tmp_path):
    path = sf.text_write(tmp_path / "c.csv", "Date,Total,Branch,total ,Total,Note\n1,2,A,3,4,x\n")
    detected = source_detect(path)
    assert detected.columns == ["Date", "Total", "Branch", "total", "Total_2", "Note"]
    assert detected.repeated_columns == (("Total", "total", "Total_2"),)
    assert source_detect(sf.text_write(tmp_path / "d.csv", "Date,Total,Branch\n1,2,A\n")).repeated_columns == ()


def test_cells_trimmed_and_empty_is_null(tmp_path):
    path = sf.text_write(tmp_path / "c.csv", 'Branch,Product line,Total\n  A  ,"",\n B,"  ",1\n')
    frame = read_all(path, source_detect(path))
    assert frame.rows() == [("A", None, None, 2), ("B", None, "1", 3)]


def test_ragged_and_crlf_and_old_mac_newlines(tmp_path):
    rows = "Branch,Product line,Total\rA,Food,1\rB,Toys\rC,Tools,3,extra\r"
    path = sf.text_write(tmp_path / "mac.csv", rows)
    detected = source_detect(path)
    assert detected.columns == ["Branch", "Product line", "Total"]
    assert read_all(path, detected).rows() == [
        ("A", "Food", "1", 2),
        ("B", "Toys", None, 3),
        ("C", "Tools", "3", 4),
    ]


def test_content_wins_over_file_name(tmp_path):
    path = sf.csv_write(tmp_path / "really_a.xlsx", [sf.SALES_HEADER, *sf.sales_rows(2)])
    assert source_detect(path, filename_hint="really_a.xlsx").format == "csv"
    workbook = sf.xlsx_write(tmp_path / "really_a.csv", {"Data": [sf.SALES_HEADER, *sf.sales_rows(2)]})
    assert source_detect(workbook, filename_hint="really_a.csv").format == "xlsx"


# --- batches -------------------------------------------------------------------------------------


def test_row_numbers_across_batches_and_blocks(tmp_path, monkeypatch):
    """Tiny blocks put quoted newlines and blank lines on block edges; numbering must not drift."""
    rows = [["Title"], sf.SALES_HEADER]
    for i, row in enumerate(sf.sales_rows(500), start=1):
        if i % 7 == 0:
            row[2] = f"multi\nline, {i}"
        rows.append(row)
        if i % 50 == 0:
            rows.append([])
    path = sf.csv_write(tmp_path / "b.csv", rows)
    monkeypatch.setattr(readers, "BLOCK_BYTES_MIN", 97)
    monkeypatch.setattr(readers, "BLOCK_BYTES_MAX", 97)
    detected = source_detect(path)
    assert detected.header_row == 2
    batches = list(source_read_batches(path, detected, batch_rows=13))
    assert [batch.height for batch in batches] == [13] * 38 + [6]
    frame = pl.concat(batches)
    assert frame["Quantity"].to_list() == [str(i) for i in range(1, 501)]
    # Record numbers: 2 before the data, plus one blank record after every 50 rows.
    expected = [2 + i + (i - 1) // 50 for i in range(1, 501)]
    assert frame[ROW_NUMBER].to_list() == expected
    assert frame["Product line"][6] == "multi\nline, 7"


def test_batches_stay_bounded(tmp_path):
    """A file many blocks long is never held whole: Python-side allocations stay near one block."""
    path = sf.csv_write(tmp_path / "big.csv", [sf.SALES_HEADER, *sf.sales_rows(200_000)])
    size = path.stat().st_size
    detected = source_detect(path)
    tracemalloc.start()
    rows = 0
    for batch in source_read_batches(path, detected, batch_rows=20_000):
        rows += batch.height
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 200_000
    assert peak < size / 2  # the bytes read per block (Polars' own memory is measured in the report)


RSS_SCRIPT = """
import sys
from pathlib import Path
from ingestion.readers import source_detect, source_read_batches
path = Path(sys.argv[1])
rows = sum(batch.height for batch in source_read_batches(path, source_detect(path)))
# VmHWM, not ru_maxrss: a child inherits its parent's ru_maxrss across fork and exec.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(rows, peak_kb // 1024)
"""


@pytest.mark.slow
def test_peak_memory_of_a_200_mb_csv(tmp_path):
    """The whole process (Polars included) stays far below the file size times the usual 3-5×."""
    block = sf.csv_text(sf.sales_rows(10_000)).encode()
    path = tmp_path / "big.csv"
    with path.open("wb") as handle:
        handle.write(sf.csv_text([sf.SALES_HEADER]).encode())
        while handle.tell() < 200 << 20:
            handle.write(block)
    rows_expected = (path.stat().st_size - len(sf.csv_text([sf.SALES_HEADER]))) // len(block) * 10_000
    result = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(path)],
        cwd=Path(readers.__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows, peak_mb = map(int, result.stdout.split())
    assert rows == rows_expected
    assert peak_mb < 450, f"peak RSS {peak_mb} MB for a {path.stat().st_size >> 20} MB file"


# 150,000 rows of 238 columns took 0.7 GB per batch and the worker 1.8 GB; memory follows bytes.
BATCH_BYTES_DEFAULT = 96 << 20
BATCH_ROWS_DEFAULT = 150_000


def test_the_benchmark_file_keeps_full_batches(tmp_path):
    """bench/generate.py's file (18 columns, ~139 bytes a row) keeps batches of 150,000 rows."""
    from bench.generate import sales_csv_write

    path = tmp_path / "bench.csv"
    sales_csv_write(path, rows=5_000, seed=1)
    estimate = readers.source_estimate(path, source_detect(path))
    assert estimate.row_bytes < 500  # its text and a 16-byte view for each of its cells
    assert estimate.batch_rows(most=BATCH_ROWS_DEFAULT, budget_bytes=BATCH_BYTES_DEFAULT) == BATCH_ROWS_DEFAULT


def test_wide_rows_make_shorter_batches(tmp_path):
    wide = sf.csv_write(tmp_path / "wide.csv", sf.wide_sales_rows(500, extras=220))
    narrow = sf.csv_write(tmp_path / "narrow.csv", [sf.SALES_HEADER, *sf.sales_rows(500)])
    wide_estimate = readers.source_estimate(wide, source_detect(wide))
    narrow_estimate = readers.source_estimate(narrow, source_detect(narrow))
    assert wide_estimate.rows == narrow_estimate.rows == 500
    wide_rows = wide_estimate.batch_rows(most=BATCH_ROWS_DEFAULT, budget_bytes=BATCH_BYTES_DEFAULT)
    assert wide_rows * wide_estimate.row_bytes <= BATCH_BYTES_DEFAULT
    assert wide_rows < 30_000  # 227 cells of 16-byte views and ~1 kB of text a row
    assert narrow_estimate.batch_rows(most=BATCH_ROWS_DEFAULT, budget_bytes=BATCH_BYTES_DEFAULT) == BATCH_ROWS_DEFAULT


def test_wide_parquet_and_excel_make_shorter_batches(tmp_path):
    header, *rows = sf.wide_sales_rows(300, extras=220)
    parquet = tmp_path / "wide.parquet"
    pl.DataFrame(rows, schema=header, orient="row").write_parquet(parquet)
    workbook = sf.xlsx_write(tmp_path / "wide.xlsx", {"Sales": [header, *rows[:20]]})
    for path in (parquet, workbook):
        estimate = readers.source_estimate(path, source_detect(path))
        assert estimate.batch_rows(most=BATCH_ROWS_DEFAULT, budget_bytes=BATCH_BYTES_DEFAULT) < 30_000, path.name
    assert readers.source_estimate(parquet, source_detect(parquet)).rows == 300


def test_column_parts_of_a_wide_parquet_file_read_batches_within_budget(tmp_path, monkeypatch):
    header, *rows = sf.wide_sales_rows(300, extras=50)
    path = tmp_path / "wide.parquet"
    pl.DataFrame(rows, schema=header, orient="row").write_parquet(path)
    monkeypatch.setattr(readers, "COLUMN_PART_BYTES", 100_000)
    detected = source_detect(path)
    parts = list(source_column_parts(path, detected, "Date"))
    row_bytes = readers.source_estimate(path, detected).row_bytes
    assert row_bytes > 57 * readers.CELL_VIEW_BYTES
    assert len(parts) > 1 and max(len(part) for part in parts) == 100_000 // row_bytes
    assert pl.concat(parts).to_list() == [row[0] for row in rows]


def _rows_parsed(monkeypatch) -> list[int]:
    """The rows of each CSV block Polars parses, from now on."""
    parsed: list[int] = []
    parse = readers._csv_block_read

    def counting(*args, **kwargs):
        frame = parse(*args, **kwargs)
        parsed.append(frame.height)
        return frame

    monkeypatch.setattr(readers, "_csv_block_read", counting)
    return parsed


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_runs_of_empty_lines_are_skipped_not_parsed(tmp_path, monkeypatch, newline):
    """1,000 rows then megabytes of line breaks cost a few rows' parsing, not a row of nulls each."""
    empty_lines = 3_000_000 // len(newline)
    with (tmp_path / "blank.csv").open("w", newline="") as handle:
        handle.write(sf.csv_text([sf.SALES_HEADER, *sf.sales_rows(1_000)], newline=newline))
        handle.write(newline * empty_lines)
        handle.write(sf.csv_text(sf.sales_rows(2, start=1_001), newline=newline))
        handle.write(newline * empty_lines)
    path = tmp_path / "blank.csv"
    detected = source_detect(path)
    parsed = _rows_parsed(monkeypatch)
    frame = read_all(path, detected, batch_rows=150_000)
    assert frame.height == 1_002
    # Row numbers still count every line: the two rows after the run are where a spreadsheet shows them.
    assert frame[ROW_NUMBER].to_list()[-3:] == [1_001, 1_002 + empty_lines, 1_003 + empty_lines]
    assert sum(parsed) < 5_000
    parsed.clear()
    dates = pl.concat(list(source_column_parts(path, detected, "Date")))
    assert dates.to_list() == frame["Date"].to_list()
    assert sum(parsed) < 5_000
    assert readers.source_estimate(path, detected).rows < 100_000  # progress counts the rows, not the lines


def test_empty_lines_inside_a_quoted_value_are_kept(tmp_path, monkeypatch):
    note = "first" + "\n" * 1_500 + "last"
    rows = [[*sf.SALES_HEADER, "Note"], *[[*row, "plain"] for row in sf.sales_rows(3)]]
    rows[2][-1] = note
    path = sf.csv_write(tmp_path / "quoted.csv", rows)
    monkeypatch.setattr(readers, "BLOCK_BYTES_MIN", 1 << 20)
    frame = read_all(path, source_detect(path))
    assert frame["Note"].to_list() == ["plain", note, "plain"]
    assert frame[ROW_NUMBER].to_list() == [2, 3, 4]


def test_batches_can_stop_early(tmp_path, private_tempdir):
    path = sf.csv_write(tmp_path / "u16.csv", [sf.SALES_HEADER, *sf.sales_rows(100)], encoding="utf-16")
    detected = source_detect(path)
    batches = source_read_batches(path, detected, batch_rows=10)
    assert next(batches).height == 10
    assert list(private_tempdir.iterdir())  # the transcoded copy exists while reading
    batches.close()
    assert list(private_tempdir.iterdir()) == []


# --- Excel ---------------------------------------------------------------------------------------


@pytest.fixture(params=["xlsx", "xls"])
def workbook(request, tmp_path):
    sheets = {"Notes": [["These are notes"], ["Nothing to see"]], "Data": sf.excel_sales_sheet()}
    writer = sf.xlsx_write if request.param == "xlsx" else sf.xls_write
    return request.param, writer(tmp_path / f"sales.{request.param}", sheets)


def test_excel_picks_the_data_sheet_and_header(workbook):
    kind, path = workbook
    detected = source_detect(path)
    assert (detected.format, detected.sheet, detected.header_row) == (kind, "Data", 3)
    assert detected.columns == ["Date", "Branch", "Product line", "Quantity", "Unit price", "Total", "Time"]
    assert detected.encoding is None and detected.delimiter is None
    frame = read_all(path, detected, batch_rows=2)
    assert frame[ROW_NUMBER].to_list() == [4, 5, 6]
    # One time of day in the column: every date keeps its time, so that one format reads them all.
    assert frame["Date"].to_list() == ["2019-01-05 00:00:00", "2019-01-06 14:30:05", "2019-01-07 00:00:00"]
    assert frame["Unit price"].to_list() == ["1.1", "0.1", "1234567.891"]
    assert frame["Total"][0] == "3.3"  # stored as 3.3000000000000003; Excel shows 15 digits, so do we
    assert frame["Quantity"].to_list() == ["3", "2", "10"]
    assert frame["Time"].to_list() == ["10:39:00", "00:00:01", None]
    assert frame["Product line"][1] == "Café"


def _workbook_write(kind: str, path: Path, rows: list[list], **options) -> Path:
    writer = sf.xlsx_write if kind == "xlsx" else sf.xls_write
    return writer(path.with_suffix(f".{kind}"), {"Sales": rows}, **options)


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_excel_date_cells_have_one_text_form_per_column(kind, tmp_path):
    rows = [
        ["Date", "Sold at", "Time", "Branch"],
        [dt.datetime(2024, 5, 1), dt.datetime(2024, 5, 1), dt.time(0, 0), "A"],
        [dt.datetime(2024, 5, 2), dt.datetime(2024, 5, 2, 7, 13), dt.time(9, 15), "A"],
        [dt.datetime(2024, 5, 3), dt.datetime(2024, 5, 3), dt.time(0, 0, 1), "A"],
    ]
    path = _workbook_write(kind, tmp_path / "dates", rows)
    frame = read_all(path, source_detect(path))
    assert frame["Date"].to_list() == ["2024-05-01", "2024-05-02", "2024-05-03"]  # all at midnight: dates
    assert frame["Sold at"].to_list() == ["2024-05-01 00:00:00", "2024-05-02 07:13:00", "2024-05-03 00:00:00"]
    assert frame["Time"].to_list() == ["00:00:00", "09:15:00", "00:00:01"]  # times of day, midnight too


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
@pytest.mark.parametrize("count", [2, 300])  # an .xls of 300 rows keeps its globals outside the OLE2 mini stream
def test_a_workbook_in_the_1904_date_system_is_told_apart(kind, count, tmp_path):
    rows = [["Date", "Time", "Branch"], *[[dt.datetime(2024, 6, 1), dt.time(9, 15), "A"]] * (count - 1)]
    rows.append([dt.datetime(2024, 6, 2), dt.time(0, 0), "A"])
    mac = _workbook_write(kind, tmp_path / "mac", rows, date1904=True)
    detected = source_detect(mac)
    assert detected.date1904
    frame = read_all(mac, detected)
    assert (frame["Date"][0], frame["Date"][-1]) == ("2024-06-01", "2024-06-02")
    assert (frame["Time"][0], frame["Time"][-1]) == ("09:15:00", "00:00:00")
    assert not source_detect(_workbook_write(kind, tmp_path / "pc", rows)).date1904


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_excel_error_cells_are_named_beside_their_column(kind, tmp_path):
    day = dt.datetime(2024, 6, 1)
    rows = [
        sf.SALES_HEADER,
        [day, "A", "Food", 1, 1.5, sf.ExcelError("#REF!")],
        [day, "A", "Food", 2, 1.5, 3.0],
        [sf.ExcelError("#N/A")] * 6,
    ]
    path = _workbook_write(kind, tmp_path / "errors", rows)
    frame = read_all(path, source_detect(path))
    assert frame[ROW_NUMBER].to_list() == [2, 3, 4]  # a row of error cells is not blank
    assert frame["Total"].to_list() == [None, "3", None]
    assert frame[readers.cell_error_column("Total")].to_list() == ["#REF!", None, "#N/A"]
    assert frame[readers.cell_error_column("Branch")].to_list() == [None, None, "#N/A"]
    assert "#N/A" not in frame["Branch"].to_list()  # the text of a cell stays what it is: none


def test_excel_sheet_override_and_unknown_sheet(workbook):
    _, path = workbook
    detected = source_detect(path, sheet="notes")
    assert detected.sheet == "Notes"
    error = refused(path, sheet="January")
    assert error.code == errors.SHEET_NOT_FOUND
    assert "Notes" in error.detail and "Data" in error.detail


def test_excel_names_the_other_sheets_that_fit_when_it_reads_one(tmp_path):
    months = {name: sf.excel_sales_sheet() for name in ("Jan", "Feb", "Mar")}
    path = sf.xlsx_write(
        tmp_path / "q.xlsx", {"Notes": [["Read me"]], **months, "Summary": [["Branch", "Total"], ["A", 1]]}
    )
    detected = source_detect(path)
    assert detected.sheet == "Jan"
    assert detected.notes == (
        "Only sheet 'Jan' was loaded. Sheets 'Feb', 'Mar' have the columns a sales upload needs too: to "
        "load each, upload the file again with the option sheet (e.g. sheet=Feb).",
    )
    assert source_detect(path, sheet="Feb").notes == ()  # the uploader chose
    single = sf.xlsx_write(tmp_path / "one.xlsx", {"Notes": [["Read me"]], "Data": sf.excel_sales_sheet()})
    assert source_detect(single).notes == ()


def test_a_visible_sheet_that_fits_is_read_before_a_hidden_one(tmp_path):
    june = [sf.SALES_HEADER, *sf.sales_rows(3)]
    # The hidden archive's header fits the schema better (three more canonical columns).
    archive = [
        [*sf.SALES_HEADER, "Invoice ID", "City", "Payment"],
        *[[*row, "1", "X", "Cash"] for row in sf.sales_rows(3)],
    ]
    path = sf.xlsx_write(tmp_path / "h.xlsx", {"Sales June": june, "Archive 2023": archive}, hidden={"Archive 2023"})
    detected = source_detect(path)
    assert detected.sheet == "Sales June"
    assert detected.notes == (
        "Only sheet 'Sales June' was loaded. Sheet 'Archive 2023' (hidden) has the columns a sales upload needs "
        "too: to load it, upload the file again with the option sheet (e.g. sheet=Archive 2023).",
    )
    assert source_detect(path, sheet="Archive 2023").sheet == "Archive 2023"


def test_every_other_sheet_that_fits_is_named_not_only_those_that_fit_as_well(tmp_path):
    january = [sf.SALES_HEADER, *sf.sales_rows(3)]
    february = [[*sf.SALES_HEADER, "Payment"], *[[*row, "Card"] for row in sf.sales_rows(3)]]
    summary = [["Branch", "Total"], ["A", 1]]  # lacks required columns: not named
    path = sf.xlsx_write(tmp_path / "m.xlsx", {"January": january, "February": february, "Summary": summary})
    detected = source_detect(path)
    assert detected.sheet == "February"
    assert detected.notes == (
        "Only sheet 'February' was loaded. Sheet 'January' has the columns a sales upload needs too: to load it, "
        "upload the file again with the option sheet (e.g. sheet=January).",
    )


def test_a_sheet_given_for_a_file_without_sheets_is_noted(tmp_path):
    path = sf.csv_write(tmp_path / "s.csv", [sf.SALES_HEADER, *sf.sales_rows(3)])
    assert source_detect(path, sheet="Jan").notes == (
        "The sheet option ('Jan') was ignored: 's.csv' is a CSV file, which has no sheets.",
    )
    assert source_detect(path).notes == ()


def test_a_formula_without_a_computed_value_is_found(tmp_path):
    rows = [
        ["Title"],
        sf.SALES_HEADER,
        ["2019-01-05", "A", "Food", 3, 1.5, "=D3*E3"],
        ["2019-01-05", "A", "Food", 2, 1.5, "=D4*E4"],
    ]
    path = sf.xlsx_write(tmp_path / "f.xlsx", {"Notes": [["x"]], "Data": rows})
    assert readers.excel_formula_without_value(path, sheet="Data", after_row=2) == ("F3", "D3*E3")
    assert readers.excel_formula_without_value(path, sheet="Data", after_row=3) == ("F4", "D4*E4")
    assert readers.excel_formula_without_value(path, sheet="Data", after_row=4) is None
    assert readers.excel_formula_without_value(path, sheet="Notes", after_row=0) is None
    assert readers.excel_formula_without_value(path, sheet="Gone", after_row=0) is None
    values = sf.xlsx_write(tmp_path / "v.xlsx", {"Data": [sf.SALES_HEADER, ["2019-01-05", "A", "Food", 3, 1.5, 4.5]]})
    assert readers.excel_formula_without_value(values, sheet="Data", after_row=1) is None


def test_excel_header_row_override(workbook):
    _, path = workbook
    detected = source_detect(path, sheet="Data", header_row=4)
    assert detected.header_row == 4
    assert read_all(path, detected)[ROW_NUMBER].to_list() == [5, 6]


def test_excel_whole_column(workbook):
    _, path = workbook
    detected = source_detect(path)
    assert _whole_column(path, detected, "Branch").to_list() == ["A", "B", "C"]


def test_excel_header_only_and_empty(tmp_path):
    header_only = sf.xlsx_write(tmp_path / "h.xlsx", {"Data": [sf.SALES_HEADER]})
    assert refused(header_only).code == errors.HEADER_ONLY
    empty = sf.xlsx_write(tmp_path / "e.xlsx", {"Sheet1": []})
    assert refused(empty).code == errors.EMPTY_FILE


# --- zip safety ----------------------------------------------------------------------------------


def test_zip_bomb_refused_before_inflating(tmp_path):
    path = sf.zip_bomb_write(tmp_path / "bomb.xlsx", member_bytes=1 << 30)
    assert path.stat().st_size < 10 << 20
    tracemalloc.start()
    started = time.perf_counter()
    error = refused(path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (error.code, error.status) == (errors.UNSAFE_ARCHIVE, 415)
    assert elapsed < 1.0 and peak < 5 << 20


def test_zip_declaring_huge_sizes_refused(tmp_path):
    path = sf.zip_central_directory_patch(sf.zip_small_write(tmp_path / "big.xlsx"), uncompressed=0xF0000000)
    assert refused(path).code == errors.UNSAFE_ARCHIVE


def test_zip_with_too_many_entries_refused(tmp_path):
    path = sf.zip_small_write(tmp_path / "many.xlsx", entries=readers.ZIP_MAX_ENTRIES + 1)
    assert refused(path).code == errors.UNSAFE_ARCHIVE


def test_encrypted_or_broken_zip_refused(tmp_path):
    encrypted = sf.zip_central_directory_patch(sf.zip_small_write(tmp_path / "enc.xlsx"), flag_bits=0x1)
    assert refused(encrypted).code == errors.UNSAFE_ARCHIVE
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(sf.zip_small_write(tmp_path / "ok.zip").read_bytes()[:-30])
    assert refused(broken).code == errors.UNSAFE_ARCHIVE


def test_zip_that_is_not_a_workbook_unsupported(tmp_path):
    path = sf.zip_small_write(tmp_path / "photos.xlsx", workbook=False)
    assert (refused(path).code, refused(path).status) == (errors.UNSUPPORTED_FORMAT, 415)


# --- Parquet -------------------------------------------------------------------------------------


def test_parquet_columns_as_strings(tmp_path):
    path = sf.parquet_write(tmp_path / "sales.bin")
    detected = source_detect(path, filename_hint="sales.bin")
    assert (detected.format, detected.header_row, detected.encoding) == ("parquet", None, None)
    assert detected.columns == ["Date", "Sold at", "Branch", "Quantity", "Total", "Member"]
    assert detected.sample_rows[0]["Date"] == "2019-01-05"
    frame = read_all(path, detected, batch_rows=2)
    assert frame.rows() == [
        ("2019-01-05", "2019-01-05 10:39:00", "A", "3", "1.1", "true", 1),
        ("2019-01-06", "2019-01-06 00:00:00.250", "B", "2", "2.5", "false", 2),
        (None, None, None, "1", "12.0", None, 3),
    ]


def test_parquet_without_rows_is_header_only(tmp_path):
    path = tmp_path / "none.parquet"
    pl.DataFrame({"Date": [dt.date(2019, 1, 1)], "Total": [1.0]}).clear().write_parquet(path)
    assert refused(path).code == errors.HEADER_ONLY


def test_damaged_parquet_unsupported(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1" + sf.random_bytes(200))
    assert (refused(path).code, refused(path).status) == (errors.UNSUPPORTED_FORMAT, 415)


def test_values_kept_exactly_as_written(tmp_path):
    """No type inference: day-first dates, leading zeros and odd numbers reach the mapper untouched."""
    path = sf.text_write(tmp_path / "raw.csv", "Invoice ID,Date,Total,Quantity\n007,03/01/19,1e3,0012\n")
    frame = read_all(path, source_detect(path))
    assert frame.rows() == [("007", "03/01/19", "1e3", "0012", 2)]


@pytest.mark.parametrize(
    "cell",
    [" A", "A ", "\tA", "A\t", "A\x0b", "\x0cA", "\u00a0A", "A\u3000", '"A\n"', '" A "', "A"],
    ids=repr,
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_cells_are_trimmed_whichever_whitespace_is_at_their_edge(tmp_path, cell: str, newline: str) -> None:
    # Only columns with whitespace at some cell's edge are trimmed: the others must come out the same.
    rows = [["Date", "Branch", "Total"], ["01/02/2019", "B", "1"], ["02/02/2019", cell, "2 "]]
    text = newline.join(",".join(row) for row in rows) + newline
    path = tmp_path / "cells.csv"
    path.write_bytes(text.encode())
    batch = next(source_read_batches(path, source_detect(path)))
    assert batch["Branch"].to_list() == ["B", "A"]
    assert batch["Total"].to_list() == ["1", "2"]
    assert batch["Date"].to_list() == ["01/02/2019", "02/02/2019"]


def test_column_names_drop_nul_and_never_take_the_row_number_name() -> None:
    # A NUL cannot be stored by PostgreSQL; a source column named like the readers' row number
    # was overwritten by it (an internal error when mapped).
    assert columns_name(["Bra\x00nch", "__row_number", "__row_number", "\x00"]) == [
        "Branch",
        "__row_number_2",
        "__row_number_3",
        "column_4",
    ]


def test_parquet_with_a_repeated_column_name_is_read_by_position(tmp_path):
    path = tmp_path / "dup.parquet"
    table = pa.table([pa.array(["2019-01-05"]), pa.array(["A"]), pa.array(["x"])], names=["Date", "Branch", "Branch"])
    pq.write_table(table, path)
    detected = source_detect(path)
    assert detected.columns == ["Date", "Branch", "Branch_2"]
    assert read_all(path, detected).rows() == [("2019-01-05", "A", "x", 1)]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([b"\xff\xfe"], pa.binary()),  # not UTF-8
        pa.array([dt.timedelta(days=1)], pa.duration("us")),
        pa.array([1], pa.decimal256(40, 0)),  # Polars panicked on it
    ],
    ids=["binary", "duration", "decimal256"],
)
def test_parquet_column_types_that_cannot_be_text_are_refused(tmp_path, column) -> None:
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"Date": pa.array(["2019-01-05"]), "Odd": column}), path)
    refusal = refused(path)
    assert (refusal.code, refusal.status) == (errors.UNSUPPORTED_FORMAT, 415)


def test_a_workbook_the_excel_library_panics_on_is_refused(tmp_path) -> None:
    # A date cell of -1e12 days made calamine panic: a BaseException that passed every handler,
    # so the task stayed `running`.
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Date", "Branch", "Product line", "Quantity", "Total"])
    sheet.append([dt.date(2019, 1, 5), "A", "Food", 1, 2.5])
    sheet.append([-1e12, "A", "Food", 1, 2.5])
    sheet["A3"].number_format = "yyyy-mm-dd"
    path = tmp_path / "panic.xlsx"
    workbook.save(path)
    refusal = refused(path)
    assert (refusal.code, refusal.status) == (errors.UNSUPPORTED_FORMAT, 415)
    assert "sheet 'Sheet' cannot be read (PanicException" in refusal.detail


@pytest.mark.parametrize("reference", ["XFD1048576", "ZZZZZZ99999999"])
def test_a_stray_cell_far_from_the_data_is_refused_not_fatal(tmp_path, reference) -> None:
    # calamine allocates the sheet from A1 to its last cell (512 GiB for XFD1048576) and aborted
    # the whole process: the web worker on preview, the task's worker on upload.
    path = sf.xlsx_stray_cell_write(tmp_path / "stray.xlsx", reference)
    refusal = refused(path)
    assert (refusal.code, refusal.status) == (errors.UNSAFE_ARCHIVE, 415)
    assert "sheet 'Sales' needs more than 4 GB of memory" in refusal.detail
    assert "stray cell" in refusal.detail


def test_a_forged_xls_cell_position_is_refused_not_fatal(tmp_path) -> None:
    path = sf.xls_stray_cell_write(tmp_path / "stray.xls", row=65_535, column=65_535)
    refusal = refused(path)
    assert (refusal.code, refusal.status) == (errors.UNSAFE_ARCHIVE, 415)
    assert "needs more than 4 GB of memory" in refusal.detail


def test_a_stray_cell_within_the_memory_limit_reads_the_table(tmp_path) -> None:
    path = sf.xlsx_stray_cell_write(tmp_path / "stray.xlsx", "AAA5000")
    detected = source_detect(path)
    frame = read_all(path, detected)
    assert detected.columns == ["Date", "Branch", "Product line", "Quantity", "Unit price", "Total", "Time"]
    assert frame["Branch"].to_list() == ["A", "B", "C"]


def test_the_excel_reader_limits_its_memory(tmp_path, monkeypatch) -> None:
    # 64 MB is too little for a dense 5,000 × 703 block (~110 MB of cells plus their text).
    monkeypatch.setattr(readers, "EXCEL_CHILD_MEMORY_BYTES", 64 << 20)
    path = sf.xlsx_stray_cell_write(tmp_path / "stray.xlsx", "AAA5000")
    refusal = refused(path)
    assert (refusal.code, refusal.status) == (errors.UNSAFE_ARCHIVE, 415)


def test_an_excel_reader_that_fails_on_its_own_is_an_internal_error(tmp_path, monkeypatch) -> None:
    # Not the file's fault (the child could not even start): no refusal blaming the file.
    broken = tmp_path / "broken_child.py"
    broken.write_text("raise SystemExit(1)\n")
    monkeypatch.setattr(readers, "EXCEL_CHILD_SCRIPT", broken)
    path = sf.xlsx_write(tmp_path / "sales.xlsx", {"Sales": sf.excel_sales_sheet()})
    with pytest.raises(RuntimeError, match="the Excel reader process failed"):
        source_detect(path)


# --- Unicode text --------------------------------------------------------------------------------

ZURICH_COMPOSED = "Z\u00fcrich"
ZURICH_DECOMPOSED = "Zu\u0308rich"  # as macOS writes it


def _unicode_rows() -> list[list[str]]:
    return [
        ["Date", "Store", "Category", "Quantity", "Total"],
        ["2024-02-01", ZURICH_COMPOSED, "Uhren", "1", "100"],
        ["2024-02-01", ZURICH_DECOMPOSED, "Uhren", "1", "50"],
        ["2024-02-01", "\u200bBern", "Uhren\u2060 ", "1", "25"],
        ["2024-02-01", "Bern\ufeff", "\u200c\u200d", "1", "10"],
        ["2024-02-01", "Bern", "Uhren", "1", "5"],
    ]


def _unicode_sources(folder: Path) -> dict[str, Path]:
    rows = _unicode_rows()
    parquet = folder / "unicode.parquet"
    pl.DataFrame(rows[1:], schema=rows[0], orient="row").write_parquet(parquet)
    return {
        "csv": sf.csv_write(folder / "unicode.csv", rows),
        "utf-16": sf.csv_write(folder / "unicode16.csv", rows, encoding="utf-16-le", bom=b"\xff\xfe"),
        "xlsx": sf.xlsx_write(folder / "unicode.xlsx", {"Sales": rows}),
        "parquet": parquet,
    }


@pytest.mark.parametrize("kind", ["csv", "utf-16", "xlsx", "parquet"])
def test_text_is_read_in_one_unicode_form_without_invisible_edges(tmp_path, kind) -> None:
    # Decomposed "Zürich" and "\u200bBern" were branches of their own beside "Zürich" and "Bern".
    path = _unicode_sources(tmp_path)[kind]
    batch = read_all(path, source_detect(path))
    assert batch["Store"].to_list() == [ZURICH_COMPOSED, ZURICH_COMPOSED, "Bern", "Bern", "Bern"]
    assert batch["Category"].to_list() == ["Uhren", "Uhren", "Uhren", None, "Uhren"]


def test_ascii_blocks_are_not_looked_at_for_unicode(tmp_path, monkeypatch) -> None:
    # An ASCII block holds no text to normalise: the common case pays nothing for it.
    looked_at: list[list[str]] = []
    real_tidy = readers._text_unicode_tidy
    monkeypatch.setattr(
        readers, "_text_unicode_tidy", lambda frame, columns: looked_at.append(columns) or real_tidy(frame, columns)
    )
    path = sf.csv_write(
        tmp_path / "ascii.csv",
        [["Date", "Store", "Category", "Quantity", "Total"], *[["2024-02-01", "Bern", "Uhren", "1", "5"]] * 3],
    )
    assert read_all(path, source_detect(path)).height == 3
    assert looked_at == []


# --- Parquet columns of several values a row ------------------------------------------------------


def _nested_parquet(path: Path) -> Path:
    table = pa.table(
        {
            "Date": pa.array([dt.date(2024, 9, 1), dt.date(2024, 9, 2)]),
            "Store": ["S1", "S2"],
            "Category": ["c1", "c1"],
            "Quantity": pa.array([1, 2], pa.uint8()),
            "Total": [10.5, 21.0],
            "Tags": pa.array([["a", "b"], None], pa.list_(pa.string())),
            "Promo": pa.array([{"code": "X1", "until": dt.date(2024, 9, 30)}, {"code": "Ü", "until": None}]),
        }
    )
    pq.write_table(table, path)
    return path


def test_parquet_lists_and_records_are_read_as_json_text(tmp_path) -> None:
    # str() of a list value gave Polars' printout: "shape: (2,)\nSeries: '' [str]\n[...]".
    path = _nested_parquet(tmp_path / "nested.parquet")
    detected = source_detect(path)
    assert detected.nested_columns == {"Tags": "lists", "Promo": "records"}
    batch = read_all(path, detected)
    assert batch["Tags"].to_list() == ['["a", "b"]', None]
    assert batch["Promo"].to_list() == ['{"code": "X1", "until": "2024-09-30"}', '{"code": "Ü", "until": null}']
    assert detected.sample_rows[0]["Tags"] == '["a", "b"]'


def test_a_canonical_field_is_never_read_from_a_column_of_lists(tmp_path) -> None:
    path = tmp_path / "categories.parquet"
    pq.write_table(pa.table({"Store": ["S1"], "Category": pa.array([["shoes", "socks"]])}), path)
    detected = source_detect(path)
    readers.nested_column_refuse(detected, {"branch": "Store"})  # a column of single values is fine
    with pytest.raises(IngestionError) as caught:
        readers.nested_column_refuse(detected, {"branch": "Store", "product_line": "Category"})
    assert caught.value.code == errors.INVALID_MAPPING
    assert "Column 'Category' holds lists" in caught.value.detail and "as product_line" in caught.value.detail
    assert '{"Category": ""}' in caught.value.detail
