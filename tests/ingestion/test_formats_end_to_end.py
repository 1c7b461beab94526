"""Every input class through the whole pipeline (upload → worker → publish → summary)."""

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from ingestion import readers
from ingestion.models import IngestionTask
from tests.ingestion import sample_files as files

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = files.sales_rows(60)
EXPECTED_REVENUE = sum(float(row[5]) for row in ROWS)
EXPECTED_UNITS = sum(int(row[3]) for row in ROWS)
DAY_FIRST = {"date_format": "%d/%m/%Y"}


def _csv(**kwargs) -> Callable[[Path], Path]:
    return lambda path: files.csv_write(path / "sales.csv", [files.SALES_HEADER, *ROWS], **kwargs)


def _quoted_newlines(path: Path) -> Path:
    rows = [files.SALES_HEADER, *ROWS]
    rows[1] = [*rows[1][:2], 'Food, "fresh"\nand frozen', *rows[1][3:]]
    return files.csv_write(path / "quoted.csv", rows)


def _xlsx_notes_first(path: Path) -> Path:
    table = [["Monthly sales export"], [], files.SALES_HEADER, *[_typed(row) for row in ROWS]]
    return files.xlsx_write(path / "book.xlsx", {"Notes": [["Read me"], ["Exported by the till"]], "Data": table})


def _xls(path: Path) -> Path:
    return files.xls_write(path / "book.xls", {"Data": [["Title"], files.SALES_HEADER, *[_typed(row) for row in ROWS]]})


def _typed(row: list[str]) -> list:
    day = dt.datetime.strptime(row[0], "%d/%m/%Y")
    return [day, row[1], row[2], int(row[3]), float(row[4]), float(row[5])]


def _parquet(path: Path) -> Path:
    import polars as pl

    frame = pl.DataFrame([_typed(row) for row in ROWS], schema=files.SALES_HEADER, orient="row")
    frame.write_parquet(path / "sales.parquet")
    return path / "sales.parquet"


CASES: dict[str, tuple[Callable[[Path], Path], dict]] = {
    "utf8": (_csv(), DAY_FIRST),
    "utf8-bom": (_csv(bom=b"\xef\xbb\xbf"), DAY_FIRST),
    "utf16-le-bom": (_csv(encoding="utf-16-le", bom=b"\xff\xfe"), DAY_FIRST),
    "utf16-be-bom": (_csv(encoding="utf-16-be", bom=b"\xfe\xff"), DAY_FIRST),
    "cp1252": (_csv(encoding="cp1252"), DAY_FIRST),
    "semicolon": (_csv(delimiter=";"), DAY_FIRST),
    "tab": (_csv(delimiter="\t"), DAY_FIRST),
    "pipe": (_csv(delimiter="|"), DAY_FIRST),
    "crlf": (_csv(newline="\r\n"), DAY_FIRST),
    "quoted-newlines": (_quoted_newlines, DAY_FIRST),
    "xlsx-notes-sheet-and-title-rows": (_xlsx_notes_first, {}),
    "xls": (_xls, {}),
    "parquet": (_parquet, {}),
}


def _upload(client, path: Path, **fields):
    handle = io.BytesIO(path.read_bytes())
    handle.name = path.name
    return client.post("/api/ingest/upload", {"file": handle, **fields})


@pytest.mark.parametrize("case", list(CASES))
def test_each_input_class_publishes_exact_totals(case: str, uploader_api, tmp_path: Path, tasks_inline) -> None:
    build, fields = CASES[case]
    response = _upload(uploader_api, build(tmp_path), **fields)
    assert response.status_code == 202, response.content
    status = uploader_api.get(response.json()["status_url"]).json()
    assert status["status"] == "succeeded", status["message"]
    assert status["rows_valid"] == len(ROWS) and status["rows_rejected"] == 0
    totals = uploader_api.get("/api/metrics/summary").json()
    assert totals["total_revenue"] == pytest.approx(EXPECTED_REVENUE, abs=1e-6)
    assert totals["units_sold"] == EXPECTED_UNITS


def test_latin1_semicolon_decimal_comma(uploader_api, tmp_path: Path, tasks_inline) -> None:
    """The file a popular BI tool loaded as one garbage column and called OK."""
    path = files.latin1_semicolon_decimal_comma(tmp_path / "export.csv")
    mapping = (
        '{"Datum": "date", "Filiale": "branch", "Kategorie": "product_line", "Menge": "quantity", '
        '"Preis": "unit_price", "Total": "revenue"}'
    )
    response = _upload(uploader_api, path, mapping=mapping, date_format="%d.%m.%Y")
    status = uploader_api.get(response.json()["status_url"]).json()
    assert status["status"] == "succeeded", status["message"]
    totals = uploader_api.get("/api/metrics/summary").json()
    assert totals["total_revenue"] == pytest.approx(37.50 + 1234.50 + 0.50)
    assert totals["units_sold"] == 104
    zurich = uploader_api.get("/api/metrics/summary?branch=Zürich").json()
    assert zurich["total_revenue"] == pytest.approx(38.0)


def test_bad_row_in_the_last_batch_is_rejected(uploader_api, tmp_path: Path, tasks_inline, settings) -> None:
    settings.INGEST_BATCH_ROWS = 100
    rows = files.sales_rows(350)
    rows[340][3] = "2.5"  # a fractional quantity on source line 342, in the fourth batch
    path = files.csv_write(tmp_path / "long.csv", [files.SALES_HEADER, *rows])
    status = uploader_api.get(_upload(uploader_api, path, **DAY_FIRST).json()["status_url"]).json()
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_total"], status["rows_rejected"]) == (350, 1)
    assert [error["row_number"] for error in status["errors"]] == [342]


def test_too_many_rejected_rows_fail_the_file(uploader_api, tmp_path: Path, tasks_inline) -> None:
    rows = files.sales_rows(10)
    for row in rows[:3]:
        row[3] = "lots"
    path = files.csv_write(tmp_path / "bad.csv", [files.SALES_HEADER, *rows])
    status = uploader_api.get(_upload(uploader_api, path, **DAY_FIRST).json()["status_url"]).json()
    assert status["status"] == "failed"
    assert "30.0%" in status["message"]
    assert status["error_report_url"]
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 0
    lenient = _upload(uploader_api, path, max_rejected_ratio="0.5", force="true", **DAY_FIRST)
    assert uploader_api.get(lenient.json()["status_url"]).json()["status"] == "succeeded"
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 7


def test_preview_publishes_nothing(uploader_api, real_file: Path) -> None:
    response = _upload_preview(uploader_api, real_file)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["detected_format"] == "csv" and body["detected_delimiter"] == ","
    assert body["proposed_mapping"]["revenue"] == "Total"
    assert body["date_format"] == "%d-%b-%Y"
    assert len(body["sample_rows"]) > 0
    assert body["validation"]["rows_checked"] == 1000
    assert body["validation"]["rows_rejected"] == 0
    assert uploader_api.get("/api/ingest/tasks").json()["count"] == 0


def test_preview_reports_ambiguous_dates_as_a_problem(uploader_api, tmp_path: Path) -> None:
    path = files.csv_write(
        tmp_path / "x.csv", [["Date", "Branch", "Product line", "Quantity", "Total"], ["01/02/19", "A", "F", "1", "2"]]
    )
    body = _upload_preview(uploader_api, path).json()
    assert [problem["code"] for problem in body["problems"]] == ["ambiguous_dates"]
    # The candidate formats come as choices (the upload page offers them as buttons); each settles it.
    choices = body["problems"][0]["choices"]
    assert sorted(choices) == ["%d/%m/%y", "%m/%d/%y"]
    for choice in choices:
        handle = io.BytesIO(path.read_bytes())
        handle.name = path.name
        settled = uploader_api.post("/api/ingest/preview", {"file": handle, "date_format": choice}).json()
        assert settled["problems"] == [] and settled["date_format"] == choice


def _upload_preview(client, path: Path):
    handle = io.BytesIO(path.read_bytes())
    handle.name = path.name
    return client.post("/api/ingest/preview", {"file": handle})


def test_date_format_of_the_first_rows_is_confirmed_by_the_whole_column(
    uploader_api, tmp_path: Path, tasks_inline, settings, monkeypatch
) -> None:
    # The first rows are ISO dates, the rest (five times as many) day-first: the whole column
    # decides, so the ISO rows are the rejected ones, exactly as if the column had been counted first.
    monkeypatch.setattr(readers, "_block_bytes", lambda batch_rows: 256)  # many small parts
    settings.INGEST_BATCH_ROWS = 20
    rows = files.sales_rows(120)
    for row in rows[:20]:
        row[0] = dt.datetime.strptime(row[0], "%d/%m/%Y").strftime("%Y-%m-%d")
    path = files.csv_write(tmp_path / "mixed.csv", [files.SALES_HEADER, *rows])
    status = uploader_api.get(_upload(uploader_api, path).json()["status_url"]).json()
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_total"], status["rows_valid"], status["rows_rejected"]) == (120, 100, 20)
    assert {error["value"] for error in status["errors"]} <= {row[0] for row in rows[:20]}
    task = IngestionTask.objects.get(pk=status["task_id"])
    assert task.detected_date_format == "%d/%m/%Y"
