"""Writes for analytics: publishing curated rows as a new data version."""

import datetime as dt
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from django.db import transaction

from analytics.engines import EngineProgress, get_engine
from analytics.models import Datasource, Rollup, Segment
from analytics.rollups import (
    NO_SHARED_INVOICES,
    BuiltRollup,
    SharedInvoices,
    VersionFacts,
    invoices_already_published,
    version_facts_append,
    version_facts_build,
)
from analytics.segments import rollup_storage_key, segment_file_store, segment_local_path, segment_storage_key
from analytics.signals import publish_completed

logger = logging.getLogger(__name__)

_MAX_PUBLISH_ATTEMPTS = 5
# A publish's work folder is `publish-<upload id>-…` in the temporary folder: one its worker was
# killed in is left behind, and the upload id tells a sweep whether its upload is still running.
PUBLISH_WORKDIR_PREFIX = "publish-"


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
    uploaded_by_id: int | None = None  # the user who uploaded the file (None: a program or the CLI)
    # Called in the switch's transaction, under the datasource's lock, after every publish before
    # it has committed: raising refuses this one (ingestion refuses a file published meanwhile).
    before_switch: Callable[[], None] | None = None
    # An append every line of which belongs to invoices published already is refused
    # (DataAlreadyPublished): the same data sent again, with other bytes (say line endings).
    refuse_republished: bool = False


@dataclass(frozen=True)
class PublishOutcome:
    data_version: int
    already_published: bool
    # The engine's own task id (a Druid ingestion task), when the engine loads rows itself.
    engine_task_id: str | None = None
    # A replace: the rows of its days it swapped out.
    rows_replaced: int = 0
    # An append: its lines whose invoice id was published already (the same data sent again?).
    shared_invoices: SharedInvoices = NO_SHARED_INVOICES


class DataAlreadyPublished(Exception):
    """Every line of an append belongs to invoices this datasource has published already."""

    def __init__(self, shared: SharedInvoices) -> None:
        super().__init__(f"{shared.lines} lines of {shared.invoices} invoices already published")
        self.shared = shared


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


def datasource_publish(
    *,
    request: PublishRequest,
    check_cancelled: Callable[[], None] | None = None,
    on_engine_progress: EngineProgress | None = None,
) -> PublishOutcome:
    """Switch the upload's rows in atomically: readers see the old version or the new one, never a mix.

    An engine that loads rows itself (Druid) does so after the plan and before the switch; the
    catalogue switches only once the rows are queryable there. `check_cancelled` raises to stop
    that load; `on_engine_progress` hears the engine's task id and progress. Safe to call twice
    for the same upload: the second call changes nothing.
    """
    datasource = datasource_get_or_create(name=request.datasource_name)
    engine = get_engine()
    engine_task_id = None
    for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
        published = _published_version(datasource=datasource, upload_id=request.upload_id)
        if published is not None:
            return PublishOutcome(data_version=published, already_published=True, engine_task_id=engine_task_id)
        with tempfile.TemporaryDirectory(prefix=f"{PUBLISH_WORKDIR_PREFIX}{request.upload_id}-") as workdir:
            # Planned first: whatever can fail (storing files, building the version's facts) fails
            # before an engine that loads rows itself (Druid) has loaded rows it would count.
            plan = _publish_plan(datasource=datasource, request=request, workdir=Path(workdir))
            # Idempotent: a second call (after a conflict, or a retried task) finds its earlier load.
            engine_task_id = engine.publish(
                request=request, check_cancelled=check_cancelled, on_progress=on_engine_progress
            )
            try:
                version = _switch_version(datasource=datasource, request=request, plan=plan)
            except PublishConflict:
                logger.info("publish of %s raced another publish; computing again", request.upload_id)
                continue
        return PublishOutcome(
            data_version=version,
            already_published=False,
            engine_task_id=engine_task_id,
            rows_replaced=sum(s.rows for s in plan.replaced) - sum(r.rows for r in plan.remainders),
            shared_invoices=plan.shared_invoices,
        )
    raise PublishConflict(f"datasource {datasource.name} kept changing during publish")


def _published_version(*, datasource: Datasource, upload_id: uuid.UUID) -> int | None:
    segment = Segment.objects.filter(datasource=datasource, upload_id=upload_id).order_by("version").first()
    return segment.version if segment else None


@dataclass
class _Remainder:
    key: str
    rows: int
    interval_start: dt.date
    interval_end: dt.date
    source: Segment
    branches: list[str]


@dataclass
class _PublishPlan:
    """Everything the switch needs, computed (and stored) before the short catalogue transaction."""

    base_version: int  # the data version this plan adds to
    active_ids: list[int]
    replaced: list[Segment]
    new_key: str
    new_branches: list[str]
    remainders: list[_Remainder]
    facts: VersionFacts
    rollup_keys: dict[str, str]
    shared_invoices: SharedInvoices
    # When the engine's rows were last replaced by a sync (druid_sync): one during the engine's
    # load may have removed the rows it loaded, which the switch must not then count as there.
    engine_synced_at: dt.datetime | None = None


def _publish_plan(*, datasource: Datasource, request: PublishRequest, workdir: Path) -> _PublishPlan:
    # Read first: a version published after this point fails the switch, which then plans again.
    base = Datasource.objects.get(pk=datasource.pk)
    active = list(Segment.objects.filter(datasource=datasource, active=True).order_by("id"))
    replaced = [s for s in active if request.replace and _overlaps(s, request)]
    new_key = segment_file_store(
        local_path=request.curated_path,
        key=segment_storage_key(datasource_name=datasource.name, upload_id=request.upload_id),
    )
    remainders: list[_Remainder] = []
    local_paths = [segment_local_path(segment=s) for s in active if s not in replaced]
    for segment in replaced:
        remainder = _segment_remainder(segment=segment, request=request, workdir=workdir)
        if remainder is not None:
            remainders.append(remainder[0])
            local_paths.append(remainder[1])
    shared = (
        invoices_already_published(previous_paths=local_paths, added_path=request.curated_path, workdir=workdir)
        if base.has_invoice_id and not request.replace
        else NO_SHARED_INVOICES
    )
    if request.refuse_republished and shared.lines >= request.rows > 0:
        raise DataAlreadyPublished(shared)
    facts = _facts_appended(base=base, previous_paths=local_paths, request=request, workdir=workdir, shared=shared)
    if facts is None:
        facts = version_facts_build(segment_paths=[*local_paths, request.curated_path], workdir=workdir / "rollups")
    rollup_keys = {
        rollup.name: segment_file_store(
            local_path=rollup.local_path, key=rollup_storage_key(datasource_name=datasource.name, name=rollup.name)
        )
        for rollup in facts.rollups
    }
    return _PublishPlan(
        base_version=base.data_version,
        active_ids=[s.pk for s in active],
        replaced=replaced,
        new_key=new_key,
        new_branches=branches_of(pl.scan_parquet(request.curated_path)),
        remainders=remainders,
        facts=facts,
        rollup_keys=rollup_keys,
        shared_invoices=shared,
        engine_synced_at=base.druid_synced_at,
    )


def _facts_appended(
    *, base: Datasource, previous_paths: list[Path], request: PublishRequest, workdir: Path, shared: SharedInvoices
) -> VersionFacts | None:
    """The new version's facts from the previous version's and the added rows', or None: then
    they are built from every row, which needs none of the previous version's rollup files.
    `previous_paths`: the rows the new version keeps (for a replace, without the upload's days)."""
    try:
        return version_facts_append(
            previous=_version_facts(base),
            previous_paths=previous_paths,
            added_path=request.curated_path,
            workdir=workdir / "rollups",
            replaced_days=(request.interval_start, request.interval_end) if request.replace else None,
            shared=None if request.replace else shared,
        )
    except Exception:
        # Building from every row is always exact: a previous rollup file that cannot be read
        # (lost, or a failed download from S3) must not fail the upload.
        logger.warning(
            "publish of %s: appending to the previous rollups failed; building from every row",
            request.upload_id,
            exc_info=True,
        )
        return None


def _version_facts(datasource: Datasource) -> VersionFacts:
    """The stored facts of the datasource's current version, its rollups as local files."""
    rollups = Rollup.objects.filter(datasource=datasource, version=datasource.data_version)
    return VersionFacts(
        columns=datasource.columns,
        has_invoice_id=datasource.has_invoice_id,
        invoice_constant_dimensions=datasource.invoice_constant_dimensions,
        rollups=[
            BuiltRollup(
                name=rollup.name,
                dimensions=tuple(rollup.dimensions),
                local_path=segment_local_path(segment=rollup),
                rows=rollup.rows,
                parts=tuple(rollup.parts),
            )
            for rollup in rollups
        ],
    )


def _overlaps(segment: Segment, request: PublishRequest) -> bool:
    return segment.interval_start <= request.interval_end and segment.interval_end >= request.interval_start


def _segment_remainder(*, segment: Segment, request: PublishRequest, workdir: Path) -> tuple[_Remainder, Path] | None:
    """The rows of `segment` outside the replaced interval, written as a new file (None if none)."""
    frame = pl.read_parquet(segment_local_path(segment=segment))
    kept = frame.filter((pl.col("date") < request.interval_start) | (pl.col("date") > request.interval_end))
    if kept.height == 0:
        return None
    local = workdir / f"remainder-{segment.pk}-{uuid.uuid4().hex}.parquet"
    kept.write_parquet(local)
    key = segment_file_store(
        local_path=local,
        key=segment_storage_key(datasource_name=segment.datasource.name, upload_id=segment.upload_id),
    )
    remainder = _Remainder(
        key=key,
        rows=kept.height,
        interval_start=kept["date"].min(),
        interval_end=kept["date"].max(),
        source=segment,
        branches=branches_of(kept.lazy()),
    )
    return remainder, local


def publish_pause_point() -> None:
    """Called inside the switch transaction just before it commits; tests pause here."""


def _switch_version(*, datasource: Datasource, request: PublishRequest, plan: _PublishPlan) -> int:
    with transaction.atomic():
        locked = Datasource.objects.select_for_update().get(pk=datasource.pk)
        if _published_version(datasource=locked, upload_id=request.upload_id) is not None:
            raise PublishConflict("published meanwhile")
        current_ids = list(
            Segment.objects.filter(datasource=locked, active=True).order_by("id").values_list("pk", flat=True)
        )
        if current_ids != plan.active_ids or locked.data_version != plan.base_version:
            raise PublishConflict("a version was published meanwhile")
        if locked.druid_synced_at != plan.engine_synced_at:
            raise PublishConflict("the engine's rows were synced with the catalogue meanwhile")
        if request.before_switch is not None:
            request.before_switch()
        version = locked.data_version + 1
        _segment_create(
            locked,
            version,
            request.upload_id,
            request.upload_name,
            request.uploaded_at,
            request.uploaded_by_id,
            request.interval_start,
            request.interval_end,
            request.rows,
            plan.new_key,
            plan.new_branches,
        )
        for remainder in plan.remainders:
            source = remainder.source
            _segment_create(
                locked,
                version,
                source.upload_id,
                source.upload_name,
                source.uploaded_at,
                source.uploaded_by_id,
                remainder.interval_start,
                remainder.interval_end,
                remainder.rows,
                remainder.key,
                remainder.branches,
            )
        Segment.objects.filter(pk__in=[s.pk for s in plan.replaced]).update(active=False, retired_in_version=version)
        Rollup.objects.bulk_create(
            Rollup(
                datasource=locked,
                version=version,
                name=rollup.name,
                dimensions=list(rollup.dimensions),
                path=plan.rollup_keys[rollup.name],
                rows=rollup.rows,
                parts=list(rollup.parts),
            )
            for rollup in plan.facts.rollups
        )
        locked.data_version = version
        locked.version_token = uuid.uuid4()
        locked.columns = plan.facts.columns
        locked.has_invoice_id = plan.facts.has_invoice_id
        locked.invoice_constant_dimensions = plan.facts.invoice_constant_dimensions
        locked.save()
        publish_pause_point()
        transaction.on_commit(
            lambda: publish_completed.send(
                sender=Datasource, datasource_name=locked.name, data_version=version, upload_id=request.upload_id
            )
        )
    return version


def _segment_create(
    datasource: Datasource,
    version: int,
    upload_id: uuid.UUID,
    upload_name: str,
    uploaded_at: dt.datetime | None,
    uploaded_by_id: int | None,
    start: dt.date,
    end: dt.date,
    rows: int,
    key: str,
    branches: list[str],
) -> Segment:
    return Segment.objects.create(
        datasource=datasource,
        upload_id=upload_id,
        upload_name=upload_name,
        uploaded_at=uploaded_at,
        uploaded_by_id=uploaded_by_id,
        interval_start=start,
        interval_end=end,
        rows=rows,
        path=key,
        version=version,
        branches=branches,
    )


def branches_of(rows: pl.LazyFrame) -> list[str]:
    """The branches of a segment's rows: what a branch-scoped user's provenance may show of it."""
    return sorted(rows.select(pl.col("branch").drop_nulls().unique()).collect()["branch"].to_list())


def datasource_publish_undo(*, datasource_name: str, upload_id: uuid.UUID) -> bool:
    """Remove the rows an engine that loads before the switch (Druid) loaded for an upload whose
    publish never switched in; whether there were any. Nothing happens for a published upload."""
    return get_engine().publish_undo(datasource_name=datasource_name, upload_id=upload_id)


def datasource_mark_demo(*, name: str) -> None:
    """Label a datasource as generated demo data: every page shows it as such."""
    datasource_get_or_create(name=name)
    Datasource.objects.filter(name=name, is_demo=False).update(is_demo=True)
