"""Every CSV export opens right in a spreadsheet program: cells it would run as formulas are
neutralised, and the text is UTF-8 that says so (a charset and a BOM: without the BOM, Excel reads
UTF-8 as the machine's legacy code page and shows accented branch names as mojibake)."""

import re
from collections.abc import Iterator
from typing import BinaryIO

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
UTF8_BOM = "\ufeff"

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# A signed number written as text ("-66.65" in an error report's value column): no formula can be
# made of digits, separators and an exponent, so it is left as the number it is.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9.,]*(?:[eE][+-]?[0-9]+)?")


def neutralize_cell(value: object) -> object:
    """Prefix text that a spreadsheet would evaluate (`=cmd|…`, `@SUM(…)`) with a quote.

    Numbers stay numbers: a negative amount is data, not a formula.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_bytes_with_bom(handle: BinaryIO, *, chunk_bytes: int = 1 << 16) -> Iterator[bytes]:
    """A stored UTF-8 CSV's bytes, starting with a BOM whether or not the file has one; the
    handle is closed once read."""
    bom = UTF8_BOM.encode("utf-8")
    with handle:
        chunk = handle.read(chunk_bytes)
        if not chunk.startswith(bom):
            yield bom
        while chunk:
            yield chunk
            chunk = handle.read(chunk_bytes)
