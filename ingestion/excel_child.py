"""calamine (through fastexcel) run in a process of its own, for `ingestion.readers`.

calamine builds a sheet as one dense block from its first to its last cell, and aborts the
whole process when that block cannot be allocated: a single stray cell at XFD1048576 asks for
512 GiB. Run here, such a workbook ends this process only, under an address-space limit that
also stops a block that would fit but crowd out everything else; the caller refuses the file.

Usage (prints one JSON object; exit 0 with the result, 2 with {"error": message, "memory": bool}):
    excel_child.py MEMORY_BYTES names PATH
        → {"sheets": [name, …], "date1904": bool}
    excel_child.py MEMORY_BYTES sheet PATH SHEET_INDEX N_ROWS|all OUT.arrow
        → {"visible": bool, "errors": {"#REF!": [[row, column], …], …}} (0-based, as in OUT.arrow)

Standalone on purpose (no Django, nothing from the project): it starts in ~0.05 s.
"""

import json
import mmap
import re
import resource
import struct
import sys
import zipfile
from array import array
from collections.abc import Callable
from xml.etree import ElementTree

import fastexcel
import pyarrow as pa
import pyarrow.ipc

EXIT_REFUSED = 2

# calamine's names of Excel's error values (CellErrorType) → what Excel shows in the cell.
EXCEL_ERRORS = {
    "Div0": "#DIV/0!",
    "NA": "#N/A",
    "Name": "#NAME?",
    "Null": "#NULL!",
    "Num": "#NUM!",
    "Ref": "#REF!",
    "Value": "#VALUE!",
    "GettingData": "#GETTING_DATA",
}
_CELL_ERROR = re.compile(r"'Error\((\w+)\)'")

_XLSX_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE2_LAST_SECTOR = 0xFFFFFFFA  # sector numbers from here on mark a chain's end or free space
_BIFF_DATEMODE, _BIFF_EOF = 0x0022, 0x000A
# DATEMODE sits near the start of the globals, before fonts, formats and shared strings.
_BIFF_GLOBALS_READ = 1 << 20


def memory_limit_set(*, extra_bytes: int) -> None:
    """Cap the address space at what the imports use plus `extra_bytes`."""
    with open("/proc/self/status", encoding="ascii") as status:
        used_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = used_kb * 1024 + extra_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def sheet_names_print(path: str) -> None:
    names = list(fastexcel.read_excel(path).sheet_names)
    print(json.dumps({"sheets": names, "date1904": workbook_date1904(path)}))


def sheet_write(path: str, index: int, n_rows: int | None, out: str) -> None:
    """The sheet's cells as text from row 1 (no header row), as an Arrow IPC file.

    An error cell (#REF!, #N/A…) has no text: calamine leaves it empty and names it among the
    cells it could not convert, which is how it is told apart from an empty cell.
    """
    loaded = fastexcel.read_excel(path).load_sheet(index, header_row=None, skip_rows=0, n_rows=n_rows, dtypes="string")
    batch, cell_errors = loaded.to_arrow_with_errors()
    table = pa.Table.from_batches([batch])
    with pa.ipc.new_file(out, table.schema) as writer:
        writer.write_table(table)
    errors: dict[str, list[tuple[int, int]]] = {}
    for cell in cell_errors.errors if cell_errors else ():
        found = _CELL_ERROR.search(cell.detail)
        if found:
            errors.setdefault(EXCEL_ERRORS.get(found[1], f"#{found[1].upper()}"), []).append(cell.position)
    print(json.dumps({"visible": str(getattr(loaded, "visible", "visible")) == "visible", "errors": errors}))


def workbook_date1904(path: str) -> bool:
    """Whether the workbook counts days from 1904-01-01 (Mac Excel's date system) instead of 1900.

    calamine applies it to date cells but does not tell; numbers that are dates (a General
    format) need it too. A workbook that cannot say uses 1900, Excel's default.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(len(_OLE2_MAGIC)) == _OLE2_MAGIC:
                return _xls_date1904(path)
        with zipfile.ZipFile(path) as archive:
            # The caller checked the archive for bombs; expat (≥ 2.4.1) refuses entity expansion.
            workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))  # noqa: S314
        properties = workbook.find(f"{_XLSX_MAIN}workbookPr")
    except (OSError, KeyError, ValueError, IndexError, struct.error, zipfile.BadZipFile, ElementTree.ParseError):
        return False
    return properties is not None and properties.get("date1904", "0").lower() in ("1", "true")


def _xls_date1904(path: str) -> bool:
    """The DATEMODE record (1 = 1904) of the workbook globals, the first BIFF records of the
    'Workbook' (BIFF8) or 'Book' (BIFF5) stream of the OLE2 container."""
    stream = _ole2_stream_head(path, ("Workbook", "Book"), _BIFF_GLOBALS_READ)
    position = 0
    while position + 4 <= len(stream):
        kind, size = struct.unpack_from("<HH", stream, position)
        if kind == _BIFF_DATEMODE:
            return struct.unpack_from("<H", stream, position + 4)[0] == 1
        if kind == _BIFF_EOF:
            break
        position += 4 + size
    return False


def _ole2_stream_head(path: str, names: tuple[str, ...], limit: int) -> bytes:
    """The first `limit` bytes of the first stream called one of `names` in an OLE2 compound file
    (MS-CFB: a FAT of sector chains, a directory of 128-byte entries, small streams in a mini stream)."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        sector_size, mini_size = (1 << shift for shift in struct.unpack_from("<HH", data, 30))
        fat_count, directory_start = struct.unpack_from("<II", data, 44)
        mini_cutoff, mini_fat_start, _, difat_start, difat_count = struct.unpack_from("<IIIII", data, 56)

        sector = _sector_reader(data, sector_size, start=sector_size)  # the header fills the first sector
        fat_sectors = list(struct.unpack_from("<109I", data, 76))
        for _ in range(min(difat_count, len(data) // sector_size)):  # a forged chain may loop
            if difat_start >= _OLE2_LAST_SECTOR:
                break
            entries = array("I", sector(difat_start))
            fat_sectors += entries[:-1]
            difat_start = entries[-1]
        fat = array("I")
        for number in fat_sectors[:fat_count]:
            if number < _OLE2_LAST_SECTOR:
                fat.frombytes(sector(number))

        directory = _ole2_chain(directory_start, fat, sector, 1 << 24)
        for offset in range(0, len(directory) - 127, 128):
            name_bytes = struct.unpack_from("<H", directory, offset + 64)[0]
            name = directory[offset : offset + max(name_bytes - 2, 0)].decode("utf-16-le", "replace")
            if directory[offset + 66] != 2 or name not in names:  # 2: a stream
                continue
            start, size = struct.unpack_from("<II", directory, offset + 116)
            if size >= mini_cutoff:
                return _ole2_chain(start, fat, sector, min(size, limit))
            # The root entry (the first) holds the mini stream, in which small streams live.
            mini_stream = _ole2_chain(struct.unpack_from("<I", directory, 116)[0], fat, sector, 1 << 26)
            mini_fat = array("I", _ole2_chain(mini_fat_start, fat, sector, 1 << 24))
            return _ole2_chain(start, mini_fat, _sector_reader(mini_stream, mini_size, start=0), min(size, limit))
    return b""


def _sector_reader(blob: bytes, size: int, *, start: int) -> Callable[[int], bytes]:
    return lambda number: blob[start + number * size : start + (number + 1) * size]


def _ole2_chain(start: int, table: array, read: Callable[[int], bytes], limit: int) -> bytes:
    """The first `limit` bytes of the sector chain from `start` through `table` (a FAT or mini FAT)."""
    parts, total = [], 0
    for _ in range(len(table)):  # a chain visits each sector once: more steps means a forged loop
        if start >= _OLE2_LAST_SECTOR or start >= len(table) or total >= limit:
            break
        parts.append(read(start))
        total += len(parts[-1])
        start = table[start]
    return b"".join(parts)[:limit]


def main(argv: list[str]) -> int:
    memory_limit_set(extra_bytes=int(argv[1]))
    try:
        if argv[2] == "names":
            sheet_names_print(argv[3])
        else:
            sheet_write(argv[3], int(argv[4]), None if argv[5] == "all" else int(argv[5]), argv[6])
    except BaseException as exc:  # calamine raises its own types, and pyo3 panics (a BaseException)
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500], "memory": isinstance(exc, MemoryError)}))
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
