"""The daily disk sweep's share for ingestion: the work folders killed runs left behind go once
older than the grace period; a running task's folders, recent ones and anything else stay."""

import datetime as dt
import io
import os
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics import services as analytics_services
from analytics.housekeeping import grace_minimum
from ingestion.housekeeping import disk_sweep, workdirs_sweep
from ingestion.models import IngestionTask

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch) -> Path:
    """The temporary folder runs make their work folders in, this test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _upload(client, content: bytes) -> IngestionTask:
    handle = io.BytesIO(content)
    handle.name = "sales.csv"
    return IngestionTask.objects.get(pk=client.post("/api/ingest/upload", {"file": handle}).json()["task_id"])


def _left_by_a_killed_run(task: IngestionTask, prefix: str, *, age: dt.timedelta) -> Path:
    """A work folder as the run makes it, with a file in it, last changed `age` ago."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{task.pk}-"))
    (folder / "curated.parquet").write_bytes(b"PAR1" * 1000)
    then = (timezone.now() - age).timestamp()
    os.utime(folder, (then, then))
    return folder


def test_a_running_task_s_work_folders_are_never_swept(
    uploader_api, real_file: Path, temp_folder, tasks_inline, monkeypatch
) -> None:
    seen: list[set[str]] = []

    def sweep_while_publishing() -> None:
        # In the switch: both the task's and its publish's work folders exist, and the task runs.
        seen.append({path.name for path in temp_folder.iterdir()})
        assert workdirs_sweep(cutoff=timezone.now() + dt.timedelta(days=1)) == 0

    monkeypatch.setattr(analytics_services, "publish_pause_point", sweep_while_publishing)

    task = _upload(uploader_api, real_file.read_bytes())

    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    names = seen[0]
    assert any(name.startswith(f"ingest-{task.pk}-") for name in names), names
    assert any(name.startswith(f"publish-{task.pk}-") for name in names), names
    assert list(temp_folder.iterdir()) == []  # an ordinary run removes its own


def test_the_sweep_removes_the_work_folders_killed_runs_left(uploader_api, real_file: Path, temp_folder) -> None:
    from ingestion.services import ingestion_task_claim

    grace = grace_minimum()
    killed = _upload(uploader_api, real_file.read_bytes())
    IngestionTask.objects.filter(pk=killed.pk).update(status=IngestionTask.Status.FAILED, error_code="worker_lost")
    running = ingestion_task_claim(task_id=str(_upload(uploader_api, b"Date,Total\n2019-01-01,1\n").pk))
    old = grace + dt.timedelta(hours=1)
    left = [
        _left_by_a_killed_run(killed, "ingest-", age=old),
        _left_by_a_killed_run(killed, "publish-", age=old),
    ]
    kept = [
        _left_by_a_killed_run(killed, "ingest-", age=grace - dt.timedelta(hours=1)),  # within the grace period
        _left_by_a_killed_run(running, "ingest-", age=old),  # its task runs (a long validation)
        _left_by_a_killed_run(running, "sheet-", age=old),  # not a work folder the sweep knows
    ]

    outcome = disk_sweep(grace=grace)

    assert outcome.workdirs_removed == 2
    assert not any(path.exists() for path in left)
    assert all(path.exists() for path in kept)
    assert outcome.describe().endswith("; 2 abandoned ingestion work folder(s) removed")


def test_the_sweep_command_reports_the_work_folders_it_removed(uploader_api, real_file: Path, temp_folder) -> None:
    killed = _upload(uploader_api, real_file.read_bytes())
    folder = _left_by_a_killed_run(killed, "ingest-", age=dt.timedelta(days=3))
    out = io.StringIO()

    call_command("files_sweep", "--grace-hours", "24", stdout=out)

    assert "1 abandoned ingestion work folder(s) removed." in out.getvalue()
    assert not folder.exists()
