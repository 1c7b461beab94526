"""A consistent view of one data version: its segments, rollups and provenance."""

import datetime as dt
from dataclasses import dataclass

from analytics.models import Datasource, Rollup, Segment


@dataclass(frozen=True)
class Upload:
    upload_id: str
    name: str
    uploaded_at: dt.datetime | None


@dataclass(frozen=True)
class Snapshot:
    datasource: Datasource
    version: int
    segments: tuple[Segment, ...]
    rollups: tuple[Rollup, ...]

    @property
    def date_range(self) -> tuple[dt.date, dt.date]:
        """First and last day with published rows."""
        return min(s.interval_start for s in self.segments), max(s.interval_end for s in self.segments)

    @property
    def uploads(self) -> tuple[Upload, ...]:
        """The uploads whose rows this version contains, oldest first."""
        seen: dict[str, Upload] = {}
        for segment in sorted(self.segments, key=lambda s: (s.uploaded_at or s.created_at, s.pk)):
            key = str(segment.upload_id)
            seen.setdefault(key, Upload(upload_id=key, name=segment.upload_name, uploaded_at=segment.uploaded_at))
        return tuple(seen.values())


def datasource_snapshot(*, name: str) -> Snapshot | None:
    """The current version's segments and rollups, or None for an unknown or empty datasource.

    Filtering by version numbers (not the `active` flag) makes the three reads consistent even
    while a publish commits between them.
    """
    datasource = Datasource.objects.filter(name=name).first()
    if datasource is None or datasource.data_version == 0:
        return None
    version = datasource.data_version
    segments = tuple(
        Segment.objects.filter(datasource=datasource, version__lte=version)
        .exclude(retired_in_version__lte=version)
        .order_by("id")
    )
    rollups = tuple(Rollup.objects.filter(datasource=datasource, version=version).order_by("rows", "name"))
    return Snapshot(datasource=datasource, version=version, segments=segments, rollups=rollups)


def datasource_list() -> list[Datasource]:
    """Datasources with published data, by name."""
    return list(Datasource.objects.filter(data_version__gt=0).order_by("name"))
