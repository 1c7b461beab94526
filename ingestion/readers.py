"""Reading an uploaded sales file (DESIGN.md, data flow step 3).

The format is detected from the bytes, never from the file name (the name only improves error
messages): a zip with a workbook is .xlsx, an OLE2 container is .xls, `PAR1` is Parquet, and
anything that decodes as text is CSV/TSV. Every reader yields the same thing: batches whose
source columns are all strings exactly as written (surrounding whitespace removed, empty → null;
text beyond ASCII in Unicode NFC, without zero-width characters at its edges) plus an Int64
`__row_number`, so later stages never care where a row came from. The one
exception is asked for by the caller: a CSV block may give number columns as numbers
(TypedColumns), when that reads them exactly as their text would be.

Row numbers (`__row_number`, `header_row`) are 1-based:
- CSV: the record number, counting blank lines and title rows. It equals the line number unless
  a quoted field spans several lines, and it is the row number a spreadsheet shows on opening
  the file.
- Excel: the row number shown in the sheet.
- Parquet: the row's position (1 = first row); Parquet has no header row (`header_row` is None).

Memory stays bounded for large CSV files: the file is cut into blocks (≤ 8 MB) at record
boundaries and each block is parsed by Polars on its own, so memory holds about one batch plus
one block whatever the file size (~370 MB peak RSS for 250,000-row batches of a 200 MB or a
500 MB file). Excel sheets are parsed whole by calamine (fastexcel), in a process of its own
with a memory limit (a workbook can make calamine abort the process); Parquet is read in record
batches. A caller sizes batches by memory, not only rows (`source_estimate`): a cell costs a
16-byte view beside its text, so a file of 238 short columns takes ten times the memory per row of
one of 18. Long runs of empty lines are skipped, not parsed: each would be a row of nulls.
"""

import codecs
import csv
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.etree import ElementTree

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion import errors
from ingestion.errors import IngestionError
from ingestion.schema import header_fit_score, header_has_required, normalize_column_name
from sales_analytics.text import INVISIBLE_EDGES

logger = logging.getLogger(__name__)

ROW_NUMBER = "__row_number"
DELIMITERS = (",", ";", "\t", "|")

# Sniffing looks at the beginning of the file only; a header sits in the first rows.
SNIFF_BYTES = 1 << 20
SNIFF_RECORDS = 1000
HEADER_SEARCH_ROWS = 30
SAMPLE_ROWS = 10
SCAN_CHUNK_BYTES = 16 << 20

# CSV blocks: big enough for Polars to be fast, small enough to keep memory flat.
# What Polars' strip_chars() trims that ASCII text can hold (Rust's char::is_whitespace); "\n"
# only occurs inside quoted cells.
ASCII_WHITESPACE: tuple[str, ...] = (" ", "\t", "\r", "\x0b", "\x0c")
BLOCK_BYTES_PER_ROW = 128
BLOCK_BYTES_MIN = 64 << 10
BLOCK_BYTES_MAX = 8 << 20
# One record longer than this means the quotes never close: refuse instead of buffering the file.
RECORD_BYTES_MAX = 64 << 20
# A run of this many empty lines or more is skipped where it is found, not parsed: Polars makes a
# row of nulls of every empty line, so 100 MB of line breaks after the data took 5 GB and half a minute.
EMPTY_RUN_LINES = 1_000
_EMPTY_RUN_STARTS = (b"\n" * EMPTY_RUN_LINES, b"\r\n" * EMPTY_RUN_LINES)
# Character classes, not groups: Python's re keeps state per repetition of a group, which made a
# match over 8 MB of line breaks take seconds and a gigabyte.
_LINE_BREAKS = re.compile(rb"[\r\n]*")
_EMPTY_LINES = re.compile(rb"\n[\r\n]+")

# Batch sizes. A batch of strings costs its text plus a 16-byte view per cell (Polars keeps a
# text of up to 12 bytes inside the view), so a file of many short cells takes several times its
# size in memory: 150,000 rows of 238 columns were 0.7 GB per batch against 0.06 GB for 18.
CELL_VIEW_BYTES = 16
# How much of a file the estimates look at: the first bytes of a CSV file, the first rows of a Parquet one.
ESTIMATE_SAMPLE_BYTES = 4 << 20
ESTIMATE_SAMPLE_ROWS = 2_000
# Rows `source_column_parts` reads at once from a file not read column by column (Excel, Parquet),
# and the memory those rows may take.
COLUMN_PART_ROWS = 250_000
COLUMN_PART_BYTES = 96 << 20

# calamine runs in a process of its own (excel_child.py), with this much address space to spare:
# a sheet 1 M rows × 30 columns deep fits; a stray cell at XFD1048576 (512 GiB) does not.
EXCEL_CHILD_SCRIPT = Path(__file__).with_name("excel_child.py")
EXCEL_CHILD_MEMORY_BYTES = 4 << 30

# Zip bomb limits, checked on the central directory before anything is inflated.
ZIP_MAX_ENTRIES = 10_000
ZIP_MAX_TOTAL_BYTES = 2 << 30
ZIP_MAX_RATIO = 200
ZIP_RATIO_CHECKED_ABOVE = 1 << 20

MAGIC_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
MAGIC_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAGIC_PARQUET = b"PAR1"
# Compressed files, refused with what to do rather than as "binary": people compress a large
# export to send it. Decompressing here would get round the upload size limit (a bomb).
MAGIC_COMPRESSED = (
    (re.compile(rb"\x1f\x8b"), "gzip"),
    (re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)"), "bzip2"),  # a block, or the end of an empty stream
    (re.compile(rb"\xfd7zXZ\x00"), "xz"),
    (re.compile(rb"7z\xbc\xaf\x27\x1c"), "7z"),
    (re.compile(rb"Rar!\x1a\x07"), "RAR"),
)
# What a zip archive's member is named when it holds a table a zip-compressed upload meant.
ZIPPED_TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
# Common non-text files people upload by mistake; anything else binary is caught by its NUL bytes.
MAGIC_OTHER_BINARY = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"%PDF",
    b"\x7fELF",
)
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Bytes cp1252 leaves undefined: a file containing one is decoded as latin-1, which maps every byte.
CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32)])
# Legacy 8-bit text is mostly ASCII; when most bytes are high it is another alphabet we would garble.
HIGH_BYTES_MAX_RATIO = 0.3
CONTROL_BYTES_MAX_RATIO = 0.01

# Which decimal mark numbers use (the patterns serve Python's re and Polars' regex alike).
_NUMBER_NOISE = r"[\s\u00a0€$£%]"
# Votes for a decimal comma: "12,5", "1.234,56", and "1.234.567", where a dot can only group thousands.
_COMMA_CONVENTION = r"^[-+]?(?:(?:\d{1,3}(?:[.']\d{3})+|\d+),\d+|\d{1,3}(?:\.\d{3}){2,})$"
_POINT_CONVENTION = r"^[-+]?(?:(?:\d{1,3}(?:[,']\d{3})+|\d+)\.\d+|\d{1,3}(?:,\d{3}){2,})$"
# "1,234" / "52.192" could be a thousands separator or a decimal: they do not vote. "0.125" does:
# no thousands group starts with a zero.
_AMBIGUOUS_THOUSANDS = r"^[-+]?[1-9]\d{0,2}[.,]\d{3}$"
# What a file separated by each delimiter is called in a note.
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
_MARKUP_START = re.compile(r"^\s*<(?:\?xml|!doctype|html|table|head|body)", re.IGNORECASE)
# A JSON array or object ([{…}], {"rows": …}, JSON lines): no header row a CSV reader could find.
_JSON_START = re.compile(r'^\s*(?:\[\s*[\[{"\]]|\{\s*["}])')


@dataclass(frozen=True)
class DetectedSource:
    format: str  # "csv" | "xlsx" | "xls" | "parquet"
    encoding: str | None  # text only: "utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252", "latin-1"
    delimiter: str | None  # text only: one of , ; \t |
    decimal_comma: bool  # "12,50" style numbers
    sheet: str | None  # Excel only: the sheet read
    header_row: int | None  # 1-based row of the header in the file/sheet (None for Parquet)
    columns: list[str]  # stripped, never empty, de-duplicated
    sample_rows: list[dict[str, str]]  # the first data rows, for preview
    quote_char: str | None = '"'  # None when quotes in the file are literal characters (12" pizza)
    # Set when `decimal_comma` is a guess that changes how some numbers read (see decimal_convention_choose).
    decimal_note: str = ""
    # Columns whose header cells name the same thing, as renamed: ("Total", "Total_2").
    repeated_columns: tuple[tuple[str, ...], ...] = ()
    # What the uploader should know about how the file was read (an option ignored, sheets left out).
    notes: tuple[str, ...] = ()
    # Excel only: the workbook counts days from 1904-01-01 (Mac Excel), which serial numbers need.
    date1904: bool = False
    # Parquet only: columns holding several values a row (column → "lists", "records" or "maps"), read
    # as JSON text; fine as extra dimensions, never as a canonical field (`nested_column_refuse`).
    nested_columns: dict[str, str] = field(default_factory=dict)


# --- public API ----------------------------------------------------------------------------------


def source_detect(
    path: Path, *, filename_hint: str = "", sheet: str | None = None, header_row: int | None = None
) -> DetectedSource:
    """What the file is and how to read it, from its content; refusals raise IngestionError."""
    path = Path(path)
    label = filename_hint or path.name
    kind, head = _source_kind(path, label=label, header_row=header_row)
    if kind in ("xlsx", "xls"):
        return _excel_detect(path, kind, label=label, sheet=sheet, header_row=header_row)
    detected = (
        _parquet_detect(path, label=label)
        if kind == "parquet"
        else _text_detect(path, head, label=label, header_row=header_row)
    )
    if sheet is not None:
        kind_name = detected.format.upper()
        ignored = f"The sheet option ('{sheet}') was ignored: '{label}' is a {kind_name} file, which has no sheets."
        detected = replace(detected, notes=(*detected.notes, ignored))
    return detected


def source_check(
    path: Path, *, filename_hint: str = "", sheet: str | None = None, header_row: int | None = None
) -> None:
    """The checks an upload request makes before keeping the file: those of `source_detect`,
    except that an Excel workbook's sheets are listed but not parsed.

    calamine parses a whole sheet even to show its first rows (over a second per 100 k rows), so
    finding the header of a workbook is left to the worker: a workbook with no data, only a
    header, or a `header_row` on a blank row is accepted (202) and its task fails with the code
    `source_detect` raises (`empty_file`, `header_only`, `header_row_not_found`). Not a workbook,
    an unsafe archive or an unknown `sheet` are still refused at once.
    """
    path = Path(path)
    label = filename_hint or path.name
    kind, _ = _source_kind(path, label=label, header_row=header_row)
    if kind not in ("xlsx", "xls"):
        source_detect(path, filename_hint=filename_hint, sheet=sheet, header_row=header_row)
        return
    names = _excel_open(path, label, kind).sheet_names
    if sheet is not None:
        _sheet_resolve(names, sheet, label)


def _source_kind(path: Path, *, label: str, header_row: int | None) -> tuple[str, bytes]:
    """ "xlsx", "xls", "parquet" or "text" by the first bytes, and those bytes; archives are
    checked for bombs here, before anything inflates them."""
    if header_row is not None and (not isinstance(header_row, int) or header_row < 1):
        raise IngestionError(errors.INVALID_OPTION, "header_row must be a row number (1 or more).", status=400)
    if path.stat().st_size == 0:
        raise IngestionError(errors.EMPTY_FILE, f"'{label}' is empty.")
    head = _head_read(path, 64 << 10)
    compression = next((name for magic, name in MAGIC_COMPRESSED if magic.match(head)), None)
    if compression:
        raise _compressed(label, compression)
    if head.startswith(MAGIC_ZIP):
        archive_check(path, label=label)
        return "xlsx", head
    if head.startswith(MAGIC_OLE2):
        return "xls", head
    if head.startswith(MAGIC_PARQUET):
        return "parquet", head
    return "text", head


@dataclass(frozen=True)
class TypedColumns:
    """Source columns a CSV block may be read as numbers straight away, instead of as strings
    parsed later: building strings for the measure columns of a large file costs more than the
    parser's own number reading.

    `dtypes`: column → Float64 or Int64. A block is kept typed only when every such cell parsed
    and `accept(frame)` is true; otherwise it is read as strings, as without this. The caller
    makes `accept` refuse every value that its later parsing of the strings would read
    differently or reject, so either way a block gives the same rows.
    """

    dtypes: Mapping[str, pl.DataType]
    accept: Callable[[pl.DataFrame], bool]


def source_read_batches(
    path: Path, detected: DetectedSource, *, batch_rows: int = 250_000, typed: TypedColumns | None = None
) -> Iterator[pl.DataFrame]:
    """The data rows in file order, `batch_rows` per batch (the last one shorter): strings plus
    `__row_number`. Blank rows are skipped; their numbers are not reused.

    `typed`: columns a CSV file's blocks may give as numbers (see TypedColumns); other formats
    and columns are strings.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    path = Path(path)
    if detected.format == "csv":
        frames = _csv_frames(path, detected, block_bytes=_block_bytes(batch_rows), typed=typed)
    elif detected.format in ("xlsx", "xls"):
        frames = _excel_frames(path, detected, batch_rows=batch_rows)
    elif detected.format == "parquet":
        frames = _parquet_frames(path, detected, batch_rows=batch_rows)
    else:
        raise ValueError(f"unknown format {detected.format!r}")
    try:
        yield from _frames_rebatch(frames, batch_rows)
    finally:
        frames.close()  # a caller that stops early (preview) removes temporary files at once


def source_column_parts(path: Path, detected: DetectedSource, column: str) -> Iterator[pl.Series]:
    """One column over the whole file as strings (nulls kept), in consecutive parts, so a caller
    can fold a large file's column (e.g. count its dates) without holding it whole."""
    if column not in detected.columns:
        raise IngestionError(
            errors.INVALID_MAPPING, f"Column '{column}' is not in the file (columns: {', '.join(detected.columns)})."
        )
    if detected.format == "csv":
        yield from _csv_column_parts(Path(path), detected, column)
    else:
        estimate = source_estimate(path, detected)
        batch_rows = estimate.batch_rows(most=COLUMN_PART_ROWS, budget_bytes=COLUMN_PART_BYTES)
        yield from (batch[column] for batch in source_read_batches(path, detected, batch_rows=batch_rows))


@dataclass(frozen=True)
class SourceEstimate:
    """What the start of a file says about the whole: enough to size batches and move a progress
    bar, not exact."""

    rows: int  # data rows (0: unknown, an Excel sheet)
    row_bytes: int  # memory one data row takes in a batch of strings

    def batch_rows(self, *, most: int, budget_bytes: int) -> int:
        """Rows per batch: `most`, or fewer when that many rows would take more than `budget_bytes`."""
        return max(1, min(most, budget_bytes // max(self.row_bytes, 1)))


def source_estimate(path: Path, detected: DetectedSource) -> SourceEstimate:
    """Rows and bytes per row in memory, from the first megabytes (CSV) or rows (Parquet) of the
    file, or from detection's sample rows (Excel, whose sheet is read whole anyway)."""
    path = Path(path)
    width = len(detected.columns)
    if detected.format == "csv":
        return _csv_estimate(path, detected)
    if detected.format == "parquet":
        parquet = _parquet_open(path, path.name)
        first = next(parquet.iter_batches(batch_size=ESTIMATE_SAMPLE_ROWS))
        text = _parquet_text(_parquet_batch_frame(first, path.name), detected.columns, path.name)
        # The record batch read and its text copy are both held while a batch is normalised.
        held_bytes = first.nbytes + sum(text[name].str.len_bytes().sum() or 0 for name in text.columns)
        return SourceEstimate(
            rows=parquet.metadata.num_rows, row_bytes=_row_bytes(held_bytes, rows=max(first.num_rows, 1), width=width)
        )
    sample = detected.sample_rows
    text_bytes = sum(len(value.encode()) for row in sample for value in row.values())
    return SourceEstimate(rows=0, row_bytes=_row_bytes(text_bytes, rows=max(len(sample), 1), width=width))


def _row_bytes(text_bytes: int, *, rows: int, width: int) -> int:
    """Memory per row of a batch whose `rows` rows hold `text_bytes` of text in `width` string columns."""
    return round(text_bytes / rows) + width * CELL_VIEW_BYTES


def _csv_estimate(path: Path, detected: DetectedSource) -> SourceEstimate:
    """Scaled from the first megabytes rather than counted: counting read the whole file once more.
    Empty lines are left out: they are skipped, not parsed (`_empty_runs_cut`)."""
    utf16 = (detected.encoding or "").startswith("utf-16")
    newline = b"\n\x00" if detected.encoding == "utf-16-le" else b"\n"
    size = path.stat().st_size
    with path.open("rb") as handle:
        sample = handle.read(ESTIMATE_SAMPLE_BYTES)
    empty_lines = 0 if utf16 else _empty_lines_count(sample)
    lines = sample.count(newline) - empty_lines
    rows = round(lines * size / len(sample)) if len(sample) < size else lines
    # UTF-16 takes two bytes for each character UTF-8 (what Polars holds) writes in one.
    text_bytes = len(sample) // 2 if utf16 else len(sample) - empty_lines
    return SourceEstimate(
        rows=max(rows - (detected.header_row or 1), 1),
        row_bytes=_row_bytes(text_bytes, rows=max(lines, 1), width=len(detected.columns)),
    )


def archive_check(path: Path, *, label: str = "") -> None:
    """Refuse a zip bomb, an encrypted or broken archive from its central directory alone.

    Nothing is inflated, so a 1 GB member costs no more than a 1 KB one.
    """
    label = label or Path(path).name
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _unsafe(label, "it is a damaged zip archive") from exc
    if len(members) > ZIP_MAX_ENTRIES:
        raise _unsafe(label, f"it holds {len(members):,} entries (limit {ZIP_MAX_ENTRIES:,})")
    if any(member.flag_bits & 0x1 for member in members):
        raise _unsafe(label, "it is encrypted (password-protected)")
    total = sum(member.file_size for member in members)
    if total > ZIP_MAX_TOTAL_BYTES:
        raise _unsafe(label, f"it would expand to {total / (1 << 30):.1f} GB")
    for member in members:
        if member.file_size > ZIP_RATIO_CHECKED_ABOVE and member.file_size > ZIP_MAX_RATIO * member.compress_size:
            raise _unsafe(label, f"'{member.filename}' expands more than {ZIP_MAX_RATIO}× (a zip bomb)")
    names = {member.filename for member in members}
    if "xl/workbook.xml" not in names:
        if any(name.lower().endswith(ZIPPED_TABLE_SUFFIXES) for name in names):
            raise _compressed(label, "zip")
        raise _unsupported(label, "it is a zip archive but not an Excel .xlsx workbook")


# --- errors --------------------------------------------------------------------------------------


def _unsupported(label: str, why: str) -> IngestionError:
    return IngestionError(
        errors.UNSUPPORTED_FORMAT,
        f"'{label}' cannot be read: {why}. Upload a CSV/TSV, Excel (.xlsx, .xls) or Parquet file.",
        status=415,
    )


def _compressed(label: str, compression: str) -> IngestionError:
    return _unsupported(label, f"it is {compression}-compressed: decompress it and upload the .csv")


def _unsafe(label: str, why: str) -> IngestionError:
    return IngestionError(errors.UNSAFE_ARCHIVE, f"'{label}' was refused: {why}.", status=415)


def _undecodable(label: str, why: str) -> IngestionError:
    return IngestionError(
        errors.UNDECODABLE_TEXT, f"'{label}' cannot be read as text: {why}. Save it as UTF-8 CSV and upload it again."
    )


# --- shared helpers ------------------------------------------------------------------------------


def _head_read(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def columns_name(cells: list[str]) -> list[str]:
    """Header cells as column names: stripped, `column_<n>` when blank, `_2`, `_3` on repeats.

    NUL characters are dropped (PostgreSQL stores no text with one) and the readers' own
    `__row_number` column is not a name a source column can take.
    """
    names: list[str] = []
    taken: set[str] = {ROW_NUMBER}
    for position, cell in enumerate(cells, start=1):
        base = (cell or "").replace("\x00", "").strip() or f"column_{position}"
        name, suffix = base, 2
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        names.append(name)
    return names


def columns_repeated(cells: list[str | None], names: list[str]) -> tuple[tuple[str, ...], ...]:
    """The groups of columns (by their `columns_name` names) whose header cells name the same
    thing once normalised ("Total", "total "): which one a field should read is the uploader's
    choice, never the first one by default."""
    groups: dict[str, list[str]] = {}
    for cell, name in zip(cells, names, strict=True):
        key = normalize_column_name((cell or "").replace("\x00", ""))
        if key:
            groups.setdefault(key, []).append(name)
    return tuple(tuple(group) for group in groups.values() if len(group) > 1)


def _row_is_blank(cells: list[str | None]) -> bool:
    return not any((cell or "").strip() for cell in cells)


def _header_index_choose(rows: list[list[str | None]], *, width: int) -> int | None:
    """The row (0-based) that looks most like the header; title rows above it are skipped.

    The best schema fit wins (the earliest on a tie). When no row names a known field, the first
    row filled like a data row is the header, so a title line is still passed over.
    """
    candidates = rows[:HEADER_SEARCH_ROWS]
    scores = [header_fit_score([(cell or "").strip() for cell in row]) for row in candidates]
    if scores and max(scores) > 0:
        return scores.index(max(scores))
    needed = max(1, (width * 6 + 9) // 10)
    for index, row in enumerate(candidates):
        if sum(1 for cell in row if (cell or "").strip()) >= needed:
            return index
    return next((index for index, row in enumerate(candidates) if not _row_is_blank(row)), None)


def _header_index_override(rows: list[list[str | None]], header_row: int, label: str) -> int:
    index = header_row - 1
    if index >= len(rows) or _row_is_blank(rows[index]):
        raise IngestionError(
            errors.HEADER_ROW_NOT_FOUND,
            f"Row {header_row} of '{label}' is not a header row (it is empty or missing).",
        )
    return index


def _width_trim(header: list[str | None], data: list[list[str | None]], width: int) -> int:
    """Drop trailing columns without a header name and without a value in the sample."""
    while width > 1:
        position = width - 1
        named = position < len(header) and (header[position] or "").strip()
        used = any(position < len(row) and (row[position] or "").strip() for row in data)
        if named or used:
            break
        width -= 1
    return width


@dataclass(frozen=True)
class DecimalVotes:
    """Numbers whose text shows the decimal mark ("12,5" a comma, "0.125" a point), and numbers
    that read differently by the mark ("52.192": 52.192 or 52192)."""

    comma: int = 0
    point: int = 0
    ambiguous: int = 0
    example: str = ""  # an ambiguous number, as written

    def __add__(self, other: "DecimalVotes") -> "DecimalVotes":
        return DecimalVotes(
            comma=self.comma + other.comma,
            point=self.point + other.point,
            ambiguous=self.ambiguous + other.ambiguous,
            example=self.example or other.example,
        )

    def decided(self) -> bool | None:
        """Whether the votes say decimal comma (True) or point (False); None on a tie or no vote."""
        return None if self.comma == self.point else self.comma > self.point


def decimal_convention_choose(votes: DecimalVotes, *, delimiter: str | None) -> tuple[bool, str]:
    """(decimal comma?, a note when that is a guess some numbers depend on).

    The votes decide. Without them, a `;` points to the European convention (such files use
    `;` because the comma is their decimal mark), any other delimiter to the decimal point.
    Excel cells (no delimiter) hold numbers, which are written with a point.
    """
    decided = votes.decided()
    if decided is not None:
        return decided, ""
    comma = delimiter == ";"
    if not votes.ambiguous or delimiter is None:
        return comma, ""
    reading = _number_read(votes.example, comma)
    other, option = ("point", '"."') if comma else ("comma", '","')
    note = (
        f"Numbers such as '{votes.example}' could have a decimal or a thousands separator, and no number in the "
        f"file settles it: they were read with a decimal {'comma' if comma else 'point'} ('{votes.example}' = "
        f"{reading}), as usual in files separated by {DELIMITER_NAMES.get(delimiter, repr(delimiter))}. If the "
        f"file's decimal mark is the {other}, upload it again with the option decimal={option}."
    )
    return comma, note


def _number_read(text: str, decimal_comma: bool) -> str:
    """An ambiguous number ("52.192") as the convention reads it, for a note."""
    plain = text.replace(".", "").replace(",", ".") if decimal_comma else text.replace(",", "")
    return f"{float(plain):g}"


def decimal_votes_of_rows(rows: list[list[str | None]]) -> DecimalVotes:
    """The votes of every cell of some rows (detection's sample)."""
    values = [cell for row in rows for cell in row if cell]
    return decimal_votes_of_series(pl.Series(values, dtype=pl.String)) if values else DecimalVotes()


def decimal_votes_of_frame(frame: pl.DataFrame, columns: list[str]) -> DecimalVotes:
    """The votes of a batch's number columns, as text or as read typed (TypedColumns)."""
    votes = DecimalVotes()
    for name in columns:
        series = frame[name]
        if series.dtype == pl.String:
            votes += decimal_votes_of_series(series)
        elif series.dtype.is_float():
            votes += _decimal_votes_of_floats(series)
    return votes


def decimal_votes_of_series(values: pl.Series) -> DecimalVotes:
    # Looking for noise costs half of removing it, and most number columns have none.
    text = values.str.replace_all(_NUMBER_NOISE, "") if values.str.contains(_NUMBER_NOISE).any() else values
    ambiguous = text.str.contains(_AMBIGUOUS_THOUSANDS).fill_null(False)
    comma = text.str.contains(_COMMA_CONVENTION).fill_null(False) & ~ambiguous
    point = text.str.contains(_POINT_CONVENTION).fill_null(False) & ~ambiguous
    examples = text.filter(ambiguous).head(1)
    return DecimalVotes(
        comma=int(comma.sum()),
        point=int(point.sum()),
        ambiguous=int(ambiguous.sum()),
        example=examples[0] if len(examples) else "",
    )


def _decimal_votes_of_floats(values: pl.Series) -> DecimalVotes:
    """A typed column was read with a decimal point: its fractions vote for it, but for those
    that were maybe written like "52.192" (1 to 999 with exactly three decimals)."""
    size = values.abs()
    thousandths = values * 1000
    three_decimals = ((thousandths - thousandths.round(0)).abs() < 1e-6) & ((values * 100).round(6) % 1 != 0)
    ambiguous = (size >= 1) & (size < 1000) & three_decimals
    fraction = (values % 1 != 0) & values.is_finite()
    examples = values.filter(ambiguous.fill_null(False)).head(1)
    return DecimalVotes(
        point=int((fraction & ~ambiguous).fill_null(False).sum()),
        ambiguous=int(ambiguous.fill_null(False).sum()),
        example=repr(examples[0]) if len(examples) else "",
    )


def _sample_rows_make(columns: list[str], rows: list[list[str | None]]) -> list[dict[str, str]]:
    sample = []
    for row in rows:
        if _row_is_blank(row):
            continue
        sample.append({name: (row[i] or "").strip() if i < len(row) else "" for i, name in enumerate(columns)})
        if len(sample) == SAMPLE_ROWS:
            break
    return sample


def _frame_normalize(
    frame: pl.DataFrame,
    columns: list[str],
    first_row: int,
    *,
    edge_whitespace: tuple[str, ...] | None = None,
    cell_errors: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Name the columns, trim cells (blank → null), number the rows, then drop blank rows.

    `edge_whitespace`: the only characters that can be trimmed from these cells (see
    `_edge_whitespace`); None when any whitespace can. `cell_errors`: `cell_error_column`s of
    the same rows, kept alongside (a row of error cells is not blank).
    """
    frame = frame.select(pl.nth(i).alias(name) for i, name in enumerate(columns))
    # Columns read as numbers (TypedColumns) have neither whitespace nor empty strings.
    texts = [name for name in columns if frame.schema[name] == pl.String]
    # Two steps on purpose: in one expression the strip ran twice (test and value), which
    # doubled the cost of the most expensive step of reading.
    frame = frame.with_columns(pl.col(_columns_to_trim(frame, texts, edge_whitespace)).str.strip_chars())
    if edge_whitespace is None:  # text beyond ASCII may be there: an ASCII block needs none of this
        frame = _text_unicode_tidy(frame, texts)
    frame = frame.with_columns(
        pl.when(pl.col(name).str.len_bytes() > 0).then(pl.col(name)).alias(name) for name in texts
    )
    frame = frame.with_columns(pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64).alias(ROW_NUMBER))
    if cell_errors is not None:
        frame = frame.hstack(cell_errors)
        return frame.filter(~pl.all_horizontal(pl.col([*columns, *cell_errors.columns]).is_null()))
    return frame.filter(~pl.all_horizontal(pl.col(columns).is_null()))


def _text_unicode_tidy(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Cells beyond ASCII in one Unicode form (NFC), without invisible characters at their edges.

    macOS writes "Zürich" decomposed (u + combining diaeresis), Windows composed: unnormalised,
    they were two branches. ASCII cells are already so; only the others are rewritten, and a
    column is looked at only when its bytes outnumber its characters.
    """
    if not columns or frame.height == 0:
        return frame
    wide = frame.select(
        (pl.col(name).str.len_bytes().sum() != pl.col(name).str.len_chars().sum()).alias(name) for name in columns
    ).row(0)
    tidied = []
    for name in (name for name, flagged in zip(columns, wide, strict=True) if flagged):
        values = frame[name]
        positions = (values.str.len_bytes() != values.str.len_chars()).fill_null(False).arg_true()
        rewritten = values.gather(positions).str.normalize("NFC").str.replace_all(INVISIBLE_EDGES, "")
        tidied.append(values.clone().scatter(positions, rewritten))
    return frame.with_columns(tidied) if tidied else frame


def _columns_to_trim(frame: pl.DataFrame, columns: list[str], edge_whitespace: tuple[str, ...] | None) -> list[str]:
    """The columns where some cell starts or ends with whitespace.

    Trimming builds every string again, the costliest step of reading; looking for a few known
    characters at the edges is a quarter of that, and most columns of most files have none.
    """
    if edge_whitespace is None:
        return columns
    if not edge_whitespace or frame.height == 0:
        return []
    flags = frame.select(
        pl.any_horizontal(
            pl.col(name).str.starts_with(char) | pl.col(name).str.ends_with(char) for char in edge_whitespace
        )
        .any()
        .alias(name)
        for name in columns
    ).row(0)
    return [name for name, flagged in zip(columns, flags, strict=True) if flagged]


def _edge_whitespace(block: bytes, quote: bytes | None) -> tuple[str, ...] | None:
    """The whitespace characters that can be at the edge of a cell of this CSV block, or None when
    it may hold any (text beyond ASCII can hold no-break and other Unicode spaces).

    Only characters present in the block can be at an edge; a newline only inside quotes.
    Single-byte searches are fast: about a millisecond per character for a block of 30 MB.
    """
    if not block.isascii():
        return None
    present = [char for char in ASCII_WHITESPACE if char.encode() in block]
    if quote is not None and quote in block:
        present.append("\n")
    return tuple(present)


def _frames_rebatch(frames: Iterator[pl.DataFrame], batch_rows: int) -> Iterator[pl.DataFrame]:
    """Exactly `batch_rows` rows per batch whatever the reader's own block sizes (last one shorter),
    except that a batch also ends where the column types change (a CSV block read as text amid
    typed ones: TypedColumns), since one batch has one type per column."""
    pending: list[pl.DataFrame] = []
    pending_rows = 0
    for frame in frames:
        if pending and frame.schema != pending[0].schema:
            yield pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]
            pending, pending_rows = [], 0
        pending.append(frame)
        pending_rows += frame.height
        while pending_rows >= batch_rows:
            merged = pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]
            yield merged.slice(0, batch_rows)
            rest = merged.slice(batch_rows)
            pending, pending_rows = ([rest] if rest.height else []), rest.height
            del merged
    if pending_rows:
        yield pl.concat(pending, rechunk=False) if len(pending) > 1 else pending[0]


# --- text: encoding ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextEncoding:
    name: str  # reported in DetectedSource.encoding
    codec: str  # Python codec for the bytes after the BOM
    bom_length: int


def _text_encoding_detect(path: Path, head: bytes, label: str) -> _TextEncoding:
    for bom, name in BOMS:
        if head.startswith(bom):
            codec = "utf-8" if name == "utf-8-sig" else name
            return _TextEncoding(name, codec, len(bom))
    utf16 = _utf16_without_bom(head)
    if utf16:
        return _TextEncoding(utf16, utf16, 0)
    _binary_refuse(head, label)
    utf8_valid, cp1252_undefined = _bytes_scan(path)
    if utf8_valid:
        return _TextEncoding("utf-8", "utf-8", 0)
    high = sum(1 for byte in head if byte >= 0x80)
    if high > HIGH_BYTES_MAX_RATIO * len(head):
        raise _undecodable(label, "it is neither UTF-8 nor a Western European (Windows-1252/Latin-1) text")
    name = "latin-1" if cp1252_undefined else "cp1252"
    return _TextEncoding(name, name, 0)


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 without a BOM shows as a NUL byte beside almost every ASCII character."""
    sample = head[: 4096 - 4096 % 2]
    if len(sample) < 4:
        return None
    even_nul = sample[0::2].count(0) / (len(sample) // 2)
    odd_nul = sample[1::2].count(0) / (len(sample) // 2)
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be"
    return None


def _binary_refuse(head: bytes, label: str) -> None:
    """Images, PDFs, archives and other binaries are not sales tables (415, not a decode error)."""
    if head.startswith(MAGIC_OTHER_BINARY) or b"\x00" in head:
        raise _unsupported(label, "it is a binary file, not a table")
    controls = sum(head.count(byte) for byte in CONTROL_BYTES)
    if controls > CONTROL_BYTES_MAX_RATIO * len(head):
        raise _unsupported(label, "it is a binary file, not a table")


def _control_characters(text: str) -> int:
    """Characters no table contains (NUL, bell, escape…), also after a UTF-16 decode."""
    return sum(text.count(chr(code)) for code in CONTROL_BYTES)


def _bytes_scan(path: Path) -> tuple[bool, bool]:
    """(valid UTF-8, holds a byte cp1252 leaves undefined) over the whole file, in bounded memory.

    The whole file is checked because one Latin-1 byte deep inside a UTF-8-looking file would
    otherwise fail the read half-way through.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8_valid, undefined = True, False
    with path.open("rb") as handle:
        while chunk := handle.read(SCAN_CHUNK_BYTES):
            if chunk.isascii() and not decoder.getstate()[0]:
                continue
            if utf8_valid:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8_valid = False
            undefined = undefined or any(byte in chunk for byte in CP1252_UNDEFINED)
            if not utf8_valid and undefined:
                break
    if utf8_valid:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_valid = False
    return utf8_valid, undefined


def _text_sample(path: Path, encoding: _TextEncoding, label: str) -> tuple[str, bool]:
    """The first SNIFF_BYTES decoded, and whether that is the whole file."""
    with path.open("rb") as handle:
        handle.seek(encoding.bom_length)
        raw = handle.read(SNIFF_BYTES)
        at_eof = not handle.read(1)
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    try:
        text = decoder.decode(raw, final=at_eof)
    except UnicodeDecodeError as exc:
        raise _undecodable(label, f"it is not valid {encoding.name}") from exc
    return text, at_eof


@contextmanager
def _utf8_source(path: Path, detected: DetectedSource) -> Iterator[tuple[Path, int]]:
    """A UTF-8 file with "\\n" newlines that Polars can read, and where its text starts.

    UTF-8 files are read in place; other encodings (and old Mac "\\r" newlines) are transcoded
    to a temporary file in streaming chunks, removed afterwards.
    """
    head = _head_read(path, 64 << 10)
    encoding = _text_encoding_for(detected.encoding, head)
    cr_only = _newlines_are_cr(head, encoding)
    if encoding.codec == "utf-8" and not cr_only:
        yield path, encoding.bom_length
        return
    descriptor, temporary = tempfile.mkstemp(prefix="ingest-", suffix=".csv")
    try:
        with os.fdopen(descriptor, "wb") as target:
            _transcode(path, target, encoding, cr_only=cr_only)
        yield Path(temporary), 0
    finally:
        Path(temporary).unlink(missing_ok=True)


def _text_encoding_for(name: str | None, head: bytes) -> _TextEncoding:
    bom_length = next((len(bom) for bom, bom_name in BOMS if bom_name == name and head.startswith(bom)), 0)
    codec = {"utf-8-sig": "utf-8", None: "utf-8"}.get(name, name)
    return _TextEncoding(name or "utf-8", codec, bom_length)


def _newlines_are_cr(head: bytes, encoding: _TextEncoding) -> bool:
    text = head[encoding.bom_length :].decode(encoding.codec, errors="ignore")
    return "\r" in text and "\n" not in text


def _transcode(path: Path, target: io.BufferedWriter, encoding: _TextEncoding, *, cr_only: bool) -> None:
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    with path.open("rb") as source:
        source.seek(encoding.bom_length)
        try:
            while chunk := source.read(SCAN_CHUNK_BYTES // 4):
                text = decoder.decode(chunk)
                target.write((text.replace("\r", "\n") if cr_only else text).encode("utf-8"))
            target.write(decoder.decode(b"", final=True).encode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _undecodable(path.name, f"it is not valid {encoding.name} (byte {exc.start})") from exc


# --- text: CSV detection -------------------------------------------------------------------------


def _text_detect(path: Path, head: bytes, *, label: str, header_row: int | None) -> DetectedSource:
    encoding = _text_encoding_detect(path, head, label)
    text, at_eof = _text_sample(path, encoding, label)
    if _control_characters(text) > CONTROL_BYTES_MAX_RATIO * len(text):
        raise _unsupported(label, "it is a binary file, not a table")
    if not text.strip():
        if at_eof:
            raise IngestionError(errors.EMPTY_FILE, f"'{label}' holds no data (only blank space).")
        raise _unsupported(label, "it starts with more than 1 MB of blank space")
    if _MARKUP_START.match(text):
        raise _unsupported(label, "it is a web page or XML document, not a table (save it from Excel as .xlsx)")
    if _JSON_START.match(text):
        raise _unsupported(label, "it is a JSON document, not a table (export the data as CSV or Excel instead)")
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    if not at_eof:
        # The sample ends mid-record; parse whole records only.
        text = text[: text.rfind("\n") + 1] or text
    delimiter, records = _delimiter_sniff(text)
    quote_char = _quote_char_detect(text, delimiter)
    return _csv_layout(
        records,
        encoding=encoding.name,
        delimiter=delimiter,
        quote_char=quote_char,
        at_eof=at_eof,
        label=label,
        header_row=header_row,
    )


def _csv_records(text: str, delimiter: str) -> list[list[str]] | None:
    """The sample's records (blank lines are []); None when it does not parse with this delimiter."""
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
        return [row for _, row in zip(range(SNIFF_RECORDS), reader, strict=False)]
    except csv.Error:
        return None


def _delimiter_sniff(text: str) -> tuple[str, list[list[str]]]:
    """The delimiter whose rows most consistently split into the same number (>1) of fields.

    Quoted fields are honoured (csv module), so commas or newlines inside quotes do not count.
    Ties go to the header that fits the schema best, then to more columns.
    """
    best: tuple[tuple[float, int, int], str, list[list[str]]] | None = None
    fallback: list[list[str]] = []
    for delimiter in DELIMITERS:
        records = _csv_records(text, delimiter)
        if records is None:
            continue
        fallback = fallback or records
        rows = [row for row in records if not _row_is_blank(row)]
        if not rows:
            continue
        width, count = Counter(len(row) for row in rows).most_common(1)[0]
        if width < 2:
            continue
        fit = max(header_fit_score([cell.strip() for cell in row]) for row in rows[:HEADER_SEARCH_ROWS])
        key = (round(count / len(rows), 2), fit, width)
        if best is None or key > best[0]:
            best = (key, delimiter, records)
    if best is None:
        return ",", fallback
    return best[1], best[2]


def _quote_char_detect(text: str, delimiter: str) -> str | None:
    """'"' unless the file has quotes only inside values (12" pizza), which must stay literal."""
    if '"' not in text:
        return '"'
    starts = re.compile(rf'(?:^|{re.escape(delimiter)})[ ]*"', re.MULTILINE)
    return '"' if starts.search(text) else None


def _csv_layout(
    records: list[list[str]],
    *,
    encoding: str,
    delimiter: str,
    quote_char: str | None,
    at_eof: bool,
    label: str,
    header_row: int | None,
) -> DetectedSource:
    rows: list[list[str | None]] = list(records)
    data_widths = Counter(len(row) for row in rows if not _row_is_blank(row))
    modal_width = data_widths.most_common(1)[0][0] if data_widths else 0
    if header_row is not None:
        index = _header_index_override(rows, header_row, label)
    else:
        index = _header_index_choose(rows, width=modal_width)
    if index is None:
        raise IngestionError(errors.EMPTY_FILE, f"'{label}' holds no data.")
    header, data = rows[index], rows[index + 1 :]
    width = _width_trim(header, data, max(len(header), modal_width))
    cells = [*header[:width], *[""] * (width - len(header))]
    columns = columns_name(cells)
    decimal_comma, decimal_note = decimal_convention_choose(decimal_votes_of_rows(data), delimiter=delimiter)
    if at_eof and all(_row_is_blank(row) for row in data):
        raise IngestionError(errors.HEADER_ONLY, f"'{label}' has a header row but no data rows.")
    return DetectedSource(
        format="csv",
        encoding=encoding,
        delimiter=delimiter,
        decimal_comma=decimal_comma,
        decimal_note=decimal_note,
        sheet=None,
        header_row=index + 1,
        columns=columns,
        sample_rows=_sample_rows_make(columns, data),
        quote_char=quote_char,
        repeated_columns=columns_repeated(cells, columns),
    )


# --- text: CSV reading ---------------------------------------------------------------------------


def _block_bytes(batch_rows: int) -> int:
    return min(max(batch_rows * BLOCK_BYTES_PER_ROW, BLOCK_BYTES_MIN), BLOCK_BYTES_MAX)


def _csv_frames(
    path: Path, detected: DetectedSource, *, block_bytes: int, typed: TypedColumns | None = None
) -> Iterator[pl.DataFrame]:
    """One normalised frame per block of the file."""
    quote = detected.quote_char.encode() if detected.quote_char else None
    typed_reader = _TypedBlocks(detected, typed) if typed and typed.dtypes else None
    with _utf8_source(path, detected) as (source, start), source.open("rb") as handle:
        handle.seek(_offset_after_records(handle, start, detected.header_row or 1, quote))
        next_row = (detected.header_row or 1) + 1
        for skipped, block in _csv_blocks(handle, block_bytes, quote):
            next_row += skipped
            frame = typed_reader.parse(block) if typed_reader else None
            if frame is None:
                frame = _csv_block_parse(block, detected, first_row=next_row)
            edge_whitespace = _edge_whitespace(block, quote)
            del block  # drop each stage as soon as the next exists: peak memory is about one block
            height = frame.height
            yield _frame_normalize(frame, detected.columns, next_row, edge_whitespace=edge_whitespace)
            del frame
            next_row += height


def _csv_column_parts(path: Path, detected: DetectedSource, column: str) -> Iterator[pl.Series]:
    """`column` of every block, as source_read_batches gives it, at a fraction of the cost.

    Each block is parsed for that column alone and only it is trimmed. A block where the column
    has an empty cell is read whole instead, so that blank rows are dropped exactly as in a full
    read (a blank row is empty in every column, so a block without empty cells has none).
    """
    quote = detected.quote_char.encode() if detected.quote_char else None
    position = detected.columns.index(column)
    with _utf8_source(path, detected) as (source, start), source.open("rb") as handle:
        handle.seek(_offset_after_records(handle, start, detected.header_row or 1, quote))
        next_row = (detected.header_row or 1) + 1
        for skipped, block in _csv_blocks(handle, _block_bytes(COLUMN_PART_ROWS), quote):
            next_row += skipped
            values = (
                _csv_block_parse(block, detected, first_row=next_row, positions=[position])
                .to_series()
                .str.strip_chars()
            )
            values = pl.select(pl.when(pl.lit(values).str.len_bytes() > 0).then(pl.lit(values))).to_series()
            rows = len(values)
            if values.null_count():
                frame = _csv_block_parse(block, detected, first_row=next_row)
                rows = frame.height
                values = _frame_normalize(frame, detected.columns, next_row)[column]
            next_row += rows
            yield values.alias(column)


class _TypedBlocks:
    """Blocks read with the typed columns as numbers, or None for a block to read as strings.

    A block refused costs a second parse, so after a few refused in a row (a file whose number
    columns are written with currency signs, say) the rest of the file is read as strings.
    """

    REFUSALS_BEFORE_GIVING_UP = 3

    def __init__(self, detected: DetectedSource, typed: TypedColumns) -> None:
        self.detected = detected
        self.accept = typed.accept
        self.overrides = {
            f"c{position}": typed.dtypes[name] for position, name in enumerate(detected.columns) if name in typed.dtypes
        }
        self.refused_in_a_row = 0

    def parse(self, block: bytes) -> pl.DataFrame | None:
        if self.refused_in_a_row >= self.REFUSALS_BEFORE_GIVING_UP:
            return None
        try:
            frame = _csv_block_read(block, self.detected, schema_overrides=self.overrides)
            if not self.accept(frame.rename(self._names(frame))):
                frame = None
        except pl.exceptions.PolarsError:  # a cell that is not a plain number, or a broken block
            frame = None
        self.refused_in_a_row = 0 if frame is not None else self.refused_in_a_row + 1
        return frame

    def _names(self, frame: pl.DataFrame) -> dict[str, str]:
        return {
            f"c{position}": name
            for position, name in enumerate(self.detected.columns)
            if f"c{position}" in frame.columns
        }


def _offset_after_records(handle: io.BufferedReader, start: int, count: int, quote: bytes | None) -> int:
    """Byte offset just after the first `count` records: newlines inside quotes do not end one."""
    handle.seek(start)
    chunk_start, inside, pending = start, False, count
    while chunk := handle.read(SNIFF_BYTES):
        position = 0
        while pending:
            newline = chunk.find(b"\n", position)
            end = len(chunk) if newline < 0 else newline
            if quote and chunk.count(quote, position, end) % 2:
                inside = not inside
            if newline < 0:
                break
            position = newline + 1
            if not inside:
                pending -= 1
        if not pending:
            return chunk_start + position
        chunk_start += len(chunk)
    return chunk_start


def _record_boundary(buffer: bytes, quote: bytes | None) -> int:
    """Offset just after the last complete record in `buffer` (which starts at a record), or -1.

    A quote toggles "inside a field", as in RFC 4180 (an escaped quote is doubled, so it toggles
    twice) and as Polars itself splits files: a newline after an odd number of quotes is data.
    """
    end = buffer.rfind(b"\n")
    if end < 0 or quote is None:
        return end + 1 if end >= 0 else -1
    quotes = buffer.count(quote, 0, end)
    while quotes % 2:
        previous = buffer.rfind(b"\n", 0, end)
        if previous < 0:
            return -1
        quotes -= buffer.count(quote, previous, end)
        end = previous
    return end + 1


def _csv_blocks(handle: io.BufferedReader, block_bytes: int, quote: bytes | None) -> Iterator[tuple[int, bytes]]:
    """The rest of the file in blocks that end on record boundaries (the last one may not), each
    with the number of empty lines skipped just before it (see `_empty_runs_cut`)."""
    skipped = 0
    for block in _csv_blocks_whole(handle, block_bytes, quote):
        pieces = _empty_runs_cut(block, quote)
        del block  # held no longer than its pieces: memory is about one block, as the reader's is
        for run, piece in pieces:
            skipped += run
            if piece:
                yield skipped, piece
                skipped = 0
            del piece


def _csv_blocks_whole(handle: io.BufferedReader, block_bytes: int, quote: bytes | None) -> Iterator[bytes]:
    carry = b""
    while data := handle.read(block_bytes):
        buffer = carry + data if carry else data
        del data
        cut = _record_boundary(buffer, quote)
        if cut < 0:
            if len(buffer) > RECORD_BYTES_MAX:
                raise IngestionError(
                    errors.UNDECODABLE_TEXT,
                    "A quoted value never ends (more than 64 MB without a closing quote); check the file's quotes.",
                )
            carry = buffer
            continue
        carry = buffer[cut:]
        block, buffer = buffer[:cut], b""
        yield block
        del block
    if carry:
        yield carry


def _empty_runs_cut(block: bytes, quote: bytes | None) -> Iterator[tuple[int, bytes]]:
    """The block (which starts at a record) in pieces without its runs of EMPTY_RUN_LINES empty
    lines or more: (empty lines cut just before the piece, piece), the last piece maybe empty.

    A run inside a quoted value is data and stays. Shorter runs (a double-spaced file) are parsed
    as before: each costs at most a row per byte, like a row of bare delimiters.
    """
    start, cut, search = 0, 0, 0
    while (found := _empty_run_find(block, search)) >= 0:
        run_start, run_end = _empty_run_bounds(block, found, piece_start=start)
        search = run_end
        if quote is not None and block.count(quote, start, run_start) % 2:
            continue  # inside a quoted value
        yield cut, block[start:run_start]
        start, cut = run_end, block.count(b"\n", run_start, run_end)
    yield cut, block[start:]


def _empty_run_find(block: bytes, position: int) -> int:
    """Where the next EMPTY_RUN_LINES line breaks in a row start from `position`, or -1 (two fast searches)."""
    found = [index for index in (block.find(start, position) for start in _EMPTY_RUN_STARTS) if index >= 0]
    return min(found, default=-1)


def _empty_run_bounds(block: bytes, found: int, *, piece_start: int) -> tuple[int, int]:
    """The empty lines around the line breaks at `found`: from the start of the first to the end of
    the last. A line with text just before keeps its own line break."""
    run_start = found
    while run_start > piece_start and block[run_start - 1] in b"\r\n":
        run_start -= 1
    if run_start > piece_start:
        run_start = block.index(b"\n", run_start) + 1
    run_end = block.rindex(b"\n", found, _LINE_BREAKS.match(block, found).end()) + 1
    return run_start, run_end


def _empty_lines_count(text: bytes) -> int:
    """Lines of `text` with nothing on them after a line that has something (a CSV sample's)."""
    return sum(text.count(b"\n", *match.span()) - 1 for match in _EMPTY_LINES.finditer(text))


def _csv_block_parse(
    block: bytes, detected: DetectedSource, *, first_row: int, positions: list[int] | None = None
) -> pl.DataFrame:
    """One block as strings. A made-up header fixes the width; extra trailing fields are dropped.

    `positions` keeps only those columns (the parser still splits every field, but builds
    strings for these only)."""
    try:
        return _csv_block_read(block, detected, positions=positions)
    except pl.exceptions.PolarsError as exc:
        raise IngestionError(
            errors.UNDECODABLE_TEXT,
            f"Rows from {first_row} on cannot be split into columns ({str(exc).splitlines()[0]}); "
            "check quotes and delimiters around there.",
        ) from exc


def _csv_block_read(
    block: bytes,
    detected: DetectedSource,
    *,
    positions: list[int] | None = None,
    schema_overrides: dict[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """Polars' parse of one block, columns named c0, c1, …; strings but for `schema_overrides`."""
    delimiter = detected.delimiter or ","
    header = delimiter.join(f"c{i}" for i in range(len(detected.columns))).encode() + b"\n"
    return pl.read_csv(
        header + block,
        separator=delimiter,
        quote_char=detected.quote_char,
        has_header=True,
        infer_schema=False,
        schema_overrides=schema_overrides,
        truncate_ragged_lines=True,
        raise_if_empty=False,
        encoding="utf8",
        columns=positions,
    )


# --- Excel ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Workbook:
    path: Path
    kind: str  # "xlsx" | "xls"
    sheet_names: list[str]
    date1904: bool  # days count from 1904-01-01 (Mac Excel), not 1899-12-30


@dataclass(frozen=True)
class _Sheet:
    """A sheet's cells as text from row 1 (index = row number - 1), whether it is visible, and
    its error cells: Excel's error value ("#REF!") → [(index, column position)]."""

    frame: pl.DataFrame
    visible: bool
    errors: dict[str, list[tuple[int, int]]]

    def head(self, n_rows: int) -> "_Sheet":
        errors = {code: [cell for cell in cells if cell[0] < n_rows] for code, cells in self.errors.items()}
        return _Sheet(self.frame.head(n_rows), self.visible, {code: cells for code, cells in errors.items() if cells})


@dataclass
class _ExcelShared:
    workbooks: dict[tuple[str, int, int], _Workbook]
    # (resolved path, sheet) → the whole sheet
    sheets: dict[tuple[str, str], _Sheet]


_EXCEL_SHARED: ContextVar[_ExcelShared | None] = ContextVar("excel_shared", default=None)


@contextmanager
def excel_sheets_shared() -> Iterator[None]:
    """Within the block, each Excel sheet is parsed once and reused by every read of that file.

    Parsing is the whole cost of reading a workbook, and calamine parses the entire sheet even
    for the first rows, so detection, `source_column_parts` and `source_read_batches` of one task
    would otherwise parse it three times. The sheets are released when the block ends.
    """
    token = _EXCEL_SHARED.set(_ExcelShared(workbooks={}, sheets={}))
    try:
        yield
    finally:
        _EXCEL_SHARED.reset(token)


def _excel_open(path: Path, label: str, kind: str) -> _Workbook:
    shared = _EXCEL_SHARED.get()
    if shared is not None:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in shared.workbooks:
            shared.workbooks[key] = _excel_open_uncached(path, label, kind)
        return shared.workbooks[key]
    return _excel_open_uncached(path, label, kind)


def is_library_panic(exc: BaseException) -> bool:
    """A Rust library (calamine in fastexcel, Polars) panicked: pyo3 raises its PanicException,
    a BaseException that `except Exception` lets through (a task then stayed `running`)."""
    return type(exc).__name__ == "PanicException" and not isinstance(exc, Exception)


@contextmanager
def panics_as_errors() -> Iterator[None]:
    """Within the block, a library panic is raised again as a RuntimeError, so that the usual
    `except Exception` handling (a refusal, a failed task) applies to it."""
    try:
        yield
    except BaseException as exc:
        if not is_library_panic(exc):
            raise
        raise RuntimeError(f"a native library (Polars, calamine) failed: {str(exc)[:200]}") from exc


def _excel_child_run(arguments: list[str], *, label: str, what: str) -> dict:
    """Run calamine in `excel_child.py` (see there why a process of its own) and return its
    answer. calamine's own errors come back as {"error": ...} for the caller to word; the child
    killed by a signal (an allocation calamine could not make aborts it) is an unsafe file."""
    # -I: the script's folder (ingestion/, with a selectors.py) must not shadow the stdlib.
    command = [sys.executable, "-I", str(EXCEL_CHILD_SCRIPT), str(EXCEL_CHILD_MEMORY_BYTES), *arguments]
    completed = subprocess.run(command, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    answer = _child_answer(completed.stdout)
    if answer is None and completed.returncode < 0:
        logger.warning("The Excel reader was killed by signal %s reading %s", -completed.returncode, label)
        answer = {"error": "killed", "memory": True}
    if answer is None:
        raise RuntimeError(
            f"the Excel reader process failed ({completed.returncode}): "
            f"{completed.stderr.decode('utf-8', 'replace')[-500:]}"
        )
    if answer.get("memory"):
        raise _unsafe(
            label,
            f"reading {what} needs more than {EXCEL_CHILD_MEMORY_BYTES >> 30} GB of memory. Excel sheets are "
            "read as one block from the first to the last cell, so a stray cell far from the data (at XFD1048576, "
            "say) makes the block huge: delete the cells beyond the data, or copy the data into a new workbook",
        )
    return answer


def _child_answer(stdout: bytes) -> dict | None:
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _excel_open_uncached(path: Path, label: str, kind: str) -> _Workbook:
    answer = _excel_child_run(["names", str(path)], label=label, what="the workbook")
    if "error" in answer:
        why = "it is not a readable Excel workbook"
        if kind == "xls":
            why += " (password-protected workbooks cannot be read)"
        raise _unsupported(label, why)
    return _Workbook(
        path=Path(path),
        kind=kind,
        sheet_names=[str(name) for name in answer["sheets"]],
        date1904=bool(answer.get("date1904")),
    )


def _excel_sheet_load(workbook: _Workbook, sheet: str, n_rows: int | None, label: str) -> _Sheet:
    """The sheet's first `n_rows` rows (all when None); empty rows above the data are kept."""
    shared = _EXCEL_SHARED.get()
    if shared is None:
        return _excel_sheet_parse(workbook, sheet, n_rows, label)
    key = (str(workbook.path.resolve()), sheet)
    if key not in shared.sheets:
        shared.sheets[key] = _excel_sheet_parse(workbook, sheet, None, label)
    whole = shared.sheets[key]
    return whole if n_rows is None else whole.head(n_rows)


def _excel_sheet_parse(workbook: _Workbook, sheet: str, n_rows: int | None, label: str) -> _Sheet:
    # The sheet goes by position: names come from the workbook and may hold what argv cannot.
    index = workbook.sheet_names.index(sheet)
    with tempfile.TemporaryDirectory(prefix="sheet-") as workdir:
        out = Path(workdir) / "sheet.arrow"
        arguments = ["sheet", str(workbook.path), str(index), "all" if n_rows is None else str(n_rows), str(out)]
        answer = _excel_child_run(arguments, label=label, what=f"sheet '{sheet}'")
        if "error" in answer:
            raise _unsupported(label, f"sheet '{sheet}' cannot be read ({answer['error']})")
        frame = pl.read_ipc(out)
    errors = {code: [(row, column) for row, column in cells] for code, cells in answer.get("errors", {}).items()}
    return _Sheet(_excel_dates_text(frame, date1904=workbook.date1904), bool(answer["visible"]), errors)


def _excel_rows(workbook: _Workbook, sheet: str, n_rows: int, label: str) -> tuple[list[list[str | None]], bool]:
    loaded = _excel_sheet_load(workbook, sheet, n_rows, label)
    return [list(row) for row in loaded.frame.rows()], loaded.visible


# calamine writes every Excel date or time cell as a date-time, "2024-05-01 00:00:00"; a time of
# day is a date-time on day 0 of the workbook's date system (1899-12-30, or 12-31 as calamine
# counts 1900's fictional leap day; 1904-01-01 in a 1904 workbook).
_EXCEL_DATETIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?$"
_EXCEL_MIDNIGHT = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"
_EXCEL_TIME_OF_DAY = {
    False: r"^1899-12-3[01] (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$",
    True: r"^1904-01-01 (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$",
}


def _excel_dates_text(frame: pl.DataFrame, *, date1904: bool) -> pl.DataFrame:
    """Excel date and time cells as the text a CSV export would hold, one form per column.

    A time of day ("1899-12-31 09:15:00") becomes "09:15:00", at midnight too. A column whose
    date-times are all at midnight holds dates: "2024-05-01". Any other time in the column keeps
    every date-time whole, midnight included: a column of two forms would have one of them
    rejected, since a date column is read with one format (dates.py).
    """
    # Only a column with a ":" can hold a date-time; skipping the others halves the cost.
    dated = [
        name
        for name in frame.columns
        if frame[name].dtype != pl.String or frame[name].str.contains(":", literal=True).any()
    ]
    if not dated:
        return frame
    cells = frame.select(pl.col(dated).cast(pl.String).str.replace(_EXCEL_TIME_OF_DAY[date1904], "${1}"))
    timed = cells.select(
        (pl.col(name).str.contains(_EXCEL_DATETIME) & ~pl.col(name).str.contains(_EXCEL_MIDNIGHT)).any()
        for name in dated
    ).row(0)
    return frame.with_columns(
        cells[name] if has_time else cells[name].str.replace(_EXCEL_MIDNIGHT, "${1}")
        for name, has_time in zip(dated, timed, strict=True)
    )


def _excel_detect(path: Path, kind: str, *, label: str, sheet: str | None, header_row: int | None) -> DetectedSource:
    workbook = _excel_open(path, label, kind)
    names = workbook.sheet_names
    n_rows = max(HEADER_SEARCH_ROWS, (header_row or 0)) + SAMPLE_ROWS + 1
    alike: list[tuple[str, bool]] = []
    if sheet is not None:
        chosen = _sheet_resolve(names, sheet, label)
        rows, _ = _excel_rows(workbook, chosen, n_rows, label)
        index = _header_index_override(rows, header_row, label) if header_row else _excel_header_index(rows)
    else:
        chosen, rows, index, alike = _sheet_choose(workbook, n_rows, header_row=header_row, label=label)
    if index is None:
        raise IngestionError(errors.EMPTY_FILE, f"'{label}' has no data in any sheet.")
    header, data = rows[index], rows[index + 1 :]
    width = _width_trim(header, data, len(header))
    cells = [(cell or "") for cell in header[:width]]
    columns = columns_name(cells)
    if all(_row_is_blank(row) for row in data) and len(rows) < n_rows:
        raise IngestionError(errors.HEADER_ONLY, f"Sheet '{chosen}' of '{label}' has a header row but no data rows.")
    return DetectedSource(
        format=kind,
        encoding=None,
        delimiter=None,
        decimal_comma=decimal_convention_choose(decimal_votes_of_rows(data), delimiter=None)[0],
        sheet=chosen,
        header_row=index + 1,
        columns=columns,
        sample_rows=_sample_rows_make(columns, data),
        repeated_columns=columns_repeated(cells, columns),
        notes=(_sheets_left_out_note(chosen, alike),) if alike else (),
        date1904=workbook.date1904,
    )


def _sheets_left_out_note(chosen: str, alike: list[tuple[str, bool]]) -> str:
    """`alike`: the other sheets that have the columns a sales upload needs, and whether each is visible."""
    others = ", ".join(f"'{name}'" + ("" if visible else " (hidden)") for name, visible in alike)
    many = len(alike) > 1
    return (
        f"Only sheet '{chosen}' was loaded. Sheet{'s' if many else ''} {others} "
        f"{'have' if many else 'has'} the columns a sales upload needs too: to load "
        f"{'each' if many else 'it'}, upload the file again with the option sheet (e.g. sheet={alike[0][0]})."
    )


def _sheet_resolve(names: list[str], sheet: str, label: str) -> str:
    if sheet in names:
        return sheet
    loose = {name.strip().casefold(): name for name in names}
    if sheet.strip().casefold() in loose:
        return loose[sheet.strip().casefold()]
    raise IngestionError(
        errors.SHEET_NOT_FOUND, f"'{label}' has no sheet named '{sheet}'. Its sheets are: {', '.join(names)}."
    )


def _excel_header_index(rows: list[list[str | None]]) -> int | None:
    widths = Counter(sum(1 for cell in row if cell) for row in rows if not _row_is_blank(row))
    return _header_index_choose(rows, width=widths.most_common(1)[0][0] if widths else 0)


def _sheet_choose(
    workbook: _Workbook, n_rows: int, *, header_row: int | None, label: str
) -> tuple[str, list[list[str | None]], int | None, list[tuple[str, bool]]]:
    """The sheet to read, and the other sheets that have the columns a sales upload needs (Jan,
    Feb, Mar…, an archive), which are not read, each with whether it is visible.

    A visible sheet with every required column comes first, then a hidden one (an old copy
    the workbook's author put away); among them, and among sheets that lack a required column,
    the header that fits the schema best, then a visible sheet, then the first one.
    """
    best: tuple[tuple[bool, bool, int, bool, int], str, list[list[str | None]], int | None] | None = None
    fitting: dict[str, bool] = {}  # sheet → visible
    for position, name in enumerate(workbook.sheet_names):
        rows, visible = _excel_rows(workbook, name, n_rows, label)
        if all(_row_is_blank(row) for row in rows):
            continue
        if header_row is not None:
            if header_row > len(rows) or _row_is_blank(rows[header_row - 1]):
                continue
            index: int | None = header_row - 1
        else:
            index = _excel_header_index(rows)
        header = [(cell or "").strip() for cell in rows[index]] if index is not None else []
        fits = header_has_required(header)
        if fits:
            fitting[name] = visible
        key = (fits and visible, fits, header_fit_score(header), visible, -position)
        if best is None or key > best[0]:
            best = (key, name, rows, index)
    if best is None:
        if header_row is not None:
            _header_index_override([], header_row, label)
        raise IngestionError(errors.EMPTY_FILE, f"'{label}' has no data in any sheet.")
    alike = [(name, visible) for name, visible in fitting.items() if name != best[1]]
    return best[1], best[2], best[3], alike


def _excel_frames(path: Path, detected: DetectedSource, *, batch_rows: int) -> Iterator[pl.DataFrame]:
    if detected.format == "xlsx":
        archive_check(path)
    workbook = _excel_open(path, path.name, detected.format)
    sheet = _excel_sheet_load(workbook, detected.sheet or workbook.sheet_names[0], None, path.name)
    header_row = detected.header_row or 1
    width = len(detected.columns)
    data = sheet.frame.slice(header_row)
    if data.width < width:
        data = data.with_columns(pl.lit(None, dtype=pl.String).alias(f"__pad_{i}") for i in range(width - data.width))
    cell_errors = _cell_errors_frame(sheet.errors, detected.columns, first=header_row, height=data.height)
    del sheet
    for offset in range(0, data.height, batch_rows):
        yield _frame_normalize(
            data.slice(offset, batch_rows),
            detected.columns,
            header_row + 1 + offset,
            cell_errors=cell_errors.slice(offset, batch_rows) if cell_errors.width else None,
        )


def cell_error_column(column: str) -> str:
    """The batch column naming the Excel error value ("#REF!") of each cell of `column` that
    holds one (null elsewhere; the cell itself is null). Only there when the column has one."""
    return f"__cell_error {column}"


def _cell_errors_frame(
    errors_found: dict[str, list[tuple[int, int]]], columns: list[str], *, first: int, height: int
) -> pl.DataFrame:
    """The `cell_error_column`s of the data rows (sheet rows from index `first`, `height` of them)."""
    cells: dict[int, list[str | None]] = {}
    for code, positions in errors_found.items():
        for row, column in positions:
            if first <= row < first + height and column < len(columns):
                cells.setdefault(column, [None] * height)[row - first] = code
    named = sorted((cell_error_column(columns[column]), codes) for column, codes in cells.items())
    return pl.DataFrame([pl.Series(name, codes, dtype=pl.String) for name, codes in named])


_XLSX_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_XLSX_RELATIONSHIP = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PACKAGE_RELATIONSHIP = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"


def excel_formula_without_value(path: Path, *, sheet: str | None, after_row: int) -> tuple[str, str] | None:
    """The first cell of an .xlsx sheet below row `after_row` that holds a formula but no computed
    value, as (reference, formula), or None.

    A program that writes formulas (openpyxl, say) leaves their results to the spreadsheet that
    opens the file; calamine reads such cells as empty and cannot tell why, so the sheet's XML
    is read here, streamed. ElementTree fetches no external entity and the expat it runs on
    (≥ 2.4.1) refuses entity expansion bombs, hence the `noqa: S314`; the archive itself was
    checked for zip bombs before anything was inflated.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            member = _xlsx_sheet_member(archive, sheet)
            if member is None:
                return None
            with archive.open(member) as stream:
                return _formula_without_value_find(stream, after_row)
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError, ValueError):
        return None  # the question is only asked to explain empty cells: no answer is no explanation


def _xlsx_sheet_member(archive: zipfile.ZipFile, sheet: str | None) -> str | None:
    """The archive member holding the sheet named `sheet` (the first sheet when None)."""
    sheets = ElementTree.fromstring(archive.read("xl/workbook.xml")).iter(f"{_XLSX_MAIN}sheet")  # noqa: S314
    chosen = next((item for item in sheets if sheet is None or item.get("name") == sheet), None)
    if chosen is None:
        return None
    relationships = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    relations = relationships.iter(_PACKAGE_RELATIONSHIP)
    target = next((item.get("Target") for item in relations if item.get("Id") == chosen.get(_XLSX_RELATIONSHIP)), None)
    if not target:
        return None
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def _formula_without_value_find(stream: io.IOBase, after_row: int) -> tuple[str, str] | None:
    row = 0
    for event, element in ElementTree.iterparse(stream, events=("start", "end")):  # noqa: S314
        if event == "start":
            if element.tag == f"{_XLSX_MAIN}row":
                row = int(element.get("r") or row + 1)
            continue
        if element.tag == f"{_XLSX_MAIN}c":
            formula, value = element.find(f"{_XLSX_MAIN}f"), element.find(f"{_XLSX_MAIN}v")
            if formula is not None and (value is None or not value.text) and row > after_row:
                return element.get("r") or f"row {row}", formula.text or ""
        elif element.tag == f"{_XLSX_MAIN}row":
            element.clear()  # keep memory flat over a large sheet
    return None


# --- Parquet -------------------------------------------------------------------------------------


def _parquet_open(path: Path, label: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise _unsupported(label, "it is a damaged Parquet file") from exc


def _parquet_detect(path: Path, *, label: str) -> DetectedSource:
    parquet = _parquet_open(path, label)
    names = parquet.schema_arrow.names
    if not names:
        raise IngestionError(errors.EMPTY_FILE, f"'{label}' has no columns.")
    if parquet.metadata.num_rows == 0:
        raise IngestionError(errors.HEADER_ONLY, f"'{label}' has columns but no rows.")
    columns = columns_name(names)
    repeated = columns_repeated(names, columns)
    nested = {
        column: _nested_kind(item.type)
        for column, item in zip(columns, parquet.schema_arrow, strict=True)
        if pa.types.is_nested(item.type)
    }
    first = next(parquet.iter_batches(batch_size=SAMPLE_ROWS))
    frame = _parquet_text(_parquet_batch_frame(first, label), columns, label)
    return DetectedSource(
        format="parquet",
        encoding=None,
        delimiter=None,
        decimal_comma=False,
        sheet=None,
        header_row=None,
        columns=columns,
        sample_rows=[
            {name: (value or "").strip() for name, value in row.items()} for row in frame.head(SAMPLE_ROWS).to_dicts()
        ],
        repeated_columns=repeated,
        nested_columns=nested,
    )


def _nested_kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_struct(arrow_type):
        return "records"
    return "maps" if pa.types.is_map(arrow_type) else "lists"


def nested_column_refuse(detected: DetectedSource, fields: Mapping[str, str]) -> None:
    """Refuse a canonical field read from a column of lists or records (`fields`: field → column):
    a product line or an amount is one value, and the JSON text of several is none of them."""
    for name, column in fields.items():
        if column in detected.nested_columns:
            raise IngestionError(
                errors.INVALID_MAPPING,
                f"Column '{column}' holds {detected.nested_columns[column]} (several values in each row), so it "
                f"cannot be read as {name}. Map another column to {name} with the option mapping, or leave this "
                f'one out with {{"{column}": ""}}; other columns of lists are kept as JSON text.',
            )


def _parquet_frames(path: Path, detected: DetectedSource, *, batch_rows: int) -> Iterator[pl.DataFrame]:
    parquet = _parquet_open(path, path.name)
    first_row = 1
    for record_batch in parquet.iter_batches(batch_size=batch_rows):
        frame = _parquet_text(_parquet_batch_frame(record_batch, path.name), detected.columns, path.name)
        yield _frame_normalize(frame, detected.columns, first_row)
        first_row += frame.height


def _parquet_batch_frame(batch: pa.RecordBatch, label: str) -> pl.DataFrame:
    """A record batch as a Polars frame; its columns by position (a file may repeat a name)."""
    renamed = batch.rename_columns([f"c{i}" for i in range(batch.num_columns)])
    try:
        with panics_as_errors():
            return pl.from_arrow(renamed)
    except Exception as exc:  # Arrow types Polars cannot take (e.g. decimal256)
        raise _unsupported(label, f"one of its column types cannot be read ({str(exc)[:200]})") from exc


def _parquet_text(frame: pl.DataFrame, columns: list[str], label: str) -> pl.DataFrame:
    """Typed Parquet columns as the strings a CSV export would hold; dates in ISO form."""
    texts = []
    for i, name in enumerate(columns):
        try:
            texts.append(_series_text(frame.to_series(i)).alias(name))
        except pl.exceptions.PolarsError as exc:  # e.g. binary that is not UTF-8, durations
            raise _unsupported(label, f"column '{name}' ({frame.to_series(i).dtype}) cannot be read as text") from exc
    return pl.DataFrame(texts)


def _series_text(series: pl.Series) -> pl.Series:
    dtype = series.dtype
    if dtype == pl.String:
        return series
    if dtype == pl.Date:
        return series.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return series.dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    if dtype == pl.Time:
        return series.dt.to_string("%H:%M:%S%.f")
    if dtype.is_nested():
        # JSON, as any program reads it back: str() of a list gave Polars' own printout of it.
        values = (
            None if value is None else json.dumps(value, default=str, ensure_ascii=False) for value in series.to_list()
        )
        return pl.Series(series.name, values, dtype=pl.String)
    if dtype == pl.Object:
        return series.map_elements(str, return_dtype=pl.String, skip_nulls=True)
    return series.cast(pl.String, strict=False)
