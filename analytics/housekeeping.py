"""Files no data version needs any more, deleted once a grace period has passed.

Publishing writes new files for every version (segments, six rollups) and never deletes: a
reader may still hold the version before. Without a sweep they pile up: a daily append to a
large datasource leaves a full set of rollups behind every day, a refused publish leaves the
files it stored, and a worker reading from S3 keeps a local copy of every file it ever read.

What is deleted, each only when unneeded for longer than the grace period:
- the rollups of superseded versions (their rows and files): every question reads the
  current version's;
- files publishing stored (`StoredFile`) that no segment or rollup points at: a refused or
  failed publish's, Druid's row files once loaded;
- local copies of files the current versions do not read (S3 storage only).
Segments a replace retired stay stored: they are the history of what was published. Raw
files and error reports are never touched, nor any file publishing did not record: another
deployment's files in a shared bucket are left alone.

The grace period is at least a publish's longest run (DRUID_PUBLISH_TIMEOUT_SECONDS) plus an
hour: a publish stores its files before the engine loads its rows and switches them in only
after, so until then they look unreferenced.
"""

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from analytics.models import Datasource, Rollup, Segment, StoredFile
from analytics.segments import local_copies_dir

logger = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    rollups_deleted: int = 0
    orphans_deleted: int = 0
    local_copies_deleted: int = 0

    def describe(self) -> str:
        return (
            f"{self.rollups_deleted} superseded rollup(s), {self.orphans_deleted} unreferenced stored file(s) and "
            f"{self.local_copies_deleted} local cop(ies) deleted"
        )


GRACE_BEYOND_PUBLISH = dt.timedelta(hours=1)


def grace_minimum() -> dt.timedelta:
    """The shortest grace period that spares the files of every publish still running."""
    return dt.timedelta(seconds=settings.DRUID_PUBLISH_TIMEOUT_SECONDS) + GRACE_BEYOND_PUBLISH


def files_sweep(*, grace: dt.timedelta, now: dt.datetime | None = None) -> SweepOutcome:
    """Delete what no version needs and has not been needed for `grace` (ValueError when shorter
    than `grace_minimum()`)."""
    if grace < grace_minimum():
        raise ValueError(
            f"The grace period must be at least {grace_minimum().total_seconds() / 3600:g} hours "
            "(DRUID_PUBLISH_TIMEOUT_SECONDS plus an hour): a publish still running keeps its files unreferenced "
            "until it switches them in."
        )
    cutoff = (now or timezone.now()) - grace
    outcome = SweepOutcome()
    outcome.rollups_deleted = _superseded_rollups_delete(cutoff)
    outcome.orphans_deleted = _orphans_delete(cutoff)
    if not isinstance(default_storage, FileSystemStorage):  # there, the stored files are the local ones
        needed = _keys_read_locally(cutoff)
        for name in Datasource.objects.values_list("name", flat=True):
            folder = local_copies_dir() / "curated" / name
            outcome.local_copies_deleted += _local_copies_delete(folder, needed=needed, cutoff=cutoff)
            _empty_folders_remove(folder, cutoff=cutoff)
    logger.info("files sweep: %s", outcome.describe())
    return outcome


def files_sweep_task() -> str:
    """The stored files' sweep alone, with the configured grace period: the daily schedule's function
    until `install_schedules` is run again (it now runs `ingestion.tasks.disk_sweep_task`, which
    also removes killed runs' work folders); kept so a schedule installed before does not fail."""
    return files_sweep(grace=dt.timedelta(hours=settings.FILES_SWEEP_GRACE_HOURS)).describe()


def _superseded_rollups_delete(cutoff: dt.datetime) -> int:
    """Rollups of a version that a later version replaced before `cutoff`: rows first, then files
    (a file left behind by a failed delete is an orphan the next sweep finds)."""
    later = Rollup.objects.filter(
        datasource=OuterRef("datasource"), version__gt=OuterRef("version"), created_at__lt=cutoff
    )
    stale = list(Rollup.objects.filter(Exists(later)).values_list("pk", "path"))
    Rollup.objects.filter(pk__in=[pk for pk, _ in stale]).delete()
    for _, key in stale:
        _stored_delete(key)
    return len(stale)


def _orphans_delete(cutoff: dt.datetime) -> int:
    """Recorded files stored before `cutoff` that no segment or rollup points at."""
    referenced = Q(Exists(Segment.objects.filter(path=OuterRef("key")))) | Q(
        Exists(Rollup.objects.filter(path=OuterRef("key")))
    )
    orphans = list(StoredFile.objects.filter(stored_at__lt=cutoff).exclude(referenced).values_list("key", flat=True))
    for key in orphans:
        _stored_delete(key)
    return len(orphans)


def _stored_delete(key: str) -> None:
    default_storage.delete(key)  # a missing file is not an error (deleted by a sweep running alongside)
    if isinstance(default_storage, FileSystemStorage):
        _empty_parents_remove(Path(default_storage.path(key)))
    else:
        (local_copies_dir() / key).unlink(missing_ok=True)
    StoredFile.objects.filter(key=key).delete()


def _empty_parents_remove(path: Path) -> None:
    """The file's folder (one per upload or set of rollups), when deleting the file emptied it."""
    with contextlib.suppress(OSError):  # not empty, or gone already
        path.parent.rmdir()


def _keys_read_locally(cutoff: dt.datetime) -> set[str]:
    """Keys a reader may open: the rollups left (current, or superseded within the grace period)
    and segments not retired, or retired by a version made after `cutoff`."""
    retired_at = Segment.objects.filter(
        datasource=OuterRef("datasource"), version=OuterRef("retired_in_version")
    ).order_by("created_at")
    segments = Segment.objects.annotate(retired_at=Subquery(retired_at.values("created_at")[:1])).filter(
        Q(retired_in_version__isnull=True) | Q(retired_at__isnull=True) | Q(retired_at__gte=cutoff)
    )
    return set(segments.values_list("path", flat=True)) | set(Rollup.objects.values_list("path", flat=True))


def _local_copies_delete(folder: Path, *, needed: set[str], cutoff: dt.datetime) -> int:
    root = local_copies_dir()
    deleted = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        if not path.is_file():
            continue
        key = path.relative_to(root).as_posix()
        # A download cut short (`*.part`) is needed by nobody once old.
        if key in needed or modified_at(path) >= cutoff:
            continue
        path.unlink(missing_ok=True)
        deleted += 1
    return deleted


def _empty_folders_remove(folder: Path, *, cutoff: dt.datetime) -> None:
    """Folders the deletions emptied; a folder changed after `cutoff` may be about to get a file."""
    if not folder.is_dir():
        return
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if modified_at(path) < cutoff:
            with contextlib.suppress(OSError):  # not empty (a file arrived), or gone already
                path.rmdir()


def modified_at(path: Path) -> dt.datetime:
    """When the file or folder last changed; "now" when it is gone (another sweep deleted it)."""
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
    except FileNotFoundError:
        return timezone.now()
