"""Small upload files made on the fly, one helper per kind of file a retail user sends us."""

import csv
import datetime as dt
import io
import random
import struct
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import polars as pl
import xlwt
from openpyxl.utils.datetime import CALENDAR_MAC_1904

SALES_HEADER = ["Date", "Branch", "Product line", "Quantity", "Unit price", "Total"]


def sales_rows(count: int, *, start: int = 1) -> list[list[str]]:
    """Data rows matching SALES_HEADER; row i has quantity i and a total of i × 10.5."""
    rows = []
    for i in range(start, start + count):
        day = dt.date(2019, 1, 1) + dt.timedelta(days=i % 28)
        rows.append([day.strftime("%d/%m/%Y"), "ABC"[i % 3], "Food and beverages", str(i), "10.5", f"{i * 10.5:.2f}"])
    return rows


def wide_sales_rows(count: int, *, extras: int) -> list[list[str]]:
    """A header and `count` rows of SALES_HEADER plus `extras` short extra columns and a long note
    unique to each row: as wide as the exports of point-of-sale systems with every attribute."""
    header = [*SALES_HEADER, *(f"attr_{i:03d}" for i in range(extras)), "Note"]
    rows = [
        [*row, *(f"v{(number * (i + 7)) % (3 + i % 9)}" for i in range(extras)), f"note number {number} for this line"]
        for number, row in enumerate(sales_rows(count), start=1)
    ]
    return [header, *rows]


def sales_text_with_bad_quantities(rows: int, *, bad: int) -> str:
    """A CSV of `rows` sales of branch A whose first `bad` rows have an unreadable quantity ("x")."""
    lines = [f"2019-01-{1 + i % 28:02d},A,Food,{'x' if i < bad else 1},10" for i in range(rows)]
    return "Date,Branch,Product line,Quantity,Total\n" + "\n".join(lines) + "\n"


def text_write(path: Path, text: str, *, encoding: str = "utf-8", bom: bytes = b"") -> Path:
    path.write_bytes(bom + text.encode(encoding))
    return path


def csv_text(rows: list[list[str]], *, delimiter: str = ",", newline: str = "\n") -> str:
    """Rows as CSV, quoting only where needed (a delimiter, quote or newline in the value)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return buffer.getvalue()


def csv_write(
    path: Path,
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    bom: bytes = b"",
    newline: str = "\n",
) -> Path:
    return text_write(path, csv_text(rows, delimiter=delimiter, newline=newline), encoding=encoding, bom=bom)


def latin1_semicolon_decimal_comma(path: Path) -> Path:
    """A European export: latin-1, `;` between fields, `,` before decimals, a thousands dot."""
    rows = [
        ["Datum", "Filiale", "Kategorie", "Menge", "Preis", "Total", "Kunde"],
        ["05.01.2019", "Zürich", "Café", "3", "12,50", "37,50", "Müller"],
        ["06.01.2019", "Genève", "Pâtisserie", "100", "12,345", "1.234,50", "Dupré"],
        ["07.01.2019", "Zürich", "Café", "1", "0,5", "0,50", "Ærø"],
    ]
    return csv_write(path, rows, delimiter=";", encoding="latin-1", newline="\r\n")


def png_bytes() -> bytes:
    """A real 1×1 PNG."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def random_bytes(count: int, *, low: int = 0, high: int = 255, seed: int = 7) -> bytes:
    generator = random.Random(seed)
    return bytes(generator.randint(low, high) for _ in range(count))


@dataclass(frozen=True)
class ExcelError:
    """An error cell, as a formula leaves it: "#REF!", "#N/A", "#DIV/0!"…"""

    code: str


# BIFF8 error codes (xlwt's own table misspells #N/A and gives #VALUE! the code of #NUM!).
_BIFF_ERROR_CODES = {
    "#NULL!": 0x00,
    "#DIV/0!": 0x07,
    "#VALUE!": 0x0F,
    "#REF!": 0x17,
    "#NAME?": 0x1D,
    "#NUM!": 0x24,
    "#N/A": 0x2A,
}


def xlsx_write(
    path: Path, sheets: dict[str, list[list]], *, hidden: Collection[str] = (), date1904: bool = False
) -> Path:
    """One sheet per entry, rows written from A1 (None leaves a cell empty). `hidden`: sheets
    hidden in Excel; `date1904`: the workbook uses the 1904 date system (Mac Excel)."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    if date1904:
        workbook.epoch = CALENDAR_MAC_1904
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        if name in hidden:
            sheet.sheet_state = "hidden"
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    # openpyxl stores a string that is an error code as an error cell
                    sheet.cell(row=r, column=c, value=value.code if isinstance(value, ExcelError) else value)
    workbook.save(path)
    return path


def xls_write(path: Path, sheets: dict[str, list[list]], *, date1904: bool = False) -> Path:
    """Legacy .xls (BIFF8) with real Excel date and time cells."""
    styles = {
        dt.datetime: xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS"),
        dt.date: xlwt.easyxf(num_format_str="YYYY-MM-DD"),
        dt.time: xlwt.easyxf(num_format_str="HH:MM:SS"),
    }
    workbook = xlwt.Workbook()
    workbook.dates_1904 = date1904
    for name, rows in sheets.items():
        sheet = workbook.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, ExcelError):
                    sheet.row(r).set_cell_error(c, _BIFF_ERROR_CODES[value.code])
                    continue
                style = styles.get(type(value))
                sheet.write(r, c, value, style) if style else sheet.write(r, c, value)
    workbook.save(str(path))
    return path


def xlsx_stray_cell_write(path: Path, reference: str) -> Path:
    """The sales workbook plus one number at `reference` far from the data, as a careless
    (XFD1048576, the last cell of a sheet) or a forged (ZZZZZZ99999999) file holds it."""
    source = io.BytesIO()
    xlsx_write(source, {"Sales": excel_sales_sheet()})  # type: ignore[arg-type]
    row = "".join(ch for ch in reference if ch.isdigit())
    stray = f'<row r="{row}"><c r="{reference}" t="n"><v>1</v></c></row></sheetData>'.encode()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as patched:
        for member in original.infolist():
            data = original.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", stray)
            patched.writestr(member, data)
    return path


def xls_stray_cell_write(path: Path, *, row: int, column: int) -> Path:
    """The sales sheet as .xls plus one number record moved to (row, column), 0-based: BIFF8
    stores both as 16-bit fields, so a forged file can name column 65,535 (Excel stops at 255)."""
    marker = 12345.678
    xls_write(path, {"Sales": [*excel_sales_sheet(), [marker]]})
    data = bytearray(path.read_bytes())
    # NUMBER record: type, length, row, column, format, then the value.
    value_at = data.index(struct.pack("<d", marker))
    struct.pack_into("<HH", data, value_at - 6, row, column)
    path.write_bytes(bytes(data))
    return path


def excel_sales_sheet() -> list[list]:
    """A sheet as people make them: a title, a blank row, then the table with real dates."""
    return [
        ["Sales report January 2019"],
        [],
        ["Date", "Branch", "Product line", "Quantity", "Unit price", "Total", "Time"],
        [dt.datetime(2019, 1, 5), "A", "Food", 3, 1.1, 3.3000000000000003, dt.time(10, 39)],
        [dt.datetime(2019, 1, 6, 14, 30, 5), "B", "Café", 2, 0.1, 0.2, dt.time(0, 0, 1)],
        [dt.datetime(2019, 1, 7), "C", "Sports", 10, 1234567.891, 12345678.91, None],
    ]


def parquet_write(path: Path) -> Path:
    frame = pl.DataFrame(
        {
            "Date": [dt.date(2019, 1, 5), dt.date(2019, 1, 6), None],
            "Sold at": [dt.datetime(2019, 1, 5, 10, 39), dt.datetime(2019, 1, 6, 0, 0, 0, 250000), None],
            "Branch": ["A", " B ", ""],
            "Quantity": [3, 2, 1],
            "Total": [1.1, 2.5, 12.0],
            "Member": [True, False, None],
        }
    )
    frame.write_parquet(path)
    return path


def zip_bomb_write(path: Path, *, member_bytes: int = 1 << 30) -> Path:
    """A .xlsx-looking zip whose sheet inflates to `member_bytes` of zeros, written in a stream."""
    zero_chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            for _ in range(member_bytes // len(zero_chunk)):
                member.write(zero_chunk)
    return path


def zip_central_directory_patch(path: Path, *, uncompressed: int | None = None, flag_bits: int | None = None) -> Path:
    """Rewrite what the central directory claims about every member (size, flags), nothing else."""
    data = bytearray(path.read_bytes())
    position = data.find(b"PK\x01\x02")
    while position >= 0:
        if uncompressed is not None:
            struct.pack_into("<I", data, position + 24, uncompressed)
        if flag_bits is not None:
            struct.pack_into("<H", data, position + 8, flag_bits)
        position = data.find(b"PK\x01\x02", position + 4)
    path.write_bytes(bytes(data))
    return path


def zip_small_write(path: Path, *, entries: int = 3, workbook: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if workbook:
            archive.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(entries):
            archive.writestr(f"xl/media/{i}.txt", "x" * 64)
    return path
