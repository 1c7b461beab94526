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


def test_wide_files_are_validated_in_shorter_batches(
    uploader_api, tmp_path: Path, tasks_inline, settings, monkeypatch
) -> None:
    """Batches are sized by memory: a file of 227 columns gets fewer rows per batch than one of 6."""
    from ingestion import pipeline

    settings.INGEST_BATCH_BYTES = 400_000
    heights: list[int] = []
    read = pipeline.source_read_batches

    def recording(*args, **kwargs):
        for batch in read(*args, **kwargs):
            heights.append(batch.height)
            yield batch

    monkeypatch.setattr(pipeline, "source_read_batches", recording)
    wide = files.csv_write(tmp_path / "wide.csv", files.wide_sales_rows(300, extras=220))
    status = uploader_api.get(_upload(uploader_api, wide, **DAY_FIRST).json()["status_url"]).json()
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_total"], status["rows_valid"]) == (300, 300)
    assert sum(heights) == 300 and len(heights) > 1 and max(heights) < 100  # ~4.4 kB a row in memory
    heights.clear()
    narrow = files.csv_write(tmp_path / "narrow.csv", [files.SALES_HEADER, *files.sales_rows(300)])
    upload = _upload(uploader_api, narrow, datasource_name="narrow", **DAY_FIRST)
    assert uploader_api.get(upload.json()["status_url"]).json()["status"] == "succeeded"
    assert heights == [300]


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


def test_preview_of_a_file_missing_a_required_column_proposes_what_it_could_map(uploader_api, tmp_path: Path) -> None:
    # It proposed nothing ({}), so the uploader typed the whole mapping as JSON by hand.
    path = files.csv_write(
        tmp_path / "x.csv",
        [["Date", "Shop Code", "Product line", "Quantity", "Total"], ["2019-01-02", "A", "F", "1", "2"]],
    )
    body = _upload_preview(uploader_api, path).json()
    assert [problem["code"] for problem in body["problems"]] == ["missing_required_column"]
    assert body["proposed_mapping"] == {
        "date": "Date",
        "product_line": "Product line",
        "quantity": "Quantity",
        "revenue": "Total",
    }


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


# --- how numbers, dates, headers and sheets are read ---------------------------------------------


def _status(client, path: Path, **fields) -> dict:
    response = _upload(client, path, **fields)
    assert response.status_code == 202, response.content
    return client.get(response.json()["status_url"]).json()


def _summary(client, datasource: str = "sales") -> dict:
    return client.get(f"/api/metrics/summary?datasource={datasource}").json()


def _european_whole_amounts(count: int) -> tuple[list[list[str]], int]:
    """A `;` export with dd.mm.yyyy dates whose amounts are all whole, with a dot grouping
    thousands ("52.192" = 52192): no amount shows the decimal mark. Returns rows and their sum."""
    rows = [["Date", "Store", "Category", "Units", "Sales"]]
    for i in range(count):
        amount = 10_000 + i * 137
        day = dt.date(2019, 1, 1) + dt.timedelta(days=i % 28)
        rows.append(
            [day.strftime("%d.%m.%Y"), f"Store {i % 3}", f"Cat {i % 4}", str(500 + i), f"{amount:,}".replace(",", ".")]
        )
    return rows, sum(10_000 + i * 137 for i in range(count))


def test_whole_amounts_with_a_thousands_dot_in_a_semicolon_file_are_not_read_1000_times_too_small(
    uploader_api, tmp_path: Path, tasks_inline
) -> None:
    rows, total = _european_whole_amounts(300)
    path = files.csv_write(tmp_path / "euro.csv", rows, delimiter=";")
    status = _status(uploader_api, path)
    assert status["status"] == "succeeded", status["message"]
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(total)
    # A guess the numbers depend on is said, with how to state the other convention.
    note = next(note for note in status["notes"] if "decimal" in note)
    assert "decimal comma" in note and "'10.000' = 10000" in note and 'decimal="."' in note
    assert "Note:" in status["message"]


def test_an_explicit_decimal_mark_beats_detection(uploader_api, tmp_path: Path, tasks_inline) -> None:
    rows, total = _european_whole_amounts(300)
    path = files.csv_write(tmp_path / "euro.csv", rows, delimiter=";")
    status = _status(uploader_api, path, decimal=".", datasource_name="stated")
    assert status["status"] == "succeeded", status["message"]
    assert _summary(uploader_api, "stated")["total_revenue"] == pytest.approx(total / 1000)
    assert not any("decimal" in note for note in status["notes"])
    assert IngestionTask.objects.get(pk=status["task_id"]).options["decimal"] == "."


def test_an_invalid_decimal_mark_is_refused(uploader_api, tmp_path: Path) -> None:
    path = files.csv_write(tmp_path / "sales.csv", [files.SALES_HEADER, *ROWS])
    response = _upload(uploader_api, path, decimal="dot")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_option" and "decimal" in response.json()["detail"]


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_the_whole_file_decides_the_decimal_mark(delimiter: str, uploader_api, tmp_path: Path, tasks_inline) -> None:
    # The first 1,500 amounts are whole (12), the last 500 have a decimal comma: detection sees
    # only the first rows; the whole file's numbers decide, as the whole date column does.
    header = ["Date", "Branch", "Product line", "Quantity", "Total"]
    rows = [["05/01/2019", "A", "Food", "1", "12" if i < 1500 else "320,47"] for i in range(2000)]
    path = files.csv_write(tmp_path / "late_commas.csv", [header, *rows], delimiter=delimiter)
    status = _status(uploader_api, path, **DAY_FIRST)
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_valid"], status["rows_rejected"]) == (2000, 0)
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(1500 * 12 + 500 * 320.47)


def test_the_whole_file_can_overrule_a_decimal_comma_guessed_from_its_first_rows(
    uploader_api, tmp_path: Path, tasks_inline
) -> None:
    # The first rows' "1.250" reads as 1250 in a ";" file; the rest shows decimal points ("12.50").
    header = ["Date", "Branch", "Product line", "Quantity", "Total"]
    rows = [["05/01/2019", "A", "Food", "1", "1.250" if i < 1200 else "12.50"] for i in range(2000)]
    path = files.csv_write(tmp_path / "late_points.csv", [header, *rows], delimiter=";")
    status = _status(uploader_api, path, **DAY_FIRST)
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_valid"], status["rows_rejected"]) == (2000, 0)
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(1200 * 1.25 + 800 * 12.5)
    # The file settled it: no guess to report, only why the first rows' reading was changed.
    assert not any("thousands separator" in note for note in status["notes"]), status["notes"]
    assert any("The file's numbers have a decimal point (800 written so" in note for note in status["notes"])


def test_a_repeated_header_is_refused_until_the_mapping_chooses(uploader_api, tmp_path: Path, tasks_inline) -> None:
    header = ["Date", "Branch", "Product line", "Quantity", "Total", "Total"]
    rows = [[row[0], row[1], row[2], row[3], "1", row[5]] for row in ROWS]
    path = files.csv_write(tmp_path / "twice.csv", [header, *rows])
    status = _status(uploader_api, path, **DAY_FIRST)
    assert status["status"] == "failed"
    task = IngestionTask.objects.get(pk=status["task_id"])
    assert task.error_code == "ambiguous_columns"
    assert "columns 5 and 6" in status["message"] and '{"Total_2": "revenue"}' in status["message"]
    preview = _upload_preview(uploader_api, path).json()
    assert [problem["code"] for problem in preview["problems"]] == ["ambiguous_columns"]

    retried = uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry", {"mapping": '{"Total_2": "revenue"}'})
    assert retried.status_code == 202, retried.content
    status = uploader_api.get(f"/api/ingest/status/{task.pk}").json()
    assert status["status"] == "succeeded", status["message"]
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(EXPECTED_REVENUE)


def _monthly_workbook(path: Path) -> Path:
    months = {
        name: [files.SALES_HEADER, *[_typed(row) for row in ROWS[i * 20 : (i + 1) * 20]]]
        for i, name in enumerate(["Jan", "Feb", "Mar"])
    }
    return files.xlsx_write(path / "quarter.xlsx", {"Notes": [["Quarterly export"]], **months})


def test_a_workbook_of_monthly_sheets_says_only_one_was_loaded(uploader_api, tmp_path: Path, tasks_inline) -> None:
    path = _monthly_workbook(tmp_path)
    status = _status(uploader_api, path)
    assert status["status"] == "succeeded", status["message"]
    assert status["rows_valid"] == 20
    note = next(note for note in status["notes"] if "sheet" in note)
    assert "Only sheet 'Jan' was loaded" in note and "'Feb', 'Mar'" in note and "sheet=Feb" in note
    assert "Only sheet 'Jan' was loaded" in status["message"]
    assert "'Feb', 'Mar'" in _upload_preview(uploader_api, path).json()["notes"][0]

    chosen = _status(uploader_api, path, sheet="Feb", force="true")
    assert chosen["status"] == "succeeded", chosen["message"]
    assert not chosen["notes"]


def test_formulas_never_computed_are_named_as_the_reason_a_column_is_empty(
    uploader_api, tmp_path: Path, tasks_inline
) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Sales"
    sheet.append(files.SALES_HEADER)
    for number, row in enumerate(ROWS, start=2):
        sheet.append([*_typed(row)[:5], f"=D{number}*E{number}"])  # no stored result: never opened in Excel
    workbook.save(tmp_path / "script.xlsx")
    status = _status(uploader_api, tmp_path / "script.xlsx")
    assert status["status"] == "failed"
    assert IngestionTask.objects.get(pk=status["task_id"]).error_code == "formulas_without_values"
    assert "'Total' (revenue)" in status["message"] and "cell F2: =D2*E2" in status["message"]
    assert "Open the file in Excel or LibreOffice" in status["message"]
    assert '{"Total": ""}' in status["message"]  # revenue can come from unit price × quantity instead
    preview = _upload_preview(uploader_api, tmp_path / "script.xlsx").json()
    assert "formulas_without_values" in [problem["code"] for problem in preview["problems"]]

    derived = _status(uploader_api, tmp_path / "script.xlsx", mapping='{"Total": ""}', force="true")
    assert derived["status"] == "succeeded", derived["message"]
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(EXPECTED_REVENUE)


def test_a_json_file_is_refused_as_json(uploader_api, tmp_path: Path) -> None:
    for name, text in (
        ("rows.json", '[{"a": 1}]'),
        ("wrapped.json", '{"rows": []}'),
        ("lines.txt", '{"a": 1}\n{"a": 2}\n'),
    ):
        response = _upload(uploader_api, files.text_write(tmp_path / name, text))
        assert response.status_code == 415, (name, response.content)
        assert response.json()["code"] == "unsupported_format" and "JSON" in response.json()["detail"]


def test_a_sheet_given_for_a_csv_file_is_noted(uploader_api, tmp_path: Path, tasks_inline) -> None:
    path = files.csv_write(tmp_path / "sales.csv", [files.SALES_HEADER, *ROWS])
    status = _status(uploader_api, path, sheet="Jan", **DAY_FIRST)
    assert status["status"] == "succeeded", status["message"]
    assert status["notes"] == ["The sheet option ('Jan') was ignored: 'sales.csv' is a CSV file, which has no sheets."]


def test_compact_times_are_read_when_the_whole_column_is_written_so(uploader_api, tmp_path: Path, tasks_inline) -> None:
    header = [*files.SALES_HEADER, "Time"]
    times = ["1039", "905", "0007", "2359"]
    rows = [[*row, times[i % 4]] for i, row in enumerate(ROWS)]
    path = files.csv_write(tmp_path / "times.csv", [header, *rows])
    status = _status(uploader_api, path, **DAY_FIRST)
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_valid"], status["rows_rejected"]) == (len(ROWS), 0)
    hours = uploader_api.get("/api/metrics/breakdown?by=hour")
    assert hours.status_code == 200, hours.content
    assert {row["hour"] for row in hours.json()["rows"]} == {10, 9, 0, 23}


@pytest.mark.parametrize("time_zone", ["UTC", "Pacific/Kiritimati", "America/Adak"])
def test_iso_timestamps_with_offsets_count_on_their_local_day(
    uploader_api, tmp_path: Path, tasks_inline, settings, time_zone: str
) -> None:
    # The site's display zone (TIME_ZONE) never moves a sale to another day or hour.
    settings.TIME_ZONE = time_zone
    header = ["Order Date", "Branch", "Product line", "Quantity", "Total"]
    rows = [
        ["2019-01-31T23:30:00-05:00", "A", "Food", "1", "10"],  # 04:30 on 1 February in UTC
        ["2019-02-01T00:15:00.500+06:30", "A", "Food", "1", "20"],  # 31 January in UTC
        ["2019-02-02T10:39:00Z", "A", "Food", "1", "40"],
    ]
    status = _status(uploader_api, files.csv_write(tmp_path / "iso.csv", [header, *rows]))
    assert status["status"] == "succeeded", status["message"]
    january = uploader_api.get("/api/metrics/summary?start=2019-01-01&end=2019-01-31").json()
    assert january["total_revenue"] == pytest.approx(10)
    days = uploader_api.get("/api/metrics/timeseries?grain=day").json()["rows"]
    assert [(row["bucket"], row["revenue"]) for row in days] == [
        ("2019-01-31", 10.0),
        ("2019-02-01", 20.0),
        ("2019-02-02", 40.0),
    ]
    hours = uploader_api.get("/api/metrics/breakdown?by=hour&sort=hour&descending=false").json()["rows"]
    assert [(row["hour"], row["revenue"]) for row in hours] == [(0, 20.0), (10, 40.0), (23, 10.0)]
    assert IngestionTask.objects.get(pk=status["task_id"]).detected_date_format == "%Y-%m-%dT%H:%M:%S%.f%z"


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_excel_sales_at_midnight_are_read_with_the_others(
    kind: str, uploader_api, tmp_path: Path, tasks_inline
) -> None:
    header = ["Transaction Date", "Time", "Outlet", "Department", "Units", "Net Sales"]
    start = dt.datetime(2024, 5, 1)
    # Every tenth sale at 00:00 in a column of date-times; the Time column has a 00:00 too.
    rows = [
        [
            start + dt.timedelta(days=i // 10, hours=0 if i % 10 == 0 else i % 10),
            dt.time(i % 24, 0),
            "Main",
            "Food",
            1,
            10.0,
        ]
        for i in range(40)
    ]
    writer = files.xlsx_write if kind == "xlsx" else files.xls_write
    status = _status(uploader_api, writer(tmp_path / f"midnight.{kind}", {"Sales": [header, *rows]}))
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_valid"], status["rows_rejected"]) == (40, 0)
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(400.0)
    hours = uploader_api.get("/api/metrics/breakdown?by=hour").json()["rows"]
    assert {row["hour"] for row in hours} == set(range(24))  # from the Time column, 00:00 included


def test_serial_dates_of_a_1904_workbook_count_from_1904_and_are_noted(
    uploader_api, tmp_path: Path, tasks_inline
) -> None:
    header = ["Date", "Store", "Category", "Quantity", "Total"]
    june_first_1904 = (dt.date(2024, 6, 1) - dt.date(1904, 1, 1)).days  # 43982, a number in General format
    rows = [[june_first_1904 + i, "Lyon", "Books", 1, 10.0] for i in range(10)]
    path = files.xlsx_write(tmp_path / "mac.xlsx", {"Sales": [header, *rows]}, date1904=True)
    status = _status(uploader_api, path)
    assert status["status"] == "succeeded", status["message"]
    assert status["rows_valid"] == 10
    june = uploader_api.get("/api/metrics/summary?start=2024-06-01&end=2024-06-10").json()
    assert june["total_revenue"] == pytest.approx(100.0)
    assert (
        "The dates in column 'Date' are numbers, read as Excel serial day numbers (days since 1904-01-01: the "
        "workbook uses Excel's 1904 date system)." in status["notes"]
    )
    assert "1904-01-01" in _upload_preview(uploader_api, path).json()["notes"][0]


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_excel_error_cells_are_rejected_rows_naming_the_error(
    kind: str, uploader_api, tmp_path: Path, tasks_inline
) -> None:
    header = ["Date", "Store", "Category", "Quantity", "Total", "Cost"]
    rows: list[list] = [[dt.datetime(2024, 6, 1 + i), "Lyon", "Books", 1, 100.0, 60.0] for i in range(12)]
    rows[1][5] = files.ExcelError("#N/A")  # an optional field: not "no cost"
    rows[5][4] = files.ExcelError("#REF!")  # a required one: not "missing"
    writer = files.xlsx_write if kind == "xlsx" else files.xls_write
    status = _status(uploader_api, writer(tmp_path / f"errors.{kind}", {"Sales": [header, *rows]}))
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_valid"], status["rows_rejected"]) == (10, 2)
    assert [(error["row_number"], error["column"], error["value"], error["reason"]) for error in status["errors"]] == [
        (3, "Cost", "#N/A", "cell holds #N/A"),
        (7, "Total", "#REF!", "cell holds #REF!"),
    ]
    assert _summary(uploader_api)["total_cost"] == pytest.approx(600.0)


CURRENCY_HEADER = ["Order Date", "Store", "Category", "Quantity", "Total"]


def _amounts_file(path: Path, amounts: list[str]) -> Path:
    rows = [[f"2024-05-{i % 28 + 1:02d}", "Berlin", "Shoes", "1", amount] for i, amount in enumerate(amounts)]
    return files.csv_write(path, [CURRENCY_HEADER, *rows])


@pytest.mark.parametrize(
    ("amounts", "named"),
    [
        (["EUR 100.00", "GBP 100.00", "USD 100.00", "JPY 15000", "CHF 100.00"], "CHF, EUR, GBP, JPY and USD"),
        (["$100.00", "100.00 €", "12.00"], "EUR and USD"),
    ],
)
def test_amounts_in_several_currencies_are_refused_not_added_up(
    uploader_api, tmp_path: Path, tasks_inline, amounts: list[str], named: str
) -> None:
    path = _amounts_file(tmp_path / "currencies.csv", amounts * 4)
    status = _status(uploader_api, path)
    assert status["status"] == "failed"
    assert IngestionTask.objects.get(pk=status["task_id"]).error_code == "mixed_currencies"
    assert f"column 'Total' holds {named}" in status["message"], status["message"]
    assert _summary(uploader_api)["total_revenue"] == 0
    preview = _upload_preview(uploader_api, path).json()
    assert [problem["code"] for problem in preview["problems"]] == ["mixed_currencies"]


def test_a_second_currency_in_a_later_batch_is_refused(uploader_api, tmp_path: Path, tasks_inline, settings) -> None:
    settings.INGEST_BATCH_ROWS = 20
    path = _amounts_file(tmp_path / "late.csv", ["€ 10.00"] * 99 + ["£ 10.00"])
    status = _status(uploader_api, path)
    assert status["status"] == "failed"
    assert "column 'Total' holds EUR and GBP" in status["message"], status["message"]


def test_one_currency_however_written_beside_plain_numbers_is_loaded(
    uploader_api, tmp_path: Path, tasks_inline
) -> None:
    path = _amounts_file(tmp_path / "dollars.csv", ["$10.00", "US$ 20.00", "USD 30.00", "40.00 USD", "50"])
    status = _status(uploader_api, path)
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_valid"], status["rows_rejected"]) == (5, 0)
    assert _summary(uploader_api)["total_revenue"] == pytest.approx(150)


def test_a_currency_column_naming_several_currencies_is_warned_about(
    uploader_api, tmp_path: Path, tasks_inline
) -> None:
    header = [*CURRENCY_HEADER, "Currency"]
    rows = [["2024-05-01", "Berlin", "Shoes", "1", "100.00", currency] for currency in ("EUR", "USD", "eur")]
    path = files.csv_write(tmp_path / "currency_column.csv", [header, *rows])
    status = _status(uploader_api, path)
    assert status["status"] == "succeeded", status["message"]
    note = next(note for note in status["notes"] if "currencies" in note)
    assert "Column 'Currency' names 2 currencies (EUR and USD)" in note and "dimension 'currency'" in note
    assert any("Column 'Currency' names 2" in note for note in _upload_preview(uploader_api, path).json()["notes"])
    by_currency = uploader_api.get("/api/metrics/breakdown?by=currency")
    assert by_currency.status_code == 200, by_currency.content


def test_a_currency_column_of_one_currency_is_not_warned_about(uploader_api, tmp_path: Path, tasks_inline) -> None:
    header = [*CURRENCY_HEADER, "Currency"]
    rows = [["2024-05-01", "Berlin", "Shoes", "1", "100.00", "EUR"] for _ in range(3)]
    status = _status(uploader_api, files.csv_write(tmp_path / "euros.csv", [header, *rows]))
    assert status["status"] == "succeeded", status["message"]
    assert not [note for note in status["notes"] if "currencies" in note]


def test_a_line_total_cost_is_summed_not_the_unit_cost_beside_it(uploader_api, tmp_path: Path, tasks_inline) -> None:
    header = ["Invoice Number", "Date", "Store", "Category", "Quantity", "Price", "Cost", "Total", "Total Cost"]
    rows = [
        ["S-1", "2024-11-01", "Main", "Shoes", "3", "50.00", "20.00", "150.00", "60.00"],
        ["S-2", "2024-11-01", "Main", "Shoes", "2", "80.00", "30.00", "160.00", "60.00"],
        ["S-3", "2024-11-02", "Main", "Socks", "10", "5.00", "1.50", "50.00", "15.00"],
    ]
    status = _status(uploader_api, files.csv_write(tmp_path / "costs.csv", [header, *rows]))
    assert status["status"] == "succeeded", status["message"]
    totals = _summary(uploader_api)
    assert (totals["total_revenue"], totals["total_cost"]) == (pytest.approx(360), pytest.approx(135))
    assert any("cost ← 'Total Cost', not 'Cost'" in note for note in status["notes"]), status["notes"]
    assert "cost ← 'Total Cost'" in status["message"]


def test_one_branch_however_its_name_is_encoded(uploader_api, tmp_path: Path, tasks_inline) -> None:
    header = ["Date", "Store", "Category", "Quantity", "Total"]
    stores = ["Z\u00fcrich", "Zu\u0308rich", "\u200bBern", "Bern"]  # composed, decomposed (macOS), zero-width space
    rows = [["2024-02-01", store, "Uhren", "1", str(10 * (i + 1))] for i, store in enumerate(stores)]
    status = _status(uploader_api, files.csv_write(tmp_path / "stores.csv", [header, *rows]))
    assert status["status"] == "succeeded", status["message"]
    branches = uploader_api.get("/api/metrics/breakdown?by=branch").json()["rows"]
    assert {row["branch"]: row["revenue"] for row in branches} == {"Z\u00fcrich": 30, "Bern": 70}


def test_a_parquet_column_of_lists_is_an_extra_but_never_a_field(uploader_api, tmp_path: Path, tasks_inline) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "Date": pa.array([dt.date(2024, 9, 1), dt.date(2024, 9, 2)]),
        "Store": ["S1", "S2"],
        "Quantity": [1, 2],
        "Total": [10.5, 21.0],
    }
    pq.write_table(
        pa.table({**columns, "Category": ["c1", "c2"], "Tags": [["a", "b"], ["c"]]}), tmp_path / "tags.parquet"
    )
    status = _status(uploader_api, tmp_path / "tags.parquet")
    assert status["status"] == "succeeded", status["message"]
    tags = uploader_api.get("/api/metrics/breakdown?by=tags").json()["rows"]
    assert sorted(row["tags"] for row in tags) == ['["a", "b"]', '["c"]']

    pq.write_table(pa.table({**columns, "Category": [["c1"], ["c1", "c2"]]}), tmp_path / "lists.parquet")
    status = _status(uploader_api, tmp_path / "lists.parquet")
    assert status["status"] == "failed"
    assert IngestionTask.objects.get(pk=status["task_id"]).error_code == "invalid_mapping"
    assert "Column 'Category' holds lists" in status["message"]
