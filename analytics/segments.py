"""Where segment files live: written to storage, read by engines from a local copy."""

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage

from analytics.models import Segment


def segment_storage_key(*, datasource_name: str, upload_id: uuid.UUID) -> str:
    """A fresh key per write, so a retried publish never overwrites a file a reader may hold."""
    return f"curated/{datasource_name}/{upload_id}/{uuid.uuid4().hex}.parquet"


def segment_file_store(*, local_path: Path, key: str) -> str:
    with local_path.open("rb") as handle:
        return default_storage.save(key, File(handle, name=Path(key).name))


def segment_local_path(*, segment: Segment) -> Path:
    """A local file with the segment's rows (DuckDB reads local disk only; see DESIGN.md)."""
    if isinstance(default_storage, FileSystemStorage):
        return Path(default_storage.path(segment.path))
    local = Path(settings.VAR_DIR) / "engine" / "segments" / segment.path
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_suffix(f".{uuid.uuid4().hex}.part")
        with default_storage.open(segment.path, "rb") as source, partial.open("wb") as target:
            shutil.copyfileobj(source, target, length=8 * 1024 * 1024)
        # Rename is atomic: a concurrent reader sees no file or the whole file.
        partial.replace(local)
    return local
