"""Writes for analytics: publishing curated rows as a new data version."""

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from django.db import transaction

from analytics.models import Datasource, Segment
from analytics.segments import segment_file_store, segment_local_path, segment_storage_key
from analytics.signals import publish_completed

logger = logging.getLogger(__name__)

_MAX_PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True)
class PublishRequest:
    datasource_name: str
    upload_id: uuid.UUID
    upload_name: str
    uploaded_at: dt.datetime
    curated_path: Path
    rows: int
    interval_start: dt.date
    interval_end: dt.date
    replace: bool


@dataclass(frozen=True)
class PublishOutcome:
    data_version: int
    already_published: bool


class PublishConflict(Exception):
    """Another publish changed the segments this one replaces; it is computed again."""


def datasource_get_or_create(*, name: str) -> Datasource:
    datasource = Datasource.objects.filter(name=name).first()
    if datasource is not None:
        return datasource
    candidate = Datasource(name=name)
    candidate.full_clean()
    datasource, _ = Datasource.objects.get_or_create(name=name)
    return datasource


def datasource_publish(*, request: PublishRequest) -> PublishOutcome:
    """Switch the upload's rows in atomically: readers see the old version or the new one, never a mix.

    Safe to call twice for the same upload: the second call changes nothing.
    """
    datasource = datasource_get_or_create(name=request.datasource_name)
    for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
        published = _published_version(datasource=datasource, upload_id=request.upload_id)
        if published is not None:
            return PublishOutcome(data_version=published, already_published=True)
        replaced = _overlapping_segments(datasource=datasource, request=request) if request.replace else []
        # File I/O happens outside the transaction; the transaction only flips catalogue rows.
        new_key = segment_file_store(
            local_path=request.curated_path,
            key=segment_storage_key(datasource_name=datasource.name, upload_id=request.upload_id),
        )
        remainders = [_segment_remainder(segment=segment, request=request) for segment in replaced]
        try:
            version = _switch_version(
                datasource=datasource, request=request, new_key=new_key, replaced=replaced, remainders=remainders
            )
        except PublishConflict:
            logger.info("publish of %s raced another publish; computing again", request.upload_id)
            continue
        return PublishOutcome(data_version=version, already_published=False)
    raise PublishConflict(f"datasource {datasource.name} kept changing during publish")


def _published_version(*, datasource: Datasource, upload_id: uuid.UUID) -> int | None:
    segment = Segment.objects.filter(datasource=datasource, upload_id=upload_id).order_by("version").first()
    return segment.version if segment else None


def _overlapping_segments(*, datasource: Datasource, request: PublishRequest) -> list[Segment]:
    return list(
        Segment.objects.filter(
            datasource=datasource,
            active=True,
            interval_start__lte=request.interval_end,
            interval_end__gte=request.interval_start,
        ).order_by("id")
    )


@dataclass(frozen=True)
class _Remainder:
    key: str
    rows: int
    interval_start: dt.date
    interval_end: dt.date
    source: Segment


def _segment_remainder(*, segment: Segment, request: PublishRequest) -> _Remainder | None:
    """The rows of `segment` outside the replaced interval, written as a new file (None if none)."""
    frame = pl.read_parquet(segment_local_path(segment=segment))
    kept = frame.filter((pl.col("date") < request.interval_start) | (pl.col("date") > request.interval_end))
    if kept.height == 0:
        return None
    local = request.curated_path.with_name(f"remainder-{segment.pk}-{uuid.uuid4().hex}.parquet")
    kept.write_parquet(local)
    try:
        key = segment_file_store(
            local_path=local,
            key=segment_storage_key(datasource_name=segment.datasource.name, upload_id=segment.upload_id),
        )
    finally:
        local.unlink(missing_ok=True)
    return _Remainder(
        key=key,
        rows=kept.height,
        interval_start=kept["date"].min(),
        interval_end=kept["date"].max(),
        source=segment,
    )


def _switch_version(
    *,
    datasource: Datasource,
    request: PublishRequest,
    new_key: str,
    replaced: list[Segment],
    remainders: list[_Remainder | None],
) -> int:
    with transaction.atomic():
        locked = Datasource.objects.select_for_update().get(pk=datasource.pk)
        if _published_version(datasource=locked, upload_id=request.upload_id) is not None:
            raise PublishConflict("published meanwhile")
        if request.replace and [s.pk for s in _overlapping_segments(datasource=locked, request=request)] != [
            s.pk for s in replaced
        ]:
            raise PublishConflict("overlapping segments changed")
        version = locked.data_version + 1
        Segment.objects.create(
            datasource=locked,
            upload_id=request.upload_id,
            upload_name=request.upload_name,
            uploaded_at=request.uploaded_at,
            interval_start=request.interval_start,
            interval_end=request.interval_end,
            rows=request.rows,
            path=new_key,
            version=version,
        )
        for remainder in remainders:
            if remainder is not None:
                Segment.objects.create(
                    datasource=locked,
                    upload_id=remainder.source.upload_id,
                    upload_name=remainder.source.upload_name,
                    uploaded_at=remainder.source.uploaded_at,
                    interval_start=remainder.interval_start,
                    interval_end=remainder.interval_end,
                    rows=remainder.rows,
                    path=remainder.key,
                    version=version,
                )
        Segment.objects.filter(pk__in=[s.pk for s in replaced]).update(active=False, retired_in_version=version)
        locked.data_version = version
        locked.save(update_fields=["data_version", "updated_at"])
        transaction.on_commit(
            lambda: publish_completed.send(
                sender=Datasource, datasource_name=locked.name, data_version=version, upload_id=request.upload_id
            )
        )
    return version
