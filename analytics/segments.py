"""Where segment files live: written to storage, read by engines from a local copy."""

import contextlib
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage

from analytics.models import Rollup, Segment, StoredFile


def segment_storage_key(*, datasource_name: str, upload_id: uuid.UUID) -> str:
    """A fresh key per write, so a retried publish never overwrites a file a reader may hold."""
    return f"curated/{datasource_name}/{upload_id}/{uuid.uuid4().hex}.parquet"


def rollup_storage_key(*, datasource_name: str, name: str) -> str:
    return f"curated/{datasource_name}/rollups/{uuid.uuid4().hex}/{name}.parquet"


def segment_file_store(*, local_path: Path, key: str) -> str:
    with local_path.open("rb") as handle:
        return stored_file_save(key=key, content=File(handle, name=Path(key).name))


def stored_file_save(*, key: str, content: File) -> str:
    """Store a file publishing needs and record it, so the files sweep may delete it once unused.

    Recorded before it is stored: a save cut short (a full disk, a killed worker) leaves part of a
    file that only a record lets the sweep find. A failed save's part is deleted at once too: on a
    full disk its space is needed now.
    """
    StoredFile.objects.get_or_create(key=key)
    try:
        stored = default_storage.save(key, content)
    except BaseException:
        with contextlib.suppress(Exception):  # the save's own error says more; the sweep retries this
            default_storage.delete(key)
        raise
    if stored != key:  # the storage chose another name: only what it stored is publishing's
        StoredFile.objects.get_or_create(key=stored)
        StoredFile.objects.filter(key=key).delete()
    return stored


def segment_local_path(*, segment: Segment | Rollup) -> Path:
    """A local file with the segment's (or rollup's) rows: DuckDB reads local disk only (DESIGN.md).

    Files are immutable once stored, so a local copy never goes stale.
    """
    return storage_local_path(key=segment.path)


def local_copies_dir() -> Path:
    """Where files stored elsewhere (S3) are copied for reading; analytics.housekeeping prunes it."""
    return Path(settings.VAR_DIR) / "engine" / "files"


def storage_local_path(*, key: str) -> Path:
    if isinstance(default_storage, FileSystemStorage):
        return Path(default_storage.path(key))
    local = local_copies_dir() / key
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_suffix(f".{uuid.uuid4().hex}.part")
        with default_storage.open(key, "rb") as source, partial.open("wb") as target:
            shutil.copyfileobj(source, target, length=8 * 1024 * 1024)
        # Rename is atomic: a concurrent reader sees no file or the whole file.
        partial.replace(local)
    return local
