"""The real file and every refusal, through the REST API with tasks run by django-q2 inline."""

import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from django.test import Client

from analytics.models import Segment
from ingestion.models import IngestionTask
from ingestion.services import UploadOptions, ingestion_upload_receive
from tests.ingestion import sample_files as sf

pytestmark = pytest.mark.django_db(transaction=True)

REVENUE = 322_966.749
BRANCH_A_REVENUE = 106_200.3705
JANUARY_REVENUE = 116_291.868


def upload(client: Client, name: str, content: bytes, **fields):
    return client.post("/api/ingest/upload", {"file": _named(name, content), **fields})


def _named(name: str, content: bytes):
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def _receive(path: Path, *, sha256: str, **options) -> IngestionTask:
    """The receiving service as a program calls it (no request, no user)."""
    return ingestion_upload_receive(
        local_path=path,
        original_filename="a.csv",
        sha256=sha256,
        size_bytes=path.stat().st_size,
        datasource_name="sales",
        options=UploadOptions(**options),
        user=None,
    )


def status_of(client: Client, task_id: str) -> dict:
    response = client.get(f"/api/ingest/status/{task_id}")
    assert response.status_code == 200
    # The same answer beside the task's retry and cancel.
    assert client.get(f"/api/ingest/tasks/{task_id}").json() == response.json()
    return response.json()


def summary(client: Client, query: str = "") -> dict:
    response = client.get(f"/api/metrics/summary{query}")
    assert response.status_code == 200
    return response.json()


def test_real_file_through_the_api_reconciles(uploader_api, real_file: Path, tasks_inline) -> None:
    response = upload(uploader_api, "supermarket_sales.csv", real_file.read_bytes())
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status_url"] == f"/api/ingest/status/{body['task_id']}"
    status = status_of(uploader_api, body["task_id"])
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_total"], status["rows_valid"], status["rows_rejected"]) == (1000, 1000, 0)
    assert status["stage"] == "done" and status["progress"] == 100
    assert set(status["timings"]) >= {"reading", "mapping", "validating", "publishing"}

    totals = summary(uploader_api)
    assert totals["total_revenue"] == pytest.approx(REVENUE, abs=0.005)
    assert totals["units_sold"] == 5510
    assert totals["lines"] == 1000
    assert totals["transactions"] == 1000
    assert totals["total_cost"] == pytest.approx(307_587.38, abs=0.005)
    assert totals["gross_profit"] == pytest.approx(15_379.369, abs=0.005)
    assert summary(uploader_api, "?branch=A")["total_revenue"] == pytest.approx(BRANCH_A_REVENUE, abs=0.005)
    january = summary(uploader_api, "?start=2019-01-01&end=2019-01-31")
    assert january["total_revenue"] == pytest.approx(JANUARY_REVENUE, abs=0.005)
    assert summary(uploader_api, "?branch=A&branch=B")["total_revenue"] == pytest.approx(
        BRANCH_A_REVENUE + 106_197.672, abs=0.005
    )


def test_raw_file_kept_at_documented_key(uploader_api, real_file: Path, tasks_inline) -> None:
    body = upload(uploader_api, "../../etc/supermarket sales.csv", real_file.read_bytes()).json()
    task = IngestionTask.objects.get(pk=body["task_id"])
    yyyy_mm = task.created_at.strftime("%Y/%m")
    assert task.raw_key == f"raw/sales/{yyyy_mm}/{task.pk}/supermarket_sales.csv"
    with default_storage.open(task.raw_key, "rb") as stored:
        assert stored.read() == real_file.read_bytes()


def test_empty_datasource_summary_is_zeros(viewer_api) -> None:
    totals = summary(viewer_api, "?datasource=nothing_here")
    assert totals["total_revenue"] == 0 and totals["lines"] == 0 and totals["data_version"] is None


def test_duplicate_upload_is_409_naming_the_earlier_task(uploader_api, real_file: Path, tasks_inline) -> None:
    first = upload(uploader_api, "a.csv", real_file.read_bytes()).json()
    second = upload(uploader_api, "b.csv", real_file.read_bytes())
    assert second.status_code == 409
    assert second.json()["code"] == "duplicate_upload"
    assert first["task_id"] in second.json()["detail"]
    forced = upload(uploader_api, "b.csv", real_file.read_bytes(), force="true")
    assert forced.status_code == 202
    assert summary(uploader_api)["lines"] == 2000


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("empty.csv", b"", 422, "empty_file"),
        ("header.csv", b"Date,Branch,Product line,Quantity,Total\n", 422, "header_only"),
        ("garbage.csv", bytes(range(256)) * 40, 415, "unsupported_format"),
        ("picture.xlsx", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000, 415, "unsupported_format"),
    ],
)
def test_refusals_change_nothing(uploader_api, name: str, content: bytes, status: int, code: str) -> None:
    response = upload(uploader_api, name, content)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert IngestionTask.objects.count() == 0
    assert Segment.objects.count() == 0


def test_a_gzipped_csv_is_refused_as_compressed_not_as_binary(uploader_api) -> None:
    response = upload(uploader_api, "sales.csv.gz", gzip.compress(b"Date,Branch,Product line,Quantity,Total\n" * 50))
    assert response.status_code == 415, response.content
    assert response.json()["code"] == "unsupported_format"
    assert "gzip-compressed: decompress it and upload the .csv" in response.json()["detail"]
    assert IngestionTask.objects.count() == 0


def test_zip_bomb_named_xlsx_is_refused(uploader_api) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            zeros = b"\x00" * (1024 * 1024)
            for _ in range(1200):
                member.write(zeros)
    response = upload(uploader_api, "bomb.xlsx", buffer.getvalue())
    assert response.status_code == 415
    assert response.json()["code"] == "unsafe_archive"


def test_over_size_upload_is_413(uploader_api, settings) -> None:
    settings.MAX_UPLOAD_MB = 1
    response = upload(uploader_api, "big.csv", b"Date,Branch\n" + b"2019-01-01,A\n" * 100_000)
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert IngestionTask.objects.count() == 0


def test_viewer_cannot_upload(viewer_api, real_file: Path) -> None:
    response = upload(viewer_api, "a.csv", real_file.read_bytes())
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_missing_required_column_fails_with_candidates(uploader_api, tasks_inline) -> None:
    content = b"Date,Store,Qty,Total\n2019-01-05,A,2,10.5\n"
    body = upload(uploader_api, "x.csv", content).json()
    status = status_of(uploader_api, body["task_id"])
    assert status["status"] == "failed"
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert task.error_code == "missing_required_column"
    assert "product_line" in status["message"] or "product line" in status["message"].lower()
    assert default_storage.exists(task.raw_key)
    assert Segment.objects.count() == 0


def test_ambiguous_dates_need_date_format_then_retry_succeeds(uploader_api, tasks_inline) -> None:
    content = b"Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n"
    body = upload(uploader_api, "dates.csv", content).json()
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert task.status == "failed" and task.error_code == "ambiguous_dates"
    assert "date_format" in task.message
    assert summary(uploader_api)["lines"] == 0
    retried = uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry")
    assert retried.status_code == 202
    task.refresh_from_db()
    assert task.status == "failed"  # same options, same answer


def test_partly_invalid_rows_are_reported_exactly(uploader_api, tasks_inline) -> None:
    rows = ["Date,Branch,Product line,Quantity,Total"]
    rows += [f"2019-01-{day:02d},A,Food,1,10" for day in range(1, 21)]
    rows[3] = "2019-01-03,A,Food,one,10"  # source line 4
    rows[7] = "not a date,A,Food,1,10"  # source line 8
    rows[10] = "2019-01-10,A,Food,1,=HYPERLINK(1)"  # source line 11
    body = upload(uploader_api, "partly.csv", "\n".join(rows).encode()).json()
    status = status_of(uploader_api, body["task_id"])
    assert status["status"] == "succeeded", status["message"]
    assert (status["rows_total"], status["rows_valid"], status["rows_rejected"]) == (20, 17, 3)
    assert sorted(error["row_number"] for error in status["errors"]) == [4, 8, 11]
    report = uploader_api.get(status["error_report_url"])
    assert report.status_code == 200
    text = b"".join(report.streaming_content).decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0] == "row_number,column,value,reason"
    assert len(lines) == 4
    assert "'=HYPERLINK(1)" in text  # neutralised against formula injection
    assert summary(uploader_api)["lines"] == 17


def test_the_error_report_opens_in_a_spreadsheet_with_its_accents(uploader_api, uploader, tasks_inline) -> None:
    # Like every CSV export: a charset and a BOM, without which Excel shows "CrÃ¨me" for "Crème".
    rows = ["Date,Branch,Product line,Quantity,Total"]
    rows += [f"2019-01-{day:02d},Crème,Food,1,10" for day in range(1, 21)]
    rows[3] = "2019-01-03,Crème,Food,une,10"
    status = status_of(uploader_api, upload(uploader_api, "accents.csv", "\n".join(rows).encode()).json()["task_id"])
    assert status["rows_rejected"] == 1, status["message"]
    page = Client()
    page.force_login(uploader)
    for url in (status["error_report_url"], f"/uploads/{status['task_id']}/errors.csv"):
        report = (uploader_api if url.startswith("/api/") else page).get(url)
        assert report["Content-Type"] == "text/csv; charset=utf-8", url
        assert f'filename="errors-{status["task_id"]}.csv"' in report["Content-Disposition"]
        content = b"".join(report.streaming_content)
        assert content.startswith(b"\xef\xbb\xbf") and content.count(b"\xef\xbb\xbf") == 1, url
        assert "une" in content.decode("utf-8-sig")


def test_an_error_report_stored_without_a_bom_is_served_with_one(uploader_api, tasks_inline) -> None:
    rows = ["Date,Branch,Product line,Quantity,Total", "2019-01-01,Crème,Food,1,10", "2019-01-02,A,Food,x,10"]
    rows += [f"2019-01-{day:02d},A,Food,1,10" for day in range(3, 10)]
    status = status_of(uploader_api, upload(uploader_api, "old.csv", "\n".join(rows).encode()).json()["task_id"])
    key = IngestionTask.objects.get(pk=status["task_id"]).error_report_key
    with default_storage.open(key, "rb") as handle:
        stored = handle.read()
    default_storage.delete(key)
    without_bom = stored.removeprefix(b"\xef\xbb\xbf")
    default_storage.save(key, io.BytesIO(without_bom))  # as reports were stored before
    content = b"".join(uploader_api.get(status["error_report_url"]).streaming_content)
    assert content == b"\xef\xbb\xbf" + without_bom


def test_workbook_sheets_are_parsed_by_the_worker_not_the_request(uploader_api, tmp_path, tasks_inline) -> None:
    # The request only lists the sheets (parsing one costs seconds for a large workbook); a
    # workbook with a header and no rows is accepted, then its task fails with header_only.
    path = sf.xlsx_write(tmp_path / "header.xlsx", {"Data": [sf.SALES_HEADER]})
    response = upload(uploader_api, "header.xlsx", path.read_bytes())
    assert response.status_code == 202, response.content
    status = status_of(uploader_api, response.json()["task_id"])
    assert (status["status"], status["error_code"]) == ("failed", "header_only")
    assert not Segment.objects.exists()


def test_unknown_sheet_is_refused_by_the_request(uploader_api, tmp_path) -> None:
    path = sf.xlsx_write(tmp_path / "sales.xlsx", {"Data": [sf.SALES_HEADER]})
    response = upload(uploader_api, "sales.xlsx", path.read_bytes(), sheet="Nope")
    assert response.status_code == 422
    assert response.json()["code"] == "sheet_not_found"
    assert not IngestionTask.objects.exists()


def test_uploaded_temporary_file_is_moved_into_storage(real_file: Path, tmp_path: Path) -> None:
    # An upload's temporary copy is renamed into local storage, not copied; a file named on the
    # command line is the user's and stays where it is.
    owned, users = tmp_path / "upload.tmp", tmp_path / "mine.csv"
    owned.write_bytes(real_file.read_bytes())
    users.write_bytes(real_file.read_bytes())
    digest = hashlib.sha256(real_file.read_bytes()).hexdigest()
    common = {"size_bytes": owned.stat().st_size, "datasource_name": "moves", "user": None}
    moved = ingestion_upload_receive(
        local_path=owned, original_filename="a.csv", sha256=digest, options=UploadOptions(), owned=True, **common
    )
    kept = ingestion_upload_receive(
        local_path=users, original_filename="b.csv", sha256=digest, options=UploadOptions(force=True), **common
    )
    # Local storage renames the upload's copy into place; S3 reads it (Django deletes it after the request).
    assert owned.exists() is not isinstance(default_storage, FileSystemStorage)
    assert users.exists()
    for task in (moved, kept):
        with default_storage.open(task.raw_key, "rb") as stored:
            assert stored.read() == real_file.read_bytes()


def test_upload_hash_is_computed_beside_the_write_over_many_chunks(settings) -> None:
    import threading

    from django.test import RequestFactory

    from ingestion.uploads import HashingUploadHandler

    content = b"".join(f"{i},row {i}\n".encode() for i in range(200_000))
    handler = HashingUploadHandler(RequestFactory().post("/"))
    handler.chunk_size = 64 * 1024
    handler.new_file("file", "big.csv", "text/csv", len(content))
    for start in range(0, len(content), handler.chunk_size):
        handler.receive_data_chunk(content[start : start + handler.chunk_size], start)
    uploaded = handler.file_complete(len(content))
    assert uploaded.sha256 == hashlib.sha256(content).hexdigest()
    uploaded.seek(0)
    assert uploaded.read() == content
    assert not [thread for thread in threading.enumerate() if thread.name == "upload-sha256"]


def test_published_segment_keeps_date_statistics_for_pruning(uploader_api, real_file: Path, tasks_inline) -> None:
    import datetime as dt

    import pyarrow.parquet as pq

    from analytics.segments import segment_local_path

    upload(uploader_api, "supermarket_sales.csv", real_file.read_bytes())
    metadata = pq.ParquetFile(segment_local_path(segment=Segment.objects.get())).metadata
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    date_stats = metadata.row_group(0).column(names.index("date")).statistics
    assert date_stats.has_min_max
    assert (date_stats.min, date_stats.max) == (dt.date(2019, 1, 1), dt.date(2019, 3, 30))


def test_task_list_for_a_name_no_datasource_can_have_is_empty(uploader_api, real_file: Path, tasks_inline) -> None:
    upload(uploader_api, "supermarket_sales.csv", real_file.read_bytes())
    response = uploader_api.get("/api/ingest/tasks", {"datasource": "sales\x00"})  # PostgreSQL refuses NUL
    assert response.status_code == 200, response.content
    assert (response.json()["items"], response.json()["count"]) == ([], 0)


def test_workbook_header_row_on_a_blank_row_fails_the_task_with_its_code(uploader_api, tmp_path, tasks_inline) -> None:
    path = sf.xlsx_write(tmp_path / "sales.xlsx", {"Data": [sf.SALES_HEADER, *sf.sales_rows(3), [None], ["x"]]})
    response = upload(uploader_api, "sales.xlsx", path.read_bytes(), header_row="5")
    assert response.status_code == 202, response.content
    status = status_of(uploader_api, response.json()["task_id"])
    assert (status["status"], status["error_code"]) == ("failed", "header_row_not_found")


def test_a_rejected_cell_holding_a_nul_is_reported_not_a_stuck_task(uploader_api, tasks_inline) -> None:
    # PostgreSQL refuses text with NUL: storing the first errors failed and the task stayed `running`.
    # The NUL comes after the part that format detection reads (there it means a binary file).
    good = b"2019-01-05,A,Food,1,2.5\n" * 5000
    content = b"Date,Branch,Product line,Quantity,Total\n" + good + b"2019-01-06,A,Food,1\x00,2.5\n"
    response = upload(uploader_api, "nul.csv", content)
    assert response.status_code == 202, response.content
    status = status_of(uploader_api, response.json()["task_id"])
    assert (status["status"], status["rows_valid"], status["rows_rejected"]) == ("succeeded", 5000, 1)
    assert [(e["row_number"], e["column"], e["value"]) for e in status["errors"]] == [(5002, "Quantity", "1\u2400")]


@pytest.mark.parametrize(
    "fields",
    [
        {"mapping": "[" * 100_000 + "]" * 100_000},  # was a 500 (RecursionError)
        {"mapping": '{"To\\u0000tal": "revenue"}'},  # PostgreSQL refused the task row (a 500)
        {"date_format": "%d/%m/%Y\x00"},
        {"sheet": "Sales\x00"},
    ],
    ids=["deep-mapping", "nul-mapping", "nul-date-format", "nul-sheet"],
)
def test_options_no_file_could_match_are_400(uploader_api, fields: dict) -> None:
    content = b"Date,Branch,Product line,Quantity,Total\n2019-01-05,A,Food,1,2.5\n"
    response = upload(uploader_api, "s.csv", content, **fields)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_option"
    assert not IngestionTask.objects.exists()


def test_a_workbook_that_would_exhaust_memory_is_refused_by_preview_and_fails_its_task(
    uploader_api, tmp_path, tasks_inline
) -> None:
    # One cell at XFD1048576 made calamine abort the process: the web worker on preview, the
    # worker on upload (the task then stayed `running` until the reaper, an hour later).
    path = sf.xlsx_stray_cell_write(tmp_path / "stray.xlsx", "XFD1048576")
    preview = uploader_api.post("/api/ingest/preview", {"file": _named("stray.xlsx", path.read_bytes())})
    assert preview.status_code == 415, preview.content
    assert preview.json()["code"] == "unsafe_archive"
    response = upload(uploader_api, "stray.xlsx", path.read_bytes())
    assert response.status_code == 202, response.content
    status = status_of(uploader_api, response.json()["task_id"])
    assert (status["status"], status["error_code"]) == ("failed", "unsafe_archive")
    assert "stray cell" in status["message"]
    assert default_storage.exists(IngestionTask.objects.get().raw_key)
    assert not Segment.objects.exists()


def test_a_date_format_longer_than_the_task_keeps_is_refused(uploader_api, real_file: Path) -> None:
    # PostgreSQL refused to store it in the task row, which then stayed `running`.
    response = upload(uploader_api, "a.csv", real_file.read_bytes(), date_format="%m/%d/%Y" + " " * 60)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_option"
    assert "at most 64 characters" in response.json()["detail"]
    assert not IngestionTask.objects.exists()


def test_a_mapping_holding_a_lone_surrogate_is_refused(uploader_api, real_file: Path) -> None:
    # Plain ASCII JSON that decodes to text no database can store: a 500 on PostgreSQL.
    response = upload(uploader_api, "a.csv", real_file.read_bytes(), mapping='{"\\ud800": "revenue"}')
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_option"
    assert "lone surrogate" in response.json()["detail"]
    assert not IngestionTask.objects.exists()


def test_a_raw_file_no_task_could_be_created_for_is_not_left_in_storage(real_file: Path, monkeypatch) -> None:
    from ingestion import services

    stored: list[str] = []

    def refuse(**kwargs):
        stored.append(kwargs["stored_key"])
        assert default_storage.exists(kwargs["stored_key"])
        raise services.DatabaseError("injected: the task row could not be stored")

    monkeypatch.setattr(services, "_task_create", refuse)
    with pytest.raises(services.DatabaseError):
        _receive(real_file, sha256="0" * 64)
    assert stored and not default_storage.exists(stored[0])
    assert real_file.exists()  # the caller's file (not owned) is untouched


def test_retry_with_new_options_drops_the_earlier_attempts_error_report(uploader_api, tasks_inline) -> None:
    from ingestion.services import ingestion_task_retry

    rows = sf.sales_rows(40)  # day-first dates, some past the 12th
    content = sf.csv_text([sf.SALES_HEADER, *rows]).encode()
    task_id = upload(uploader_api, "jan.csv", content, date_format="%m/%d/%Y").json()["task_id"]
    first = status_of(uploader_api, task_id)
    assert (first["status"], first["error_code"]) == ("failed", "too_many_rejected_rows")
    stale_key = IngestionTask.objects.get(pk=task_id).error_report_key
    assert first["error_report_url"] and default_storage.exists(stale_key)

    ingestion_task_retry(task=IngestionTask.objects.get(pk=task_id), overrides={"date_format": "%d/%m/%Y"})
    second = status_of(uploader_api, task_id)
    assert (second["status"], second["rows_rejected"]) == ("succeeded", 0)
    assert second["error_report_url"] is None
    assert not default_storage.exists(stale_key)


def test_extra_columns_named_like_the_query_layer_s_own_are_kept_and_queryable(uploader_api, tasks_inline) -> None:
    # "Revenue sum" clashed with the part revenue_sum (500), "Bucket" hid a time series' split
    # values, "Hour" was shadowed by the hour of the sale's time.
    content = (
        b"Date,Time,Branch,Product line,Quantity,Total,Revenue sum,Bucket,Hour,Partial\n"
        b"2024-01-10,09:15,A,Food,1,100,x,red,h1,no\n"
        b"2024-01-10,17:40,A,Home,2,50,y,blue,h2,yes\n"
        b"2024-02-11,09:05,B,Home,3,25,x,red,h1,no\n"
    )
    assert status_of(uploader_api, upload(uploader_api, "x.csv", content).json()["task_id"])["status"] == "succeeded"

    by_extra = uploader_api.get("/api/metrics/breakdown", {"by": "revenue_sum_extra", "metric": "revenue"})
    assert by_extra.status_code == 200, by_extra.content
    assert {row["revenue_sum_extra"]: row["revenue"] for row in by_extra.json()["rows"]} == {"x": 125.0, "y": 50.0}
    split = uploader_api.get("/api/metrics/timeseries", {"split_by": "bucket_extra", "grain": "P1M"}).json()
    assert {(row["bucket"], row["bucket_extra"], row["revenue"]) for row in split["rows"]} == {
        ("2024-01-01", "blue", 50.0),
        ("2024-01-01", "red", 100.0),
        ("2024-02-01", "red", 25.0),
    }
    # A time series' rows say whether their bucket is `partial`: a "Partial" column keeps its own name apart.
    by_partial = uploader_api.get("/api/metrics/timeseries", {"split_by": "partial_extra", "grain": "P1M"}).json()
    assert {(row["bucket"], row["partial_extra"], row["partial"]) for row in by_partial["rows"]} == {
        ("2024-01-01", "no", False),
        ("2024-01-01", "yes", False),
        ("2024-02-01", "no", False),
    }
    hours = uploader_api.get("/api/metrics/breakdown", {"by": "hour", "metric": "lines"}).json()
    assert {row["hour"]: row["lines"] for row in hours["rows"]} == {9: 2, 17: 1}
    by_hour_column = uploader_api.get("/api/metrics/breakdown", {"by": "hour_extra", "metric": "lines"}).json()
    assert {row["hour_extra"]: row["lines"] for row in by_hour_column["rows"]} == {"h1": 2, "h2": 1}
    reserved = uploader_api.get("/api/metrics/breakdown", {"by": "revenue_sum", "metric": "revenue"})
    assert (reserved.status_code, reserved.json()["code"]) == (400, "invalid_query")


def test_a_task_the_broker_refuses_fails_at_once_and_can_be_retried(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    # Queueing runs after the task row commits: a broker that is down raised there (a 500, and a
    # task `queued` forever that also blocked the same file as "already being loaded").
    from ingestion import tasks

    real_queue = tasks.ingestion_task_queue

    def broker_down(**kwargs):
        raise ConnectionError("injected: the broker is down")

    monkeypatch.setattr(tasks, "ingestion_task_queue", broker_down)
    response = upload(uploader_api, "a.csv", real_file.read_bytes())
    assert response.status_code == 202, response.content
    status = status_of(uploader_api, response.json()["task_id"])
    assert (status["status"], status["error_code"]) == ("failed", "queue_unavailable")
    assert "ConnectionError: injected: the broker is down" in status["message"]
    task = IngestionTask.objects.get()
    assert default_storage.exists(task.raw_key)

    monkeypatch.setattr(tasks, "ingestion_task_queue", real_queue)
    assert uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry").status_code == 202
    assert status_of(uploader_api, str(task.pk))["status"] == "succeeded"
    assert summary(uploader_api)["lines"] == 1000


def test_a_failure_message_holding_what_postgresql_refuses_is_stored(real_file: Path, tasks_inline) -> None:
    # A sheet named with a NUL byte reached the failure message; saving it failed again and the
    # task stayed `running` on PostgreSQL.
    from ingestion.services import TaskProgress

    task = _receive(real_file, sha256="3" * 64)
    IngestionTask.objects.filter(pk=task.pk).update(status=IngestionTask.Status.RUNNING)  # as its run finishes
    task.refresh_from_db()
    TaskProgress(task).finish(IngestionTask.Status.FAILED, "Sheet 'Data\x00x' \ud800 has no rows.", error_code="x")
    task.refresh_from_db()
    assert (task.status, task.message) == ("failed", "Sheet 'Data\u2400x' ? has no rows.")


def test_graphql_upload_takes_the_decimal_mark(uploader_api, tasks_inline) -> None:
    import json

    from django.core.files.base import ContentFile

    content = b"Date;Branch;Product line;Quantity;Total\n" + b"05.01.2019;A;Food;1;1.250\n" * 4
    mutation = (
        'mutation($file: Upload!) { uploadFile(file: $file, datasourceName: "gql", decimal: ".") '
        "{ task { id status } } }"
    )
    response = uploader_api.post(
        "/graphql",
        {
            "operations": json.dumps({"query": mutation, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
            "0": ContentFile(content, name="points.csv"),
        },
    )
    assert response.status_code == 200, response.content
    task_id = response.json()["data"]["uploadFile"]["task"]["id"]
    assert IngestionTask.objects.get(pk=task_id).options["decimal"] == "."
    assert summary(uploader_api, "?datasource=gql")["total_revenue"] == pytest.approx(5.0)


def test_preview_says_which_decimal_mark_it_assumed(uploader_api) -> None:
    content = b"Date;Branch;Product line;Quantity;Total\n" + b"05.01.2019;A;Food;1;1.250\n" * 4
    body = uploader_api.post("/api/ingest/preview", {"file": _named("euro.csv", content)}).json()
    assert body["decimal_comma"] is True
    assert any("decimal comma" in note for note in body["notes"])
    stated = uploader_api.post("/api/ingest/preview", {"file": _named("euro.csv", content), "decimal": "."}).json()
    assert stated["decimal_comma"] is False and stated["notes"] == []


def test_preview_reports_a_rejected_share_the_upload_would_be_refused_for(uploader_api) -> None:
    # It said nothing (problems []) and the page "Looks good"; the upload then failed the task.
    content = sf.sales_text_with_bad_quantities(200, bad=80).encode()
    body = uploader_api.post("/api/ingest/preview", {"file": _named("bad.csv", content)}).json()
    assert body["validation"]["rows_rejected"] == 80
    (problem,) = body["problems"]
    assert problem["code"] == "too_many_rejected_rows"
    assert problem["detail"].startswith(
        "80 of the 200 rows checked (40.0%) were rejected, more than the allowed 25%: the upload would fail"
    )
    assert "max_rejected_ratio above 0.40" in problem["detail"]

    allowed = uploader_api.post(
        "/api/ingest/preview", {"file": _named("bad.csv", content), "max_rejected_ratio": "0.5"}
    )
    assert allowed.json()["problems"] == [] and allowed.json()["validation"]["rows_rejected"] == 80


def test_preview_with_an_acceptable_share_of_rejects_reports_no_problem(uploader_api) -> None:
    body = uploader_api.post(
        "/api/ingest/preview", {"file": _named("ok.csv", sf.sales_text_with_bad_quantities(200, bad=50).encode())}
    )
    assert body.json()["problems"] == []


def test_preview_reports_a_file_already_published_naming_its_task(uploader_api, real_file: Path, tasks_inline) -> None:
    # It previewed "Looks good", then the upload got 409.
    first = upload(uploader_api, "supermarket_sales.csv", real_file.read_bytes()).json()["task_id"]
    fields = {"file": _named("again.csv", real_file.read_bytes()), "datasource_name": "sales"}

    body = uploader_api.post("/api/ingest/preview", fields).json()
    (problem,) = body["problems"]
    assert problem["code"] == "duplicate_upload"
    assert problem["detail"].startswith(f"This exact file was already published to 'sales' by task {first} ")
    assert "Send force=true to load it again" in problem["detail"]
    assert body["validation"]["rows_checked"] == 1000  # the rest of the preview is there all the same

    fields["file"].seek(0)
    assert uploader_api.post("/api/ingest/preview", {**fields, "force": "true"}).json()["problems"] == []
    other = {"file": _named("again.csv", real_file.read_bytes()), "datasource_name": "elsewhere"}
    assert uploader_api.post("/api/ingest/preview", other).json()["problems"] == []


BAD_OPTIONS = [
    ({"date_format": "garbage"}, "invalid_date_format", "date_format 'garbage' cannot be used", "%d/%m/%Y"),
    ({"date_format": "%Q-%d"}, "invalid_date_format", "not valid strftime syntax", "%Y-%m-%d"),
    ({"mapping": '{"Total": "revenu"}'}, "invalid_mapping", "Unknown field 'revenu' for column 'Total'", "revenue"),
]


@pytest.mark.parametrize(("fields", "code", "names", "suggests"), BAD_OPTIONS)
@pytest.mark.parametrize("endpoint", ["upload", "preview"])
def test_an_unusable_option_is_refused_by_the_request(
    uploader_api, real_file: Path, endpoint: str, fields: dict, code: str, names: str, suggests: str
) -> None:
    # It was accepted (202) and failed the task later. 422: the request is well formed (no schema
    # can say which texts are usable strftime formats); the code is the one the task failed with.
    response = uploader_api.post(f"/api/ingest/{endpoint}", {"file": _named("s.csv", real_file.read_bytes()), **fields})
    assert response.status_code == 422, response.content
    assert response.json()["code"] == code
    assert names in response.json()["detail"] and suggests in response.json()["detail"]
    assert not IngestionTask.objects.exists()


def test_an_unusable_option_is_refused_by_the_form_the_cli_and_graphql(uploader, real_file: Path) -> None:
    import json

    from django.core.files.base import ContentFile
    from django.core.management import CommandError, call_command

    browser = Client()
    browser.force_login(uploader)
    page = browser.post(
        "/uploads", {"file": _named("s.csv", real_file.read_bytes()), "date_format": "garbage"}, follow=True
    )
    # The page names the option by its label, as the command line names it by its flag.
    assert "“Date format” &#x27;garbage&#x27; cannot be used" in page.content.decode()

    with pytest.raises(CommandError, match=r"--date-format 'garbage' cannot be used.*\[invalid_date_format\]"):
        call_command("ingest", str(real_file), "--date-format", "garbage", stdout=io.StringIO(), stderr=io.StringIO())

    mutation = (
        'mutation($file: Upload!) { uploadFile(file: $file, mapping: "{\\"Total\\": \\"revenu\\"}") { task { id } } }'
    )
    answer = browser.post(
        "/graphql",
        {
            "operations": json.dumps({"query": mutation, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
            "0": ContentFile(real_file.read_bytes(), name="s.csv"),
        },
    ).json()
    assert answer["errors"][0]["extensions"]["code"] == "invalid_mapping", answer
    assert "Did you mean 'revenue'?" in answer["errors"][0]["message"]
    assert not IngestionTask.objects.exists()


def test_a_retry_with_an_unusable_date_format_is_refused(uploader_api, tasks_inline) -> None:
    content = b"Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n"
    task_id = upload(uploader_api, "dates.csv", content).json()["task_id"]
    refused = uploader_api.post(f"/api/ingest/tasks/{task_id}/retry", {"date_format": "%Y"})
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_date_format")
    assert IngestionTask.objects.get(pk=task_id).status == IngestionTask.Status.FAILED


def test_a_queued_retry_shows_no_counts_of_the_run_before(uploader_api, tasks_inline, monkeypatch) -> None:
    from django_q.conf import Conf

    rows = ["Date,Branch,Product line,Quantity,Total"] + [f"2019-01-{day:02d},A,Food,x,10" for day in range(1, 11)]
    task_id = upload(uploader_api, "bad.csv", "\n".join(rows).encode()).json()["task_id"]
    failed = status_of(uploader_api, task_id)
    assert (failed["error_code"], failed["rows_rejected"]) == ("too_many_rejected_rows", 10)
    report_key = IngestionTask.objects.get(pk=task_id).error_report_key
    monkeypatch.setattr(Conf, "SYNC", False)  # no worker: the retry stays queued

    assert uploader_api.post(f"/api/ingest/tasks/{task_id}/retry").status_code == 202

    queued = status_of(uploader_api, task_id)
    assert queued["status"] == "queued"
    assert (queued["rows_total"], queued["rows_valid"], queued["rows_rejected"]) == (None, None, None)
    assert (queued["errors"], queued["error_report_url"], queued["timings"]) == ([], None, {})
    assert not default_storage.exists(report_key)


_AMBIGUOUS_DATES = b"Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n"


def test_an_unknown_form_field_is_refused_and_nothing_is_stored(uploader_api: Client, real_file: Path) -> None:
    # `datasource` for `datasource_name` was ignored: the rows went into the default datasource.
    response = upload(uploader_api, "sales.csv", real_file.read_bytes(), datasource="t2")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_form"
    assert "'datasource'" in body["detail"] and "datasource_name" in body["detail"]
    assert not IngestionTask.objects.exists()


def test_a_form_field_sent_twice_is_refused(uploader_api: Client, real_file: Path) -> None:
    response = upload(uploader_api, "sales.csv", real_file.read_bytes(), datasource_name=["north", "south"])
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_form"
    assert "'datasource_name' sent more than once" in response.json()["detail"]
    assert not IngestionTask.objects.exists()


def test_a_retry_refuses_a_json_body_and_unknown_fields(uploader_api: Client, tasks_inline) -> None:
    failed = upload(uploader_api, "dates.csv", _AMBIGUOUS_DATES).json()["task_id"]
    assert IngestionTask.objects.get(pk=failed).status == IngestionTask.Status.FAILED
    # A JSON body was ignored: the task ran again with its old options, as if force had been applied.
    as_json = uploader_api.post(
        f"/api/ingest/tasks/{failed}/retry", {"date_format": "%d/%m/%Y"}, content_type="application/json"
    )
    assert as_json.status_code == 415, as_json.content
    assert as_json.json()["code"] == "unsupported_media_type"
    unknown = uploader_api.post(f"/api/ingest/tasks/{failed}/retry", {"dateformat": "%d/%m/%Y"})
    assert (unknown.status_code, unknown.json()["code"]) == (400, "invalid_form")
    assert IngestionTask.objects.get(pk=failed).status == IngestionTask.Status.FAILED
    # The same option as a form field is read.
    retried = uploader_api.post(f"/api/ingest/tasks/{failed}/retry", {"date_format": "%d/%m/%Y"})
    assert retried.status_code == 202, retried.content
