"""A crash at each stage: the task fails with a reason, the raw file stays, nothing is published,
and a retry succeeds without counting anything twice."""

import errno
import io
import os
import threading
from pathlib import Path

import polars as pl
import pytest
from django.core.files.storage import default_storage

from analytics.models import Segment
from ingestion import pipeline
from ingestion.models import IngestionTask
from tests.conftest import storage_backend_class

pytestmark = pytest.mark.django_db(transaction=True)

STAGE_FUNCTIONS = {
    "reading": "source_detect",
    "mapping": "mapping_resolve",
    "validating": "batch_transform",
    "publishing": "datasource_publish",
}


def _upload(client, content: bytes):
    handle = io.BytesIO(content)
    handle.name = "sales.csv"
    return client.post("/api/ingest/upload", {"file": handle})


@pytest.mark.parametrize("stage", list(STAGE_FUNCTIONS))
def test_crash_at_each_stage_then_retry(stage: str, uploader_api, real_file: Path, tasks_inline, monkeypatch) -> None:
    real_function = getattr(pipeline, STAGE_FUNCTIONS[stage])

    def crash(*args, **kwargs):
        raise RuntimeError(f"injected crash in {stage}")

    monkeypatch.setattr(pipeline, STAGE_FUNCTIONS[stage], crash)
    body = _upload(uploader_api, real_file.read_bytes()).json()
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert task.status == IngestionTask.Status.FAILED
    assert task.stage == stage
    assert f"injected crash in {stage}" in task.message
    assert task.error_code == "internal_error"
    assert default_storage.exists(task.raw_key)
    assert Segment.objects.count() == 0
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 0

    monkeypatch.setattr(pipeline, STAGE_FUNCTIONS[stage], real_function)
    assert uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry").status_code == 202
    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert task.attempts == 2
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


def test_running_a_task_twice_publishes_once(uploader_api, real_file: Path, tasks_inline) -> None:
    from ingestion.services import ingestion_task_run

    body = _upload(uploader_api, real_file.read_bytes()).json()
    ingestion_task_run(task_id=body["task_id"])  # a duplicate delivery of the same task
    assert Segment.objects.filter(active=True).count() == 1
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


def test_publish_retried_after_commit_does_not_double_count(uploader_api, real_file: Path, tasks_inline) -> None:
    """The publish committed but the task row was not updated (worker died): a retry finds it published."""
    body = _upload(uploader_api, real_file.read_bytes()).json()
    IngestionTask.objects.filter(pk=body["task_id"]).update(status=IngestionTask.Status.FAILED)
    assert uploader_api.post(f"/api/ingest/tasks/{body['task_id']}/retry").status_code == 202
    assert IngestionTask.objects.get(pk=body["task_id"]).status == IngestionTask.Status.SUCCEEDED
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


def test_cancel_queued_task(uploader_api, real_file: Path) -> None:
    body = _upload(uploader_api, real_file.read_bytes()).json()  # no worker: stays queued
    response = uploader_api.post(f"/api/ingest/tasks/{body['task_id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert uploader_api.post(f"/api/ingest/tasks/{body['task_id']}/cancel").json()["code"] == "task_not_cancellable"


def test_retry_of_a_succeeded_task_is_409(uploader_api, real_file: Path, tasks_inline) -> None:
    body = _upload(uploader_api, real_file.read_bytes()).json()
    response = uploader_api.post(f"/api/ingest/tasks/{body['task_id']}/retry")
    assert response.status_code == 409
    assert response.json()["code"] == "task_not_retryable"


def test_unknown_task_is_404(viewer_api) -> None:
    response = viewer_api.get("/api/ingest/status/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "task_not_found"


@pytest.mark.parametrize("target", ["source_read_batches", "_CuratedWriter.write"], ids=["read-ahead", "write-behind"])
def test_a_crash_in_a_reading_or_writing_thread_fails_the_task(
    target: str, uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    # Batches are read ahead and written behind in threads: their errors must reach the task.
    def crash(*args, **kwargs):
        raise OSError(f"injected crash in {target}")

    owner, _, name = target.rpartition(".")
    monkeypatch.setattr(getattr(pipeline, owner) if owner else pipeline, name, crash)
    body = _upload(uploader_api, real_file.read_bytes()).json()
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert (task.status, task.stage) == (IngestionTask.Status.FAILED, "validating")
    assert f"injected crash in {target}" in task.message
    assert default_storage.exists(task.raw_key)
    assert Segment.objects.count() == 0
    assert not [thread for thread in threading.enumerate() if thread.name in ("ingest-read", "ingest-write")]


class PanicException(BaseException):
    """Stands in for pyo3's exception of the same name: a Rust library panicked."""


def test_a_library_panic_fails_the_task_instead_of_leaving_it_running(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    # A BaseException passes `except Exception`: the task stayed `running` and retry answered 409.
    def panic(*args, **kwargs):
        raise PanicException("index out of bounds")

    monkeypatch.setattr(pipeline, "batch_transform", panic)
    body = _upload(uploader_api, real_file.read_bytes()).json()
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "internal_error")
    assert "index out of bounds" in task.message
    assert Segment.objects.count() == 0


def test_a_task_left_running_by_a_vanished_worker_is_failed_then_retried(
    uploader_api, real_file: Path, request, settings
) -> None:
    import datetime as dt

    from django.utils import timezone

    from ingestion.services import ingestion_task_claim
    from ingestion.tasks import ingestion_tasks_reap_task

    # A worker on another machine claims the task and dies (killed, out of memory, a native
    # crash): no handler runs, so the task stayed `running` and retry refused it.
    settings.INGEST_WORKER_LOST_SECONDS = 60
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    task = ingestion_task_claim(task_id=task_id)
    IngestionTask.objects.filter(pk=task.pk).update(worker_host="another-machine")
    recent = IngestionTask.objects.create(
        datasource=task.datasource, status=IngestionTask.Status.RUNNING, started_at=timezone.now()
    )
    assert ingestion_tasks_reap_task() == 0  # its heartbeat is fresh
    IngestionTask.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=61))

    assert ingestion_tasks_reap_task() == 1

    task.refresh_from_db()
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "worker_lost")
    assert "retry the task" in task.message
    recent.refresh_from_db()
    assert recent.status == IngestionTask.Status.RUNNING  # a live run is left alone
    request.getfixturevalue("tasks_inline")
    assert uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry").status_code == 202
    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


@pytest.mark.postgres
def test_a_value_the_database_refuses_fails_the_task_instead_of_leaving_it_running(
    real_file: Path, tasks_inline
) -> None:
    # PostgreSQL refuses a date format longer than its column (the request refuses one now; this
    # stands for any value that reaches the row): saving the failure must not fail the same way.
    from ingestion.services import UploadOptions, ingestion_upload_receive

    task = ingestion_upload_receive(
        local_path=real_file,
        original_filename="sales.csv",
        sha256="1" * 64,
        size_bytes=real_file.stat().st_size,
        datasource_name="sales",
        options=UploadOptions(date_format="%m/%d/%Y" + "x" * 80),
        user=None,
    )
    task.refresh_from_db()
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "internal_error")
    assert "DataError" in task.message
    assert default_storage.exists(task.raw_key)
    assert Segment.objects.count() == 0


def test_a_cancel_accepted_while_publishing_stops_the_switch(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    # Accepted ("Cancelling…") before the rows were switched in, it must take effect, not end
    # in a silent success.
    real_publish = pipeline.datasource_publish
    answers: list[dict] = []

    def cancel_then_publish(**kwargs):
        task_id = kwargs["request"].upload_id
        answers.append(uploader_api.post(f"/api/ingest/tasks/{task_id}/cancel").json())
        return real_publish(**kwargs)

    monkeypatch.setattr(pipeline, "datasource_publish", cancel_then_publish)
    body = _upload(uploader_api, real_file.read_bytes()).json()
    assert answers[0]["status"] == "running" and answers[0]["message"] == "Cancelling…"
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert task.status == IngestionTask.Status.CANCELLED, task.message
    assert "Nothing was published" in task.message
    assert Segment.objects.count() == 0
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 0


def test_a_cancel_after_the_switch_is_refused_as_too_late(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    real_publish = pipeline.datasource_publish
    answers = []

    def publish_then_cancel(**kwargs):
        published = real_publish(**kwargs)
        answers.append(uploader_api.post(f"/api/ingest/tasks/{kwargs['request'].upload_id}/cancel"))
        return published

    monkeypatch.setattr(pipeline, "datasource_publish", publish_then_cancel)
    body = _upload(uploader_api, real_file.read_bytes()).json()
    assert answers[0].status_code == 409
    assert answers[0].json()["code"] == "too_late_to_cancel"
    assert answers[0].json()["detail"].startswith("Too late to cancel: publishing")
    task = IngestionTask.objects.get(pk=body["task_id"])
    assert (task.status, task.cancel_requested) == (IngestionTask.Status.SUCCEEDED, False)
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


def _orphaned_while_druid_loaded(uploader_api, real_file: Path, settings, monkeypatch) -> tuple:
    """A task running on the Druid engine, in publishing with a Druid task id, whose worker has given
    no sign of life for an hour; and the list the removal of its Druid rows is queued on."""
    import datetime as dt

    from django.utils import timezone

    from ingestion import tasks
    from ingestion.services import ingestion_task_claim

    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    task = ingestion_task_claim(task_id=task_id)
    IngestionTask.objects.filter(pk=task.pk).update(
        stage=IngestionTask.Stage.PUBLISHING,
        engine_task_id=f"sales_analytics_sales_{task.pk.hex}_1",
        heartbeat_at=timezone.now() - dt.timedelta(hours=1),
    )
    settings.ANALYTICS_ENGINE = "druid"
    queued: list[str] = []
    monkeypatch.setattr(tasks, "ingestion_task_engine_rows_remove_queue", lambda *, task_id: queued.append(task_id))
    return task, queued


def test_a_task_reaped_after_druid_took_its_rows_has_them_removed(
    uploader_api, real_file: Path, settings, monkeypatch
) -> None:
    from ingestion.services import ingestion_tasks_reap

    # The worker died while Druid loaded the file or while its segments became queryable: the
    # rows Druid holds for it are counted while the catalogue never switched them in.
    task, queued = _orphaned_while_druid_loaded(uploader_api, real_file, settings, monkeypatch)

    assert ingestion_tasks_reap() == 1

    task.refresh_from_db()
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "worker_lost")
    assert task.message.endswith("retry the task. Any rows Druid had loaded for it are being removed.")
    assert queued == [str(task.pk)]


def test_removing_an_engine_s_rows_leaves_a_retried_task_alone(uploader_api, real_file: Path, monkeypatch) -> None:
    from analytics import services as analytics_services
    from ingestion.services import ingestion_task_engine_rows_remove

    asked: list[str] = []
    monkeypatch.setattr(
        analytics_services.get_engine().__class__,
        "publish_undo",
        lambda self, *, datasource_name, upload_id: asked.append(str(upload_id)) or True,
    )
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    IngestionTask.objects.filter(pk=task_id).update(status=IngestionTask.Status.QUEUED)  # retried meanwhile
    assert ingestion_task_engine_rows_remove(task_id=task_id) is False
    IngestionTask.objects.filter(pk=task_id).update(status=IngestionTask.Status.FAILED)
    assert ingestion_task_engine_rows_remove(task_id=task_id) is True
    assert asked == [task_id]


def test_cancelling_a_task_whose_worker_died_after_druid_took_its_rows_has_them_removed(
    uploader_api, real_file: Path, settings, monkeypatch
) -> None:
    # The cancel of an orphaned task takes effect at once: the rows Druid loaded for it were left
    # counted, as only the reaper and a failing run queued their removal.
    task, queued = _orphaned_while_druid_loaded(uploader_api, real_file, settings, monkeypatch)

    response = uploader_api.post(f"/api/ingest/tasks/{task.pk}/cancel")

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.status == IngestionTask.Status.CANCELLED
    assert task.message.endswith("Any rows Druid had loaded for it are being removed.")
    assert queued == [str(task.pk)]


def _upload_with(client, content: bytes, **fields) -> IngestionTask:
    handle = io.BytesIO(content)
    handle.name = "sales.csv"
    return IngestionTask.objects.get(pk=client.post("/api/ingest/upload", {"file": handle, **fields}).json()["task_id"])


def _published_then_worker_lost(client, content: bytes, **fields) -> IngestionTask:
    """An upload whose worker was killed between publishing's switch and recording its success:
    its rows are in, its mapping was not saved yet, and the reaper failed it as `worker_lost`."""
    from ingestion.models import ColumnMapping

    task = _upload_with(client, content, **fields)
    ColumnMapping.objects.all().delete()
    IngestionTask.objects.filter(pk=task.pk).update(
        status=IngestionTask.Status.FAILED, error_code="worker_lost", stage=IngestionTask.Stage.PUBLISHING
    )
    return IngestionTask.objects.get(pk=task.pk)


SWAPPED_COST_AND_PROFIT = '{"cogs": "gross_profit", "gross income": "cost"}'


@pytest.mark.parametrize(
    "override", [{"mode": "replace"}, {"mapping": SWAPPED_COST_AND_PROFIT}], ids=["mode", "mapping"]
)
def test_a_retry_of_a_task_whose_rows_are_published_refuses_other_options(
    override: dict, uploader_api, real_file: Path, tasks_inline
) -> None:
    # The retry only records the earlier switch: the rows stay the first reading's, so a task
    # showing mode=replace (or saving a swapped mapping for later files) would be wrong.
    from ingestion.models import ColumnMapping

    task = _published_then_worker_lost(uploader_api, real_file.read_bytes())

    response = uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry", override)

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "rows_already_published"
    assert f"cannot change {next(iter(override))}" in body["detail"]
    assert "upload it again with mode=replace" in body["detail"]
    task.refresh_from_db()
    assert (task.status, task.mode, task.options.get("mapping")) == (IngestionTask.Status.FAILED, "append", None)
    assert not ColumnMapping.objects.exists()
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


def test_a_retry_finishing_a_published_task_says_its_rows_were_published_before(
    uploader_api, real_file: Path, tasks_inline
) -> None:
    from ingestion.models import ColumnMapping

    task = _published_then_worker_lost(uploader_api, real_file.read_bytes())
    # Options the task already has are no change.
    assert uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry", {"mode": "append"}).status_code == 202

    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert task.message.startswith(
        "The run before had already published its 1,000 rows as data version 1 of 'sales' (2019-01-01 to 2019-03-30)"
    )
    assert "nothing was counted twice" in task.message
    assert ColumnMapping.objects.get().mapping["cost"] == "cogs"  # what the killed run would have saved
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


def test_finishing_a_published_task_keeps_the_mapping_a_later_upload_saved(
    uploader_api, real_file: Path, tasks_inline
) -> None:
    from ingestion.models import ColumnMapping

    task = _published_then_worker_lost(uploader_api, real_file.read_bytes(), mapping='{"Rating": ""}')
    later = _upload_with(uploader_api, real_file.read_bytes(), mode="replace", force="true")
    assert later.status == IngestionTask.Status.SUCCEEDED, later.message
    saved = ColumnMapping.objects.get().mapping
    assert saved["rating"] == "Rating"

    assert uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry").status_code == 202

    task.refresh_from_db()
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert ColumnMapping.objects.get().mapping == saved


def _no_space_left(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _polars_no_space_left(*args, **kwargs):
    # Polars gives no errno, only the system's words in its message.
    raise pl.exceptions.ComputeError(
        "parquet: File out of specification: underlying IO error: No space left on device (os error 28)"
    )


@pytest.mark.parametrize(
    ("target", "failure"),
    [("_CuratedWriter.write", _no_space_left), ("batch_transform", _polars_no_space_left)],
    ids=["curated-file", "polars"],
)
def test_a_full_work_folder_fails_the_task_as_storage_full(
    target: str, failure, uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    owner, _, name = target.rpartition(".")
    monkeypatch.setattr(getattr(pipeline, owner) if owner else pipeline, name, failure)

    task = _upload_with(uploader_api, real_file.read_bytes())

    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "storage_full")
    assert task.message.startswith(
        "The server ran out of disk space while validating. Nothing was published; the raw file is kept; "
        "ask the administrator to free space, then retry the task."
    )
    assert Segment.objects.count() == 0


def test_a_full_storage_while_publishing_fails_the_task_as_storage_full(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    backend = storage_backend_class()
    save = backend._save

    def curated_refused(self, name: str, content) -> str:
        if name.startswith("curated/"):
            _no_space_left()
        return save(self, name, content)

    monkeypatch.setattr(backend, "_save", curated_refused)

    task = _upload_with(uploader_api, real_file.read_bytes())

    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "storage_full")
    assert task.message.startswith("The server ran out of disk space while publishing. Nothing was published")
    assert default_storage.exists(task.raw_key)
    assert Segment.objects.count() == 0


def _raw_file_moved_away(task: IngestionTask, tmp_path: Path) -> None:
    with default_storage.open(task.raw_key, "rb") as stored:
        (tmp_path / "moved.csv").write_bytes(stored.read())
    default_storage.delete(task.raw_key)


def test_a_task_whose_raw_file_left_storage_fails_as_raw_file_missing(
    uploader_api, real_file: Path, tmp_path: Path, settings
) -> None:
    from ingestion.services import ingestion_task_run

    task = _upload_with(uploader_api, real_file.read_bytes())  # no worker: queued
    _raw_file_moved_away(task, tmp_path)

    ingestion_task_run(task_id=str(task.pk))

    task.refresh_from_db()
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "raw_file_missing")
    assert task.message == (
        f"Nothing was published. The task's raw file is no longer in storage ('{task.raw_key}': moved or deleted), "
        "so a retry cannot succeed: upload the file again."
    )
    assert str(settings.VAR_DIR) not in task.message and str(settings.STORAGE_DIR) not in task.message  # no server path


def test_a_retry_of_a_task_whose_raw_file_left_storage_is_refused(
    uploader_api, real_file: Path, tmp_path: Path, tasks_inline, monkeypatch
) -> None:
    monkeypatch.setattr(pipeline, "batch_transform", _no_space_left)
    task = _upload_with(uploader_api, real_file.read_bytes())
    assert task.status == IngestionTask.Status.FAILED
    _raw_file_moved_away(task, tmp_path)

    response = uploader_api.post(f"/api/ingest/tasks/{task.pk}/retry")

    assert response.status_code == 409, response.content
    assert response.json() == {
        "detail": f"The task's raw file is no longer in storage ('{task.raw_key}': moved or deleted), so a retry "
        "cannot succeed: upload the file again.",
        "code": "raw_file_missing",
    }
    assert IngestionTask.objects.get(pk=task.pk).attempts == 1


def test_a_task_cancelled_while_validating_does_not_show_its_partial_counts_as_the_file_s(
    uploader_api, real_file: Path, tasks_inline, settings, monkeypatch
) -> None:
    settings.INGEST_BATCH_ROWS = 200
    real_transform = pipeline.batch_transform
    checked_when_cancelled: list[int] = []

    def cancel_after_the_first_batch(batch, plan):
        task = IngestionTask.objects.get(status=IngestionTask.Status.RUNNING)
        if task.rows_total and not checked_when_cancelled:
            checked_when_cancelled.append(task.rows_total)
            uploader_api.post(f"/api/ingest/tasks/{task.pk}/cancel")
        return real_transform(batch, plan)

    monkeypatch.setattr(pipeline, "batch_transform", cancel_after_the_first_batch)

    task = _upload_with(uploader_api, real_file.read_bytes())

    assert task.status == IngestionTask.Status.CANCELLED, task.message
    assert 0 < checked_when_cancelled[0] < 1000
    # The next batch was checked before the cancel was seen: what was checked, in words.
    assert task.message.startswith("Cancelled. Nothing was published; the raw file is kept. It stopped after checking ")
    assert "of the file (0 rejected so far)." in task.message
    status = uploader_api.get(f"/api/ingest/status/{task.pk}").json()
    assert (status["rows_total"], status["rows_valid"], status["rows_rejected"]) == (None, None, None)


def test_a_task_refused_after_validating_keeps_the_file_s_counts(uploader_api, tasks_inline) -> None:
    rows = ["Date,Branch,Product line,Quantity,Total"] + [f"2019-01-{day:02d},A,Food,x,10" for day in range(1, 11)]
    task = _upload_with(uploader_api, "\n".join(rows).encode())
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "too_many_rejected_rows")
    assert (task.rows_total, task.rows_valid, task.rows_rejected) == (10, 0, 10)


def test_a_task_whose_worker_died_while_validating_does_not_show_its_partial_counts(
    uploader_api, real_file: Path, settings
) -> None:
    import datetime as dt

    from django.utils import timezone

    from ingestion.services import ingestion_task_claim, ingestion_tasks_reap

    settings.INGEST_WORKER_LOST_SECONDS = 60
    task = ingestion_task_claim(task_id=_upload_with(uploader_api, real_file.read_bytes()).pk)
    IngestionTask.objects.filter(pk=task.pk).update(
        stage=IngestionTask.Stage.VALIDATING,
        progress=46,
        rows_total=150_000,
        rows_valid=149_000,
        rows_rejected=1_000,
        worker_host="another-machine",
        heartbeat_at=timezone.now() - dt.timedelta(minutes=5),
    )

    assert ingestion_tasks_reap() == 1

    task.refresh_from_db()
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "worker_lost")
    assert (task.rows_total, task.rows_valid, task.rows_rejected) == (None, None, None)
    assert task.message.endswith("It stopped after checking 150,000 rows of the file (1,000 rejected so far).")
