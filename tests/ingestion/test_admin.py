import io

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
