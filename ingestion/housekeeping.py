"""The daily sweep of disk space: analytics' files no data version needs, and the work folders
that killed ingestion runs left in the temporary folder.

A run reads, validates and publishes in work folders (`ingest-<task id>-…`, and publishing's
`publish-<upload id>-…`, the upload id being the task's) that are removed when it ends. A worker
killed outright (SIGKILL, out of memory, a restart) removes nothing: each such run left 12–20 MB
for ever. A folder is removed once older than the grace period, and never while its task runs.
Only the temporary folder of the machine the sweep runs on is swept.
"""

import datetime as dt
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from analytics.housekeeping import SweepOutcome, files_sweep, modified_at
from analytics.services import PUBLISH_WORKDIR_PREFIX
from ingestion.models import IngestionTask
from ingestion.pipeline import INGEST_WORKDIR_PREFIX

logger = logging.getLogger(__name__)

_WORKDIR_NAME = re.compile(
    rf"^(?:{re.escape(INGEST_WORKDIR_PREFIX)}|{re.escape(PUBLISH_WORKDIR_PREFIX)})"
    r"(?P<task_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-"
)


@dataclass
class DiskSweepOutcome:
    files: SweepOutcome
    workdirs_removed: int = 0

    def describe(self) -> str:
        return f"{self.files.describe()}; {self.workdirs_removed} abandoned ingestion work folder(s) removed"


def disk_sweep(*, grace: dt.timedelta, now: dt.datetime | None = None) -> DiskSweepOutcome:
    """The files sweep (`analytics.housekeeping.files_sweep`, whose rules on `grace` apply), then
    the work folders killed runs left, older than `grace` and whose task is not running."""
    now = now or timezone.now()
    files = files_sweep(grace=grace, now=now)
    return DiskSweepOutcome(files=files, workdirs_removed=workdirs_sweep(cutoff=now - grace))


def workdirs_sweep(*, cutoff: dt.datetime, folder: Path | None = None) -> int:
    """Remove the work folders in `folder` (the temporary folder) last changed before `cutoff`
    whose task is not running; how many."""
    root = folder or Path(tempfile.gettempdir())
    owners = {path: _workdir_task_id(path) for path in root.iterdir()} if root.is_dir() else {}
    candidates = {path: task_id for path, task_id in owners.items() if task_id and modified_at(path) < cutoff}
    # Checked after the folders were listed: a run that started since made a folder of its own,
    # newer than `cutoff`.
    running = {
        str(task_id)
        for task_id in IngestionTask.objects.filter(
            pk__in=set(candidates.values()), status=IngestionTask.Status.RUNNING
        ).values_list("pk", flat=True)
    }
    removed = 0
    for path, task_id in candidates.items():
        if task_id in running:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += not path.exists()
    if removed:
        logger.info("removed %d work folder(s) left by killed ingestion runs", removed)
    return removed


def _workdir_task_id(path: Path) -> str | None:
    match = _WORKDIR_NAME.match(path.name)
    return match["task_id"] if match and path.is_dir() and not path.is_symlink() else None
