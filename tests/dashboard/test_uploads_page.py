"""The Uploads page without JavaScript: a plain form post, then the task page."""

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from django.test import Client

from ingestion.models import IngestionTask
from tests.conftest import REAL_FILE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def uploader_browser(uploader) -> Client:
    client = Client()
    client.force_login(uploader)
    return client


def _post_file(client: Client, path: Path, **fields):
    handle = io.BytesIO(path.read_bytes())
    handle.name = path.name
    return client.post("/uploads", {"file": handle, "datasource_name": "sales", **fields})


def test_upload_page_publishes_the_real_file(uploader_browser, tasks_inline) -> None:
    page = uploader_browser.get("/uploads")
    assert page.status_code == 200
    assert b'enctype="multipart/form-data"' in page.content
    assert b"vendor/htmx.min.js" in page.content

    response = _post_file(uploader_browser, REAL_FILE)
    assert response.status_code == 302
    task = IngestionTask.objects.get()
    assert response["Location"] == f"/uploads/{task.pk}"
    detail = uploader_browser.get(response["Location"])
    assert b"Succeeded" in detail.content
    assert b"Published 1,000 rows" in detail.content
    summary = uploader_browser.get("/api/metrics/summary").json()
    assert summary["total_revenue"] == pytest.approx(322_966.749, abs=0.005)

    listing = uploader_browser.get("/uploads?partial=tasks", HTTP_HX_REQUEST="true")
    assert b"supermarket_sales.csv" in listing.content
    assert b"<html" not in listing.content  # a partial, not the whole page


def test_failed_task_offers_fix_and_retry_from_stored_file(uploader_browser, tmp_path: Path, tasks_inline) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n")
    response = _post_file(uploader_browser, path)
    task = IngestionTask.objects.get()
    assert task.error_code == "ambiguous_dates"
    detail = uploader_browser.get(response["Location"]).content.decode()
    assert "Fix and retry" in detail
    retry_url = re.search(r'action="(/uploads/[^"]+/retry)"', detail).group(1)
    uploader_browser.post(retry_url, {"date_format": "%d/%m/%y", "mode": "append"})
    task.refresh_from_db()
    assert task.status == "succeeded", task.message
    assert task.attempts == 2
    summary = uploader_browser.get("/api/metrics/summary?start=2019-02-01&end=2019-02-01").json()
    assert summary["total_revenue"] == 10


def test_refusal_is_shown_as_a_message(uploader_browser, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    response = _post_file(uploader_browser, path)
    page = uploader_browser.get(response["Location"])
    assert b"The file is empty" in page.content
    assert IngestionTask.objects.count() == 0


def test_viewer_sees_tasks_but_no_upload_form(viewer) -> None:
    client = Client()
    client.force_login(viewer)
    page = client.get("/uploads")
    assert page.status_code == 200
    assert b'name="file"' not in page.content
    response = _post_file(client, REAL_FILE)
    assert IngestionTask.objects.count() == 0
    assert b"does not allow uploading" in client.get(response["Location"]).content


def test_hostile_file_name_is_escaped(uploader_browser, tasks_inline, tmp_path: Path) -> None:
    path = tmp_path / "<img src=x onerror=alert(1)>.csv"
    path.write_bytes(REAL_FILE.read_bytes())
    _post_file(uploader_browser, path)
    listing = uploader_browser.get("/uploads").content
    assert b"<img src=x" not in listing
    assert b"&lt;img src=x onerror=alert(1)&gt;.csv" in listing


def test_schema_drift_is_reported_on_a_later_upload(uploader_browser, tmp_path: Path, tasks_inline) -> None:
    first = tmp_path / "one.csv"
    first.write_text("Date,Branch,Product line,Quantity,Total\n2019-01-01,A,Food,1,10\n")
    _post_file(uploader_browser, first)
    second = tmp_path / "two.csv"
    second.write_text("Date,Store,Product line,Quantity,Total\n2019-01-02,A,Food,1,10\n")
    _post_file(uploader_browser, second)
    latest = IngestionTask.objects.order_by("-created_at").first()
    assert latest.status == "succeeded", latest.message
    assert "Schema drift" in latest.message
    assert any("Store" in note for note in latest.notes)
    status = uploader_browser.get(f"/api/ingest/status/{latest.pk}").json()
    assert status["notes"] == latest.notes


def test_upload_page_takes_the_decimal_mark(uploader_browser, tmp_path: Path, tasks_inline) -> None:
    page = uploader_browser.get("/uploads")
    assert b'name="decimal"' in page.content
    path = tmp_path / "points.csv"
    path.write_text("Date;Branch;Product line;Quantity;Total\n" + "05.01.2019;A;Food;1;1.250\n" * 4, encoding="utf-8")
    response = _post_file(uploader_browser, path, decimal=".")
    assert response.status_code == 302
    task = IngestionTask.objects.get()
    assert task.options["decimal"] == "."
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert uploader_browser.get("/api/metrics/summary").json()["total_revenue"] == pytest.approx(5.0)


def test_a_repeated_header_is_fixed_from_the_task_page(uploader_browser, tmp_path: Path, tasks_inline) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(
        "Date,Branch,Product line,Quantity,Total,Total\n05/01/2019,A,Food,1,10,12\n06/01/2019,A,Food,1,20,22\n"
    )
    response = _post_file(uploader_browser, path)
    task = IngestionTask.objects.get()
    assert task.error_code == "ambiguous_columns"
    detail = uploader_browser.get(response["Location"]).content.decode()
    assert "Fix and retry" in detail and 'name="decimal"' in detail
    retry_url = re.search(r'action="(/uploads/[^"]+/retry)"', detail).group(1)
    uploader_browser.post(retry_url, {"mapping": '{"Total_2": "revenue"}', "date_format": "%d/%m/%Y", "decimal": ""})
    task.refresh_from_db()
    assert task.status == "succeeded", task.message
    assert uploader_browser.get("/api/metrics/summary").json()["total_revenue"] == 34


def test_task_times_are_shown_in_the_site_time_zone_with_its_abbreviation(uploader_browser, settings, tmp_path) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    path = tmp_path / "small.csv"
    path.write_text("Date,Branch,Product line,Quantity,Total\n2019-01-02,A,Food,1,10\n")
    _post_file(uploader_browser, path)
    IngestionTask.objects.update(
        created_at=dt.datetime(2025, 1, 15, 12, 0, tzinfo=dt.UTC),
        finished_at=dt.datetime(2025, 7, 15, 12, 5, tzinfo=dt.UTC),
    )
    task = IngestionTask.objects.get()

    detail = uploader_browser.get(f"/uploads/{task.pk}").content.decode()
    listing = uploader_browser.get("/uploads").content.decode()

    # Stored in UTC; shown as Berlin's clock said, in winter and in summer time.
    assert "<dt>Uploaded</dt><dd>2025-01-15 13:00 CET by " in detail
    assert "<dt>Finished</dt><dd>2025-07-15 14:05 CEST</dd>" in detail
    assert "<td>2025-01-15 13:00 CET</td>" in listing


def test_the_raw_file_downloads_under_its_original_name(uploader_browser, tmp_path: Path) -> None:
    # It is stored as Ventes_été_2019_copie.csv; the download named it that way.
    path = tmp_path / "Ventes été 2019 (copie).csv"
    path.write_bytes(REAL_FILE.read_bytes())
    _post_file(uploader_browser, path)
    task = IngestionTask.objects.get()

    response = uploader_browser.get(f"/uploads/{task.pk}/raw")
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'attachment; filename="Ventes ete 2019 (copie).csv"; '
        "filename*=UTF-8''Ventes%20%C3%A9t%C3%A9%202019%20%28copie%29.csv"
    )
    assert b"".join(response.streaming_content) == REAL_FILE.read_bytes()


def test_the_upload_pages_are_never_restored_from_the_browser_cache(
    uploader_browser, tmp_path: Path, tasks_inline
) -> None:
    # Back after an upload showed the list without it and the form ready to send the file again.
    assert "no-store" in uploader_browser.get("/uploads")["Cache-Control"]
    path = tmp_path / "day.csv"
    path.write_text("Date,Branch,Product line,Quantity,Total\n2019-02-01,A,Food,1,10\n")
    task_page = _post_file(uploader_browser, path)["Location"]
    assert "no-store" in uploader_browser.get(task_page)["Cache-Control"]


def test_a_queued_upload_says_when_no_worker_runs(uploader_browser, tmp_path: Path, monkeypatch) -> None:
    # It said "Waiting for a worker" for ever, while /api/health knew no worker was running.
    from sales_analytics.health import CheckResult

    path = tmp_path / "day.csv"
    path.write_text("Date,Branch,Product line,Quantity,Total\n2019-02-01,A,Food,1,10\n")
    task_page = _post_file(uploader_browser, path)["Location"]
    assert IngestionTask.objects.get().status == IngestionTask.Status.QUEUED
    warning = "No background worker is running"
    assert warning in uploader_browser.get(task_page).content.decode()
    assert warning in uploader_browser.get("/uploads").content.decode()

    monkeypatch.setattr("dashboard.uploads.check_worker", lambda: CheckResult(ok=True, detail="1 running"))
    assert warning not in uploader_browser.get(task_page).content.decode()
    assert warning not in uploader_browser.get("/uploads").content.decode()


def test_a_rejected_row_without_a_value_shows_a_dash_not_none(uploader_browser, tmp_path: Path, tasks_inline) -> None:
    path = tmp_path / "gap.csv"
    rows = "".join(f"2019-02-{day:02d},A,Food,1,10\n" for day in range(1, 10))
    path.write_text("Date,Branch,Product line,Quantity,Total\n" + rows + ",A,Food,1,10\n")
    page = uploader_browser.get(_post_file(uploader_browser, path)["Location"]).content.decode()
    row = re.search(r"<tr><td>11</td><td>Date</td><td>([^<]*)</td>", page)
    assert row is not None, page
    assert row.group(1) == "—"


def test_a_task_s_message_names_the_form_s_options_not_the_api_s(
    uploader_browser, tmp_path: Path, tasks_inline
) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n")
    task_page = _post_file(uploader_browser, path)["Location"]
    assert "date_format" in IngestionTask.objects.get().message  # the API's and the task's own wording
    message = re.search(r'<p class="task-message">([^<]*)</p>', uploader_browser.get(task_page).content.decode())
    assert message is not None
    assert "date_format" not in message.group(1)
    assert "“Date format”" in message.group(1)
