"""A task's files as downloads (its error report, its raw upload), the same from the REST API and
the upload pages."""

import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from django.core.files.storage import default_storage
from django.http import FileResponse

from ingestion.models import IngestionTask
from sales_analytics.csvsafe import CSV_CONTENT_TYPE, csv_bytes_with_bom

# What an ASCII filename="…" keeps as it is: no quote, backslash or control character that could
# end the quoted string or the header, and nothing a client's file system refuses.
_FALLBACK_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()\[\]+,=@-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _ascii_fallback(part: str) -> str:
    """`part` in ASCII: accents dropped from their letters (é → e), anything else unsafe as `_`."""
    folded = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode("ascii")
    return _FALLBACK_UNSAFE.sub("_", folded).strip(" ._")


def attachment_disposition(filename: str) -> str:
    """Content-Disposition for a download saved as `filename` (RFC 6266): a sanitised ASCII
    `filename` every client reads and, when that is not the name itself, the exact name in
    `filename*` (UTF-8, percent-encoded), which browsers prefer."""
    # The last path component, without leading dots: no folder and no hidden file on the client's side.
    name = _CONTROL.sub("", re.split(r"[\\/]", filename)[-1]).strip().lstrip(".") or "download"
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    fallback = (_ascii_fallback(stem) or "download") + (f".{_ascii_fallback(suffix)}" if dot else "")
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def error_report_response(*, task: IngestionTask) -> FileResponse:
    """The stored report with a charset and a BOM, like every CSV export: reports stored before
    they were written with a BOM get one on the way out."""
    stream = csv_bytes_with_bom(default_storage.open(task.error_report_key, "rb"))
    response = FileResponse(stream, content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = attachment_disposition(f"errors-{task.pk}.csv")
    return response


def raw_file_response(*, task: IngestionTask) -> FileResponse:
    """The untouched upload under the name it was uploaded with (it is stored under a cleaned one)."""
    response = FileResponse(default_storage.open(task.raw_key, "rb"), as_attachment=True)
    response["Content-Disposition"] = attachment_disposition(task.original_filename or Path(task.raw_key).name)
    return response
