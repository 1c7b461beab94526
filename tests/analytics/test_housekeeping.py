"""The files sweep: what no data version needs goes, once older than the grace period; what a
version reads, the history of retired segments, raw files and unknown folders stay."""

import datetime as dt
import errno
import io
import os
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage, storages
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics.housekeeping import files_sweep, grace_minimum
from analytics.models import Rollup, Segment, StoredFile
from analytics.segments import local_copies_dir, stored_file_save
from tests.analytics.publishing import rows_totals, sales_rows, synthetic_publish

pytestmark = pytest.mark.django_db(transaction=True)

# Its own name per run: under S3 the bucket outlives the test database, so files of earlier runs
# (orphans by now) would be counted.
DATASOURCE = f"swept_{uuid.uuid4().hex[:12]}"
HOUR = dt.timedelta(hours=1)


def _summary(client) -> dict:
    response = client.get("/api/metrics/summary", {"datasource": DATASOURCE})
    assert response.status_code == 200, response.content
    return response.json()


def _local_copy(key: str) -> Path:
    return local_copies_dir() / key


def _stored(key: str) -> bool:
    return default_storage.exists(key)


def test_the_sweep_deletes_what_no_version_needs_and_keeps_what_one_reads(viewer_api, tmp_path: Path) -> None:
    first = sales_rows(start=dt.date(2024, 1, 1), days=5, seed=1)
    second = sales_rows(start=dt.date(2024, 1, 6), days=5, seed=2)
    fix = sales_rows(start=dt.date(2024, 1, 3), days=2, seed=3)
    for rows, replace in ((first, False), (second, False), (fix, True)):
        synthetic_publish(datasource=DATASOURCE, rows=rows, workdir=tmp_path, replace=replace)
        _summary(viewer_api)  # each version read once: with S3 storage, local copies of its files
    superseded = list(Rollup.objects.filter(datasource__name=DATASOURCE, version__lt=3).values_list("path", flat=True))
    current = list(Rollup.objects.filter(datasource__name=DATASOURCE, version=3).values_list("path", flat=True))
    retired = list(Segment.objects.filter(datasource__name=DATASOURCE, active=False).values_list("path", flat=True))
    assert superseded and current and retired
    copied = [key for key in [*superseded, *retired] if _local_copy(key).exists()]
    current_copied = [key for key in current if _local_copy(key).exists()]
    # A refused publish's file, as publishing records it; files it did not store are not the sweep's.
    orphan = stored_file_save(key=f"curated/{DATASOURCE}/refused-upload/rows.parquet", content=ContentFile(b"PAR1"))
    by_hand = default_storage.save(f"curated/{DATASOURCE}/kept-by-hand/rows.parquet", ContentFile(b"PAR1"))
    unknown = default_storage.save("curated/another-deployment/rows.parquet", ContentFile(b"PAR1"))
    raw = default_storage.save(f"raw/{DATASOURCE}/2024/01/upload/sales.csv", ContentFile(b"Date,Total\n"))
    grace = grace_minimum()

    within_grace = files_sweep(grace=grace)  # a publish still running may not have switched them in yet
    assert (within_grace.rollups_deleted, within_grace.orphans_deleted, within_grace.local_copies_deleted) == (0, 0, 0)
    assert all(_stored(key) for key in [*superseded, orphan])

    outcome = files_sweep(grace=grace, now=timezone.now() + grace + HOUR)

    assert outcome.rollups_deleted == len(superseded)
    assert outcome.orphans_deleted == 1
    assert not any(_stored(key) for key in [*superseded, orphan])
    assert not Rollup.objects.filter(datasource__name=DATASOURCE, version__lt=3).exists()
    assert all(_stored(key) for key in [*current, *retired, by_hand, unknown, raw])  # retired segments are history
    assert not StoredFile.objects.filter(key__in=[*superseded, orphan]).exists()
    if not isinstance(default_storage, FileSystemStorage):
        assert set(retired) <= set(copied) and set(copied) & set(superseded)  # the reads made copies
        assert outcome.local_copies_deleted == len(retired)  # the rollups' copies went with them
        assert not any(_local_copy(key).exists() for key in copied)
        assert current_copied and all(_local_copy(key).exists() for key in current_copied)
    expected = rows_totals([row for row in first if row["date"] not in {r["date"] for r in fix}] + second + fix)
    summary = _summary(viewer_api)
    assert summary["lines"] == expected["lines"]
    assert summary["total_revenue"] == pytest.approx(expected["revenue"], abs=0.005)
    for key in (by_hand, unknown, raw):
        default_storage.delete(key)


def test_the_sweep_command_reports_what_it_deleted_and_refuses_a_grace_shorter_than_a_publish(
    tmp_path: Path, settings
) -> None:
    rows = sales_rows(start=dt.date(2024, 1, 1), days=2)
    synthetic_publish(datasource=DATASOURCE, rows=rows, workdir=tmp_path)
    synthetic_publish(datasource=DATASOURCE, rows=sales_rows(start=dt.date(2024, 1, 3), days=2), workdir=tmp_path)
    out = io.StringIO()
    call_command("files_sweep", "--grace-hours", "24", stdout=out)
    assert out.getvalue().startswith("0 superseded rollup(s), 0 unreferenced stored file(s)")
    # A publish stores its files before Druid loads its rows (up to DRUID_PUBLISH_TIMEOUT_SECONDS)
    # and points at them only after: a shorter grace would delete a running publish's files.
    settings.DRUID_PUBLISH_TIMEOUT_SECONDS = 7200
    with pytest.raises(CommandError, match="at least 3 hours"):
        call_command("files_sweep", "--grace-hours", "2.5", stdout=out)
    assert Rollup.objects.filter(datasource__name=DATASOURCE, version=1).exists()


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def storage_fills_up(monkeypatch) -> type:
    """Storage takes the first bytes of a file, then its disk is full; the storage's class."""
    storage_class = type(storages["default"])
    save = storage_class._save

    def save_part(self, name: str, content) -> str:
        save(self, name, ContentFile(content.read(2)))
        _disk_full()

    monkeypatch.setattr(storage_class, "_save", save_part)
    return storage_class


def test_a_file_publishing_could_not_store_whole_is_deleted_and_stays_recorded(storage_fills_up) -> None:
    key = f"curated/{DATASOURCE}/{uuid.uuid4()}/rows.parquet"

    with pytest.raises(OSError, match="No space left on device"):
        stored_file_save(key=key, content=ContentFile(b"PAR1"))

    assert not _stored(key)  # its space is free at once
    assert StoredFile.objects.filter(key=key).exists()


def test_a_partial_file_left_by_a_failed_save_is_found_by_the_sweep(storage_fills_up, monkeypatch) -> None:
    # The delete right after may fail too (the same storage gone read-only, a killed worker): the
    # record, made before saving, lets the sweep delete the partial file later.
    key = f"curated/{DATASOURCE}/{uuid.uuid4()}/rows.parquet"
    delete = storage_fills_up.delete
    monkeypatch.setattr(storage_fills_up, "delete", _disk_full)
    with pytest.raises(OSError):
        stored_file_save(key=key, content=ContentFile(b"PAR1"))
    assert _stored(key)
    monkeypatch.setattr(storage_fills_up, "delete", delete)

    outcome = files_sweep(grace=grace_minimum(), now=timezone.now() + grace_minimum() + HOUR)

    assert outcome.orphans_deleted == 1
    assert not _stored(key)
    assert not StoredFile.objects.filter(key=key).exists()
