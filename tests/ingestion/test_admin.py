import io
import re

import pytest
from django.test import Client

from ingestion.models import IngestionTask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_browser(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _failed_task(uploader_api, tmp_path, monkeypatch) -> IngestionTask:
    from ingestion import pipeline

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    real_transform = pipeline.batch_transform
    monkeypatch.setattr(pipeline, "batch_transform", crash)
    handle = io.BytesIO(b"Date,Branch,Product line,Quantity,Total\n2019-01-01,A,Food,1,10\n")
    handle.name = "one.csv"
    body = uploader_api.post("/api/ingest/upload", {"file": handle}).json()
    monkeypatch.setattr(pipeline, "batch_transform", real_transform)
    return IngestionTask.objects.get(pk=body["task_id"])


def test_admin_lists_filters_and_searches_tasks(admin_browser, uploader_api, tmp_path, monkeypatch, tasks_inline):
    task = _failed_task(uploader_api, tmp_path, monkeypatch)
    listing = admin_browser.get("/admin/ingestion/ingestiontask/?status__exact=failed")
    assert listing.status_code == 200
    assert b"one.csv" in listing.content
    assert b"one.csv" not in admin_browser.get("/admin/ingestion/ingestiontask/?status__exact=succeeded").content
    assert b"one.csv" in admin_browser.get("/admin/ingestion/ingestiontask/?q=one").content
    detail = admin_browser.get(f"/admin/ingestion/ingestiontask/{task.pk}/change/")
    assert detail.status_code == 200
    assert f"/uploads/{task.pk}/raw".encode() in detail.content  # link to the raw file
    assert b"disk on fire" in detail.content


def test_admin_retry_action_reruns_from_raw_file(admin_browser, uploader_api, tmp_path, monkeypatch, tasks_inline):
    task = _failed_task(uploader_api, tmp_path, monkeypatch)
    response = admin_browser.post(
        "/admin/ingestion/ingestiontask/", {"action": "retry_tasks", "_selected_action": [str(task.pk)]}
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert admin_browser.get(f"/uploads/{task.pk}/raw").status_code == 200


def test_admin_cancel_action(admin_browser, uploader_api) -> None:
    handle = io.BytesIO(b"Date,Branch,Product line,Quantity,Total\n2019-01-01,A,Food,1,10\n")
    handle.name = "queued.csv"
    body = uploader_api.post("/api/ingest/upload", {"file": handle}).json()  # no worker: stays queued
    admin_browser.post(
        "/admin/ingestion/ingestiontask/", {"action": "cancel_tasks", "_selected_action": [body["task_id"]]}
    )
    assert IngestionTask.objects.get(pk=body["task_id"]).status == IngestionTask.Status.CANCELLED


def test_viewer_cannot_open_task_admin(viewer) -> None:
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/ingestion/ingestiontask/").status_code == 302


GOOD_CSV = b"Date,Branch,Product line,Quantity,Total\n2019-01-01,A,Food,1,10\n2019-01-02,B,Food,2,20\n"


def _upload(api: Client, content: bytes, name: str = "sales.csv") -> dict:
    handle = io.BytesIO(content)
    handle.name = name
    return api.post("/api/ingest/upload", {"file": handle}).json()


@pytest.mark.parametrize(
    ("mapping", "source_columns", "error"),
    [
        ('["x"]', '["Total"]', 'The mapping must be an object of canonical field → source column, e.g. {"revenue"'),
        (
            '{"turnover": "Total"}',
            '["Total"]',
            "Unknown canonical field 'turnover' in the mapping; the fields are date,",
        ),
        ('{"revenue": 5}', '["Total"]', "The source column for revenue must be a column name in quotes (got 5)."),
        (
            '{"revenue": "Total"}',
            '"Total"',
            'The source columns must be a list of column names, e.g. ["Date", "Total"]',
        ),
    ],
)
def test_the_admin_refuses_a_saved_mapping_that_is_not_fields_to_columns(
    admin_browser, uploader_api, tasks_inline, mapping: str, source_columns: str, error: str
) -> None:
    import html

    from ingestion.models import ColumnMapping

    _upload(uploader_api, GOOD_CSV)
    saved = ColumnMapping.objects.get()
    response = admin_browser.post(
        f"/admin/ingestion/columnmapping/{saved.pk}/change/", {"mapping": mapping, "source_columns": source_columns}
    )
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    assert ColumnMapping.objects.get().mapping == saved.mapping


def test_an_unusable_saved_mapping_is_set_aside_with_a_note(uploader_api, tasks_inline) -> None:
    # Stored past the admin's checks (an older admin, a shell): every upload failed with
    # "'list' object has no attribute 'items'".
    from ingestion.models import ColumnMapping

    _upload(uploader_api, GOOD_CSV)
    ColumnMapping.objects.update(mapping=["x"])
    note = "The saved column mapping of this datasource cannot be used, so it was ignored"

    handle = io.BytesIO(GOOD_CSV.replace(b"2019", b"2020"))
    handle.name = "later.csv"
    preview = uploader_api.post("/api/ingest/preview", {"file": handle})
    assert preview.status_code == 200
    assert any(sentence.startswith(note) for sentence in preview.json()["schema_drift"]), preview.json()
    task = IngestionTask.objects.get(
        pk=_upload(uploader_api, GOOD_CSV.replace(b"2019", b"2020"), "later.csv")["task_id"]
    )
    assert (task.status, task.rows_valid) == (IngestionTask.Status.SUCCEEDED, 2), task.message
    assert any(sentence.startswith(note) for sentence in task.notes), task.notes
    assert ColumnMapping.objects.get().mapping["revenue"] == "Total"  # the published upload's mapping replaced it


def _left_by_a_vanished_worker(task_id: str) -> None:
    """The task as a worker on another machine leaves it when killed right after taking it."""
    import datetime as dt

    from django.utils import timezone

    from ingestion.services import ingestion_task_claim

    ingestion_task_claim(task_id=task_id)
    IngestionTask.objects.filter(pk=task_id).update(
        worker_host="elsewhere", heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )


@pytest.mark.parametrize("page", ["list", "detail"])
def test_the_admin_fails_a_task_its_worker_left_before_showing_it(admin_browser, uploader_api, page: str) -> None:
    task_id = _upload(uploader_api, GOOD_CSV)["task_id"]  # no worker runs: it stays queued
    _left_by_a_vanished_worker(task_id)

    path = "/admin/ingestion/ingestiontask/" + (f"{task_id}/change/" if page == "detail" else "")
    shown = admin_browser.get(path).content.decode()

    task = IngestionTask.objects.get(pk=task_id)
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "worker_lost")
    # The raw file was stored during the upload: the run had not begun, it was not "storing raw".
    assert "stopped (killed or crashed) before it began reading the file" in task.message
    assert "storing raw" not in task.message.lower()
    status_shown = r'field-status">Failed<' if page == "list" else r'<div class="readonly">Failed</div>'
    assert re.search(status_shown, shown), shown


def test_a_queued_task_and_a_queued_retry_show_they_wait_for_a_worker(admin_browser, uploader_api) -> None:
    from ingestion.services import ingestion_task_cancel, ingestion_task_retry

    new = IngestionTask.objects.get(pk=_upload(uploader_api, GOOD_CSV)["task_id"])
    retried = IngestionTask.objects.get(pk=_upload(uploader_api, GOOD_CSV.replace(b"2019", b"2020"))["task_id"])
    ingestion_task_retry(task=ingestion_task_cancel(task=retried))

    listing = admin_browser.get("/admin/ingestion/ingestiontask/").content.decode()
    assert re.findall(r'field-stage_shown">([^<]*)<', listing) == ["Waiting for a worker"] * 2
    retried.refresh_from_db()
    assert retried.stage_label == new.stage_label == "Waiting for a worker"
    assert retried.message == "Queued again from the stored raw file; waiting for a worker."
    assert (
        "Waiting for a worker"
        in admin_browser.get(f"/admin/ingestion/ingestiontask/{retried.pk}/change/").content.decode()
    )


def test_the_raw_file_link_of_a_file_gone_from_storage_is_a_clear_404(admin_browser, uploader_api) -> None:
    from django.core.files.storage import default_storage

    task = IngestionTask.objects.get(pk=_upload(uploader_api, GOOD_CSV, "gone.csv")["task_id"])
    default_storage.delete(task.raw_key)

    response = admin_browser.get(f"/uploads/{task.pk}/raw")

    assert response.status_code == 404  # was a 500 (FileNotFoundError)
    assert "The raw file of gone.csv is no longer in storage" in response.content.decode()


def _messages_after(admin_browser: Client, action: str, tasks: list[IngestionTask]) -> list[str]:
    from django.contrib.messages import get_messages

    response = admin_browser.post(
        "/admin/ingestion/ingestiontask/",
        {"action": action, "_selected_action": [str(task.pk) for task in tasks]},
        follow=True,
    )
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_a_bulk_retry_of_two_copies_of_a_file_offers_the_forced_retry(admin_browser, uploader_api) -> None:
    from ingestion.admin import FORCED_RETRY
    from ingestion.services import ingestion_task_cancel

    copies = []
    for _ in range(2):  # the second upload is taken: the first had stopped (cancelled) by then
        copy = IngestionTask.objects.get(pk=_upload(uploader_api, GOOD_CSV, "bad.csv")["task_id"])
        copies.append(ingestion_task_cancel(task=copy))

    shown = _messages_after(admin_browser, "retry_tasks", copies)

    refusals = [message for message in shown if "Could not retry" in message]
    assert len(refusals) == 1, shown
    # The file name as it is (the admin capitalised "bad.csv: …"), and advice the admin can follow.
    assert refusals[0].startswith("Could not retry bad.csv: This exact file is already being loaded")
    assert f"Wait for it, or use the action “{FORCED_RETRY}” to load it twice." in refusals[0]
    assert "force=true" not in refusals[0]
    assert "1 task queued again." in shown
    refused = next(copy for copy in copies if IngestionTask.objects.get(pk=copy.pk).status == "cancelled")

    assert _messages_after(admin_browser, "retry_tasks_forced", [refused]) == ["1 task queued again (force)."]
    assert IngestionTask.objects.get(pk=refused.pk).status == IngestionTask.Status.QUEUED
