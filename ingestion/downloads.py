"""A task's error report as a download, the same from the REST API and the upload pages."""

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.utils.http import content_disposition_header

from ingestion.models import IngestionTask
from sales_analytics.csvsafe import CSV_CONTENT_TYPE, csv_bytes_with_bom


def error_report_response(*, task: IngestionTask) -> FileResponse:
    """The stored report with a charset and a BOM, like every CSV export: reports stored before
    they were written with a BOM get one on the way out."""
    stream = csv_bytes_with_bom(default_storage.open(task.error_report_key, "rb"))
    response = FileResponse(stream, content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, f"errors-{task.pk}.csv")
    return response
