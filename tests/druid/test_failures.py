"""Failures against the real services: each is told in plain words, keeps the raw file and publishes nothing."""

import datetime as dt
import io
import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from analytics.engines import EngineError, get_engine
from analytics.engines import druid as druid_module
from analytics.engines.druid_ingestion import druid_task_id
from analytics.engines.druid_s3 import s3_object_key
from analytics.models import Datasource, Segment
from analytics.services import datasource_publish
from ingestion.models import IngestionTask
from tests.analytics.publishing import publish_request, rows_totals, sales_rows
from tests.druid.conftest import druid_select, druid_task, druid_task_state

pytestmark = [pytest.mark.druid, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]

WRONG_KEY = "WRONGKEY0000DRUIDTST"


def upload(client, path: Path, **fields):
    handle = io.BytesIO(path.read_bytes())
    handle.name = path.name
    return client.post("/api/ingest/upload", {"file": handle, **fields})


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def nothing_published(datasource: str) -> None:
    assert Datasource.objects.get(name=datasource).data_version == 0
    assert not Segment.objects.filter(datasource__name=datasource).exists()


@pytest.mark.django_db(transaction=True)
def test_wrong_s3_credentials_in_the_input_source_fail_the_task_in_plain_words(
    uploader_api, real_file, tasks_inline, druid_engine, druid_names, settings
):
    datasource = druid_names("badkey")
    settings.DRUID_S3_ACCESS_KEY_ID = WRONG_KEY
    settings.DRUID_S3_SECRET_ACCESS_KEY = "wrong-secret-for-the-test"

    task_id = upload(uploader_api, real_file, datasource_name=datasource).json()["task_id"]

    task = IngestionTask.objects.get(pk=task_id)
    assert task.status == IngestionTask.Status.FAILED
    assert task.error_code == "druid_ingestion_failed"
    expected_uri = f"s3://{settings.S3_BUCKET}/" + s3_object_key(
        default_storage, f"curated/{datasource}/{task_id}/druid-1.json"
    )
    assert task.message.startswith(
        f"Druid could not read {expected_uri}: the access key was refused (InvalidAccessKeyId) — "
        "check the access key Druid uses: DRUID_S3_ACCESS_KEY_ID."
    ), task.message
    assert "Nothing was published; the raw file is kept" in task.message
    assert "Exception" not in task.message and "\tat " not in task.message
    # The failed Druid task is the one shown on the upload, and it really read through an s3 input source.
    assert task.engine_task_id == druid_task_id(datasource=datasource, upload_id=task.pk, attempt=1)
    assert druid_task_state(task.engine_task_id) == "FAILED"
    assert druid_task(task.engine_task_id)["spec"]["ioConfig"]["inputSource"]["type"] == "s3"
    assert default_storage.exists(task.raw_key)
    nothing_published(datasource)

    # Fixed and retried: a new Druid task (attempt 2) loads the rows once.
    settings.DRUID_S3_ACCESS_KEY_ID = settings.DRUID_S3_SECRET_ACCESS_KEY = ""
    response = uploader_api.post(f"/api/ingest/tasks/{task_id}/retry")
    assert response.status_code in (200, 202), response.content
    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert task.engine_task_id == druid_task_id(datasource=datasource, upload_id=task.pk, attempt=2)
    [[lines]] = druid_select(datasource, "SUM(lines)")
    assert lines == 1000


@pytest.mark.django_db(transaction=True)
def test_druid_unreachable_retries_then_fails_clearly(
    uploader_api, real_file, tasks_inline, druid_engine, druid_names, settings, closed_port, monkeypatch, caplog
):
    datasource = druid_names("down")
    settings.DRUID_ROUTER_URL = f"http://127.0.0.1:{closed_port}"
    settings.DRUID_RETRIES = 3
    monkeypatch.setattr(druid_module, "BACKOFF_SECONDS", 0.05)

    with caplog.at_level(logging.WARNING, logger="analytics.engines.druid"):
        task_id = upload(uploader_api, real_file, datasource_name=datasource).json()["task_id"]

    task = IngestionTask.objects.get(pk=task_id)
    assert task.status == IngestionTask.Status.FAILED
    assert task.error_code == "druid_unavailable"
    assert task.message == (
        f"Druid's router at http://127.0.0.1:{closed_port} did not answer after 4 attempts (ConnectionError) — "
        "check DRUID_ROUTER_URL and that the Druid cluster is running. Nothing was published; the raw file is "
        "kept, so the task can be retried."
    )
    attempts = [r.getMessage() for r in caplog.records if r.name == "analytics.engines.druid"]
    assert [message.rsplit("attempt ", 1)[1] for message in attempts] == [
        "1 of 4",
        "2 of 4",
        "3 of 4",
        "4 of 4",
    ]
    assert default_storage.exists(task.raw_key)
    nothing_published(datasource)
    assert not default_storage.listdir(f"curated/{datasource}")[1]


@pytest.mark.django_db
def test_a_publish_interrupted_after_druid_loaded_never_counts_twice(druid_engine, druid_names):
    """The rows reached Druid but the catalogue never switched (a worker died): the retry reuses that task."""
    datasource = druid_names("resume")
    rows = sales_rows(start=dt.date(2024, 3, 1), days=5)
    with tempfile.TemporaryDirectory() as workdir:
        request = publish_request(datasource=datasource, rows=rows, workdir=Path(workdir))
        first_task = get_engine().publish(request=request)

        outcome = datasource_publish(request=request)

    assert (
        outcome.engine_task_id
        == first_task
        == druid_task_id(datasource=datasource, upload_id=request.upload_id, attempt=1)
    )
    assert not outcome.already_published
    [[lines, revenue]] = druid_select(datasource, "SUM(lines), SUM(revenue_sum)")
    assert lines == len(rows)
    assert revenue == pytest.approx(rows_totals(rows)["revenue"], abs=0.005)


@pytest.mark.django_db
def test_cancel_while_druid_loads_shuts_the_task_down(druid_engine, druid_names):
    datasource = druid_names("cancel")
    rows = sales_rows(start=dt.date(2024, 3, 1), days=5)

    class Cancelled(Exception):
        pass

    def check_cancelled() -> None:
        raise Cancelled

    with tempfile.TemporaryDirectory() as workdir:
        request = publish_request(datasource=datasource, rows=rows, workdir=Path(workdir))
        with pytest.raises(Cancelled):
            datasource_publish(request=request, check_cancelled=check_cancelled)

    task_id = druid_task_id(datasource=datasource, upload_id=request.upload_id, attempt=1)
    assert druid_task_state(task_id) == "FAILED"  # shut down
    nothing_published(datasource)


def test_local_storage_is_refused_naming_s3_bucket(druid_engine, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    with pytest.raises(EngineError) as refused:
        get_engine().publish(request=None)
    assert refused.value.code == "druid_needs_s3"
    assert "set S3_BUCKET" in refused.value.detail
    assert settings.S3_BUCKET  # the run has S3; only this test's storage is local


@pytest.mark.django_db
def test_a_publish_failing_before_its_switch_never_reaches_druid(druid_engine, druid_names, monkeypatch):
    """Building the version's facts failed (a full disk, say): Druid must not have loaded the rows,
    which it would count while the catalogue never switched them in."""
    from analytics import services as analytics_services

    datasource = druid_names("unplanned")
    rows = sales_rows(start=dt.date(2024, 3, 1), days=5)

    def disk_full(**kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(analytics_services, "version_facts_build", disk_full)
    with tempfile.TemporaryDirectory() as workdir:
        request = publish_request(datasource=datasource, rows=rows, workdir=Path(workdir))
        with pytest.raises(OSError, match="No space left"):
            datasource_publish(request=request)

    task_id = druid_task_id(datasource=datasource, upload_id=request.upload_id, attempt=1)
    response = druid_module.druid_call("GET", f"/druid/indexer/v1/task/{task_id}/status")
    assert response.status_code == 404, f"Druid ran {task_id}: {response.text}"
    nothing_published(datasource)


@pytest.mark.django_db(transaction=True)
def test_a_publish_failing_after_druid_loaded_removes_the_rows_it_loaded(
    uploader_api, real_file, tasks_inline, druid_engine, druid_names, monkeypatch
):
    """The switch failed after Druid had loaded the file: Druid must not keep counting rows the
    catalogue never published (a corrected file uploaded instead would count twice)."""
    from analytics import services as analytics_services
    from analytics.engines.druid_sync import druid_reconcile

    datasource = druid_names("unswitched")
    # The file's first days (January 2019) already have published rows, which Druid must keep.
    published = sales_rows(start=dt.date(2019, 1, 1), days=5, seed=12)
    with tempfile.TemporaryDirectory() as workdir:
        datasource_publish(request=publish_request(datasource=datasource, rows=published, workdir=Path(workdir)))

    def switch_fails(**kwargs):
        raise RuntimeError("the database went away")

    switch = analytics_services._switch_version
    monkeypatch.setattr(analytics_services, "_switch_version", switch_fails)
    task_id = upload(uploader_api, real_file, datasource_name=datasource).json()["task_id"]

    task = IngestionTask.objects.get(pk=task_id)
    assert task.status == IngestionTask.Status.FAILED
    assert task.message.endswith("Any rows Druid had loaded for it are being removed."), task.message
    assert druid_task_state(druid_task_id(datasource=datasource, upload_id=task.pk, attempt=1)) == "SUCCESS"
    reconciliation = druid_reconcile(datasource_name=datasource)
    assert reconciliation.in_sync, reconciliation.describe()
    [[lines, revenue]] = druid_select(datasource, "SUM(lines), SUM(revenue_sum)")
    assert lines == len(published)
    assert revenue == pytest.approx(rows_totals(published)["revenue"], abs=0.005)

    # Retried once the cause is gone: loaded again (its earlier load was removed), counted once.
    monkeypatch.setattr(analytics_services, "_switch_version", switch)
    assert uploader_api.post(f"/api/ingest/tasks/{task_id}/retry").status_code == 202
    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert druid_reconcile(datasource_name=datasource).in_sync
    [[lines]] = druid_select(datasource, "SUM(lines)")
    assert lines == len(published) + 1000
