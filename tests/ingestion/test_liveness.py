"""A worker that dies outright (kill -9, out of memory, a native crash) writes nothing more: the
task it ran must not stay `running` for an hour refusing cancel, retry and a new upload."""

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from analytics.models import Segment
from ingestion import pipeline
from ingestion.liveness import Worker, process_alive, task_worker_gone, this_worker
from ingestion.models import IngestionTask
from ingestion.services import ingestion_task_claim, ingestion_tasks_reap
from ingestion.tasks import ingestion_task_execute
from tests.processes import MANAGE_PY, django_subprocess_env

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
HERE = Worker(host="worker-1", pid=100)


def _running(**fields) -> IngestionTask:
    """A running task as the row holds it (not saved: the rule reads fields only)."""
    defaults = {"status": IngestionTask.Status.RUNNING, "started_at": NOW - dt.timedelta(minutes=3)}
    return IngestionTask(**{**defaults, **fields})


# --- The rule ---------------------------------------------------------------------------


def test_a_worker_process_gone_from_this_machine_is_lost_at_once() -> None:
    task = _running(worker_host="worker-1", worker_pid=4321, heartbeat_at=NOW)
    reason = task_worker_gone(task=task, now=NOW, here=HERE, alive=lambda pid: False)
    assert reason is not None and "4321" in reason and "worker-1" in reason
    assert task_worker_gone(task=task, now=NOW, here=HERE, alive=lambda pid: True) is None


def test_a_worker_on_another_machine_is_judged_by_its_heartbeat(settings) -> None:
    settings.INGEST_WORKER_LOST_SECONDS = 60
    checked: list[int] = []

    def alive(pid: int) -> bool:
        checked.append(pid)  # another machine's pid says nothing about this one's processes
        return False

    fresh = _running(worker_host="worker-2", worker_pid=4321, heartbeat_at=NOW - dt.timedelta(seconds=59))
    assert task_worker_gone(task=fresh, now=NOW, here=HERE, alive=alive) is None
    silent = _running(worker_host="worker-2", worker_pid=4321, heartbeat_at=NOW - dt.timedelta(seconds=61))
    assert "61 s" in task_worker_gone(task=silent, now=NOW, here=HERE, alive=alive)
    assert checked == []


def test_a_live_process_with_a_stale_heartbeat_is_lost(settings) -> None:
    # The pid may have been given to another process since, or the run hangs without its heartbeat.
    settings.INGEST_WORKER_LOST_SECONDS = 60
    task = _running(worker_host="worker-1", worker_pid=4321, heartbeat_at=NOW - dt.timedelta(minutes=5))
    assert task_worker_gone(task=task, now=NOW, here=HERE, alive=lambda pid: True) is not None


def test_a_task_started_before_heartbeats_keeps_the_time_limit_rule(settings) -> None:
    limit = dt.timedelta(seconds=settings.Q_CLUSTER["timeout"]) + dt.timedelta(minutes=5)
    assert task_worker_gone(task=_running(started_at=NOW - limit + dt.timedelta(1)), now=NOW, here=HERE) is None
    assert task_worker_gone(task=_running(started_at=NOW - limit - dt.timedelta(1)), now=NOW, here=HERE) is not None


def test_a_long_run_with_a_fresh_heartbeat_is_alive(settings) -> None:
    # `manage.py ingest` has no time limit: a two-hour run that still beats is not lost.
    task = _running(worker_host="worker-2", started_at=NOW - dt.timedelta(hours=2), heartbeat_at=NOW)
    assert task_worker_gone(task=task, now=NOW, here=HERE) is None


@pytest.mark.parametrize("status", [s for s in IngestionTask.Status.values if s != IngestionTask.Status.RUNNING])
def test_only_running_tasks_can_lose_their_worker(status: str) -> None:
    task = _running(status=status, worker_host="worker-1", worker_pid=4321, heartbeat_at=NOW - dt.timedelta(days=1))
    assert task_worker_gone(task=task, now=NOW, here=HERE, alive=lambda pid: False) is None


def test_process_alive_sees_a_killed_process_even_before_it_is_collected() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(0)  # os.kill(0, …) would signal our own process group
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while process_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(child.pid)  # a zombie: dead, not yet collected by its parent
    finally:
        child.wait()
    assert not process_alive(child.pid)


# --- A real worker killed mid-task ------------------------------------------------------

# Runs the task as django-q2's worker would, slowed down so the test can kill it mid-validation.
WORKER_SCRIPT = """
import time
from ingestion import pipeline
from ingestion.tasks import ingestion_task_execute

real_transform = pipeline.batch_transform

def slow_transform(*args, **kwargs):
    time.sleep(0.4)
    return real_transform(*args, **kwargs)

pipeline.batch_transform = slow_transform
ingestion_task_execute({task_id!r})
"""


def _upload(client, content: bytes, **fields):
    handle = io.BytesIO(content)
    handle.name = "sales.csv"
    return client.post("/api/ingest/upload", {"file": handle, **fields})


def _kill_its_worker_mid_validation(task_id: str) -> int:
    """Run the task in another process, kill -9 it while it validates; its pid."""
    env = {**django_subprocess_env(), "INGEST_BATCH_ROWS": "100"}
    worker = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "shell", "-c", WORKER_SCRIPT.format(task_id=task_id)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            task = IngestionTask.objects.get(pk=task_id)
            if task.stage == IngestionTask.Stage.VALIDATING and (task.rows_total or 0) >= 200:
                break
            assert worker.poll() is None, "the worker ended before it was killed"
            assert time.monotonic() < deadline, f"the worker never reached validation: {task.message}"
            time.sleep(0.1)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    task = IngestionTask.objects.get(pk=task_id)
    assert (task.status, task.worker_pid) == (IngestionTask.Status.RUNNING, worker.pid)
    return worker.pid


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_s_task_fails_at_the_next_status_read_then_retries(
    uploader_api, real_file: Path, request
) -> None:
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]  # no worker: stays queued
    _kill_its_worker_mid_validation(task_id)

    body = uploader_api.get(f"/api/ingest/status/{task_id}").json()
    assert (body["status"], body["error_code"]) == ("failed", "worker_lost")
    assert "stopped (killed or crashed) while validating" in body["message"]
    assert "retry the task" in body["message"]
    assert Segment.objects.count() == 0

    # django-q2 delivers its copy of the task again later: it must not run a failed task.
    ingestion_task_execute(task_id)
    assert IngestionTask.objects.get(pk=task_id).status == IngestionTask.Status.FAILED

    request.getfixturevalue("tasks_inline")
    assert uploader_api.post(f"/api/ingest/tasks/{task_id}/retry").status_code == 202
    task = IngestionTask.objects.get(pk=task_id)
    assert (task.status, task.attempts) == (IngestionTask.Status.SUCCEEDED, 2), task.message
    ingestion_task_execute(task_id)  # and again after it succeeded
    assert IngestionTask.objects.get(pk=task_id).attempts == 2
    assert uploader_api.get("/api/metrics/summary").json()["lines"] == 1000


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_s_task_can_be_cancelled_at_once_and_its_file_uploaded_again(
    uploader_api, real_file: Path
) -> None:
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    _kill_its_worker_mid_validation(task_id)

    response = uploader_api.post(f"/api/ingest/tasks/{task_id}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled", body
    assert "had stopped (killed or crashed" in body["message"]

    again = _upload(uploader_api, real_file.read_bytes())
    assert again.status_code == 202, again.json()


@pytest.mark.django_db(transaction=True)
def test_a_new_upload_of_the_file_reaps_the_task_its_killed_worker_left(uploader_api, real_file: Path) -> None:
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    _kill_its_worker_mid_validation(task_id)

    again = _upload(uploader_api, real_file.read_bytes())
    assert again.status_code == 202, again.json()  # was 409 "already being loaded"
    assert IngestionTask.objects.get(pk=task_id).error_code == "worker_lost"


# --- Heartbeat and fencing --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_goes_on_during_one_long_step(
    uploader_api, real_file: Path, tasks_inline, monkeypatch, settings
) -> None:
    settings.INGEST_WORKER_LOST_SECONDS = 3  # a beat every half second
    seen: list[str | None] = []
    real_transform = pipeline.batch_transform

    def long_step(batch, plan):
        task = IngestionTask.objects.get(status=IngestionTask.Status.RUNNING)
        before = task.heartbeat_at
        time.sleep(4)  # longer than INGEST_WORKER_LOST_SECONDS, without a progress write
        task.refresh_from_db()
        assert task.heartbeat_at > before
        # As a reaper on another machine sees it: no pid to check, only the heartbeat.
        seen.append(task_worker_gone(task=task, now=timezone.now(), here=Worker(host="elsewhere", pid=1)))
        return real_transform(batch, plan)

    monkeypatch.setattr(pipeline, "batch_transform", long_step)
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    assert seen == [None]
    assert IngestionTask.objects.get(pk=task_id).status == IngestionTask.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_run_given_up_on_stops_without_overwriting_the_task(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    # The worker only looked lost (its heartbeat could not be written, say) and was reaped: when
    # it comes back, it must neither publish nor mark the task succeeded over `worker_lost`.
    real_transform = pipeline.batch_transform

    def reaped_meanwhile(batch, plan):
        IngestionTask.objects.filter(status=IngestionTask.Status.RUNNING).update(worker_host="elsewhere")
        assert ingestion_tasks_reap(now=timezone.now() + dt.timedelta(hours=1)) == 1
        return real_transform(batch, plan)

    monkeypatch.setattr(pipeline, "batch_transform", reaped_meanwhile)
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    task = IngestionTask.objects.get(pk=task_id)
    assert (task.status, task.error_code) == (IngestionTask.Status.FAILED, "worker_lost")
    assert "stopped (killed or crashed) while validating" in task.message
    assert Segment.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_claim_records_the_worker_and_a_first_heartbeat(uploader_api, real_file: Path) -> None:
    task_id = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    task = ingestion_task_claim(task_id=task_id)
    assert (task.worker_host, task.worker_pid) == (this_worker().host, os.getpid())
    assert task.heartbeat_at is not None
    assert ingestion_tasks_reap() == 0  # this process is alive
