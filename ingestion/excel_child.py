"""calamine (through fastexcel) run in a process of its own, for `ingestion.readers`.

calamine builds a sheet as one dense block from its first to its last cell, and aborts the
whole process when that block cannot be allocated: a single stray cell at XFD1048576 asks for
512 GiB. Run here, such a workbook ends this process only, under an address-space limit that
also stops a block that would fit but crowd out everything else; the caller refuses the file.

Usage (prints one JSON object; exit 0 with the result, 2 with {"error": message, "memory": bool}):
    excel_child.py MEMORY_BYTES names PATH
    excel_child.py MEMORY_BYTES sheet PATH SHEET_INDEX N_ROWS|all OUT.arrow

Standalone on purpose (no Django, nothing from the project): it starts in ~0.05 s.
"""

import json
import resource
import sys

import fastexcel
import pyarrow as pa
import pyarrow.ipc

EXIT_REFUSED = 2


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
    print(json.dumps({"sheets": list(fastexcel.read_excel(path).sheet_names)}))


def sheet_write(path: str, index: int, n_rows: int | None, out: str) -> None:
    """The sheet's cells as text from row 1 (no header row), as an Arrow IPC file."""
    loaded = fastexcel.read_excel(path).load_sheet(index, header_row=None, skip_rows=0, n_rows=n_rows, dtypes="string")
    table = pa.Table.from_batches([loaded.to_arrow()])
    with pa.ipc.new_file(out, table.schema) as writer:
        writer.write_table(table)
    print(json.dumps({"visible": str(getattr(loaded, "visible", "visible")) == "visible"}))


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
