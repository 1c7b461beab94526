"""CSV and XLSX exports of a panel's table, with the filters written into the file."""

import csv
import datetime as dt
import io

import xlsxwriter
from django.http import HttpResponse

from dashboard.filters import PageFilters
from dashboard.panels import Panel
from dashboard.templatetags.dashboard_format import DATETIME_SHOWN, site_datetime
from sales_analytics.csvsafe import CSV_CONTENT_TYPE, UTF8_BOM, neutralize_cell

CONTENT_TYPES = {
    "csv": CSV_CONTENT_TYPE,
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _header_lines(panel: Panel, filters: PageFilters) -> list[list[str]]:
    lines = [[panel.title]]
    lines += [[f"{label}: {value}"] for label, value in filters.describe()]
    return [*lines, []]


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return site_datetime(value)
    if isinstance(value, float):
        # Sums are exact to far below a cent; drop binary-float noise like 110568.70649999996.
        return round(value, 6)
    if isinstance(value, int | str):
        return neutralize_cell(value)
    return str(value)


def _csv_text(value: object) -> object:
    return value.strftime(DATETIME_SHOWN) if isinstance(value, dt.datetime) else value


def export_csv(panel: Panel, filters: PageFilters) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([[neutralize_cell(text) for text in line] for line in _header_lines(panel, filters)])
    writer.writerow([column.label for column in panel.table.columns])
    for row in panel.table.rows:
        writer.writerow([_csv_text(_cell(row.get(column.key))) for column in panel.table.columns])
    return (UTF8_BOM + buffer.getvalue()).encode("utf-8")


def export_xlsx(panel: Panel, filters: PageFilters) -> bytes:
    buffer = io.BytesIO()
    # strings_to_formulas=False: text is never evaluated as a formula, whatever it starts with.
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
    sheet = workbook.add_worksheet(panel.title[:31])
    bold = workbook.add_format({"bold": True})
    moment = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    row_index = 0
    for line in _header_lines(panel, filters):
        for col, text in enumerate(line):
            sheet.write_string(row_index, col, str(neutralize_cell(text)))
        row_index += 1
    for col, column in enumerate(panel.table.columns):
        sheet.write_string(row_index, col, column.label, bold)
    for row in panel.table.rows:
        row_index += 1
        for col, column in enumerate(panel.table.columns):
            value = _cell(row.get(column.key))
            if isinstance(value, dt.datetime):
                sheet.write_datetime(row_index, col, value, moment)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                sheet.write_number(row_index, col, value)
            else:
                sheet.write_string(row_index, col, str(value))
    workbook.close()
    return buffer.getvalue()


def export_response(*, panel: Panel, filters: PageFilters, fmt: str, filename: str) -> HttpResponse:
    if fmt not in CONTENT_TYPES:
        return HttpResponse("Unknown export format.", status=400, content_type="text/plain")
    body = export_csv(panel, filters) if fmt == "csv" else export_xlsx(panel, filters)
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response
