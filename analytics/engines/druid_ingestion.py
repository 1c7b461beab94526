"""Publishing an upload to Druid (DESIGN.md data flow, step 7), before the catalogue switch.

1. The curated rows are written as newline-delimited JSON to S3 at
   `curated/<datasource>/<upload_id>/druid-<attempt>.json`, with the sale's hour as a column.
2. A native `index_parallel` task reads that object through an `s3` input source and rolls the
   rows up by day at ingestion: every string column (invoice_id included) and `hour` are
   dimensions; each additive part of analytics.metrics is a metric column of the same name.
   Append adds segments; replace rewrites the upload's days (`dropExisting`), like the embedded
   engine, which replaces every row dated inside the upload's first to last day.
3. The task is polled (a cancel request shuts it down) until it succeeds or fails; a failure is
   told in one sentence from the task's report.
4. The publish waits until the new segments are loaded and the broker answers SQL on them.

Task ids are `sales_analytics_<datasource>_<upload id>_<attempt>`; each task's context records
what it loaded (a fingerprint of the upload's rows, mode and days, the days it wrote, the
catalogue version it was planned on). Before submitting, the earlier attempts of the same upload
are looked up: one that loaded exactly these rows, whose rows nothing since can have removed, is
reused (a retry never loads the rows twice); one still running is waited for (the same rows) or
shut down (other rows). Any other earlier load is overwritten: the upload is loaded as one
replace of every day either wrote, carrying the catalogue's rows of those days.
"""

import contextlib
import datetime as dt
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote as url_quote

import polars as pl
from django.conf import settings
from django.core.files import File

from analytics.catalogue import Snapshot, datasource_snapshot
from analytics.engines import EngineProgress
from analytics.engines.druid import (
    DruidIngestionFailed,
    DruidRequestError,
    druid_call,
    druid_datasource,
    druid_error_text,
    druid_sql,
)
from analytics.engines.druid_s3 import (
    error_summary,
    s3_failure_sentence,
    s3_input_source,
    s3_problem_find,
    s3_storage_require,
    s3_uri,
)
from analytics.metrics import ADDITIVE_PARTS, PARTS
from analytics.models import Datasource, Segment
from analytics.segments import segment_local_path, stored_file_save
from analytics.sql import quote

if TYPE_CHECKING:
    from analytics.services import PublishRequest

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
TASK_PREFIX = "sales_analytics"
MAX_ATTEMPTS = 50
# Seconds a cancelled task may take to stop before the publish gives up waiting for it.
SHUTDOWN_WAIT_SECONDS = 30

# Metric columns: the additive parts of analytics.metrics, summed at ingestion (doubles stay
# doubles: Druid's doubleSum, never floatSum), and re-summed by queries (analytics.engines.druid.PART_SQL).
DOUBLE_SUM_FIELDS: dict[str, str] = {
    "revenue_sum": "revenue",
    "cost_sum": "cost",
    "gross_profit_sum": "gross_profit",
    "tax_sum": "tax",
    "rating_sum": "rating",
}
METRICS_SPEC: list[dict] = [
    *({"type": "doubleSum", "name": part, "fieldName": field} for part, field in DOUBLE_SUM_FIELDS.items()),
    {"type": "longSum", "name": "quantity_sum", "fieldName": "quantity"},
    {"type": "count", "name": "lines"},
    {
        "type": "filtered",
        "filter": {"type": "not", "field": {"type": "null", "column": "rating"}},
        "aggregator": {"type": "count", "name": "rating_count"},
    },
    # analytics.metrics' `revenue_with_profit`: NULL in a cell none of whose lines has a gross profit.
    {
        "type": "filtered",
        "filter": {"type": "not", "field": {"type": "null", "column": "gross_profit"}},
        "aggregator": {"type": "doubleSum", "name": "revenue_with_profit", "fieldName": "revenue"},
    },
]
NUMERIC_FIELDS: tuple[str, ...] = ("quantity", "revenue", "cost", "gross_profit", "tax", "rating")
# Curated columns that never become string dimensions (the time, the hour, names Druid's metrics take).
NOT_DIMENSIONS = frozenset({"date", "datetime", "hour", "__time", *PARTS})

Notify = Callable[[str, str], None]
Days = tuple[dt.date, dt.date]  # a first and a last day, both included

# Kept in each ingestion task's `context` (Druid keeps it in the task's payload): what it loaded.
CONTEXT_ROWS = "salesAnalyticsRows"  # rows_fingerprint: the upload's rows, mode and days
CONTEXT_DAYS = "salesAnalyticsDays"  # the days it wrote, "first/last"
CONTEXT_BASE_VERSION = "salesAnalyticsBaseVersion"  # the catalogue's data version it was planned on


# A task that could not lock its time chunks (another upload holds them) is submitted again.
LOCK_CONFLICT = "Failed to get lock"
LOCK_RETRIES = 5
LOCK_RETRY_SECONDS = 2.0


def druid_task_id(*, datasource: str, upload_id: uuid.UUID, attempt: int) -> str:
    return f"{TASK_PREFIX}_{datasource}_{uuid.UUID(str(upload_id)).hex}_{attempt}"


def days_interval(days: Days) -> str:
    """Whole days as an ISO interval: from the first day to the day after the last."""
    return f"{days[0].isoformat()}/{(days[1] + dt.timedelta(days=1)).isoformat()}"


@dataclass(frozen=True)
class DruidLoad:
    """An ingestion task of an upload, as Druid reports it, with what the task's context says it loaded."""

    task_id: str
    state: str  # RUNNING, SUCCESS or FAILED
    created: dt.datetime | None
    context: dict

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCESS"

    @property
    def days(self) -> Days | None:
        """The days the task wrote (None: a task from before the context was kept)."""
        text = self.context.get(CONTEXT_DAYS)
        if not text:
            return None
        first, last = text.split("/")
        return dt.date.fromisoformat(first), dt.date.fromisoformat(last)


@dataclass(frozen=True)
class LoadPlan:
    """The rows one ingestion task loads, and how."""

    rows_path: Path  # curated-style Parquet
    days: Days  # the days it writes (replaced when `replace`)
    replace: bool
    base_version: int  # the catalogue's data version it was planned on


def upload_ingest(
    *,
    request: "PublishRequest",
    check_cancelled: Callable[[], None] | None = None,
    on_progress: EngineProgress | None = None,
) -> str:
    """Load the upload into Druid and wait until it is queryable; the Druid task id.

    An earlier task of the same upload is reused only when it loaded exactly these rows in this
    mode and nothing since can have removed them (`_load_reusable`). Otherwise the rows are loaded
    again, and when an earlier task had loaded some (other options, or rows since removed), as
    one replace of every day either task wrote, with the catalogue's rows of those days: that
    load's own rows can then neither count twice nor stay behind.
    """
    storage = s3_storage_require()
    datasource = druid_datasource(request.datasource_name)
    deadline = time.monotonic() + settings.DRUID_PUBLISH_TIMEOUT_SECONDS
    notify: Notify = on_progress or (lambda task_id, message: None)
    with tempfile.TemporaryDirectory(prefix="druid-rows-") as workdir_name:
        workdir = Path(workdir_name)
        upload_rows = curated_ndjson_write(curated_path=request.curated_path, target=workdir / "upload.json")
        fingerprint = rows_fingerprint(
            ndjson_path=upload_rows, replace=request.replace, days=(request.interval_start, request.interval_end)
        )
        loads = _earlier_loads_settle(
            datasource=datasource,
            request=request,
            fingerprint=fingerprint,
            deadline=deadline,
            check_cancelled=check_cancelled,
            notify=notify,
        )
        reusable = next(
            (
                load
                for load in reversed(loads)
                if _load_reusable(load, fingerprint=fingerprint, datasource_name=request.datasource_name)
            ),
            None,
        )
        if reusable is not None and reusable.days is not None:
            task_id, days = reusable.task_id, reusable.days
            dimensions = curated_dimensions(request.curated_path)
            notify(task_id, f"Druid task {task_id} had already loaded this upload; checking its rows are queryable.")
        else:
            plan = _load_plan(request=request, earlier=[load for load in loads if load.succeeded], workdir=workdir)
            rows = upload_rows if plan.rows_path == request.curated_path else None
            task_id = _load_run(
                plan=plan,
                request=request,
                storage=storage,
                fingerprint=fingerprint,
                ndjson_path=rows,
                workdir=workdir,
                deadline=deadline,
                check_cancelled=check_cancelled,
                notify=notify,
            )
            days, dimensions = plan.days, curated_dimensions(plan.rows_path)
    notify(task_id, f"Druid task {task_id} succeeded; waiting for its segments to be queryable.")
    _queryable_await(task_id=task_id, datasource=datasource, days=days, dimensions=dimensions, deadline=deadline)
    return task_id


def rows_fingerprint(*, ndjson_path: Path, replace: bool, days: Days) -> str:
    """What a task loads for an upload: its rows as Druid reads them, its mode and its days."""
    digest = hashlib.sha256(f"{'replace' if replace else 'append'} {days[0]}/{days[1]}\n".encode())
    with ndjson_path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _earlier_loads_settle(
    *,
    datasource: str,
    request: "PublishRequest",
    fingerprint: str,
    deadline: float,
    check_cancelled: Callable[[], None] | None,
    notify: Notify,
) -> list[DruidLoad]:
    """The upload's earlier tasks, none still running: one loading these very rows is waited for,
    one loading others (an attempt with other options whose worker died) is shut down."""
    loads = earlier_loads(datasource=datasource, upload_id=request.upload_id)
    running = [load for load in loads if load.state == "RUNNING"]
    for load in running:
        if load.context.get(CONTEXT_ROWS) == fingerprint:
            notify(load.task_id, f"Waiting for Druid task {load.task_id}, which is already loading this upload.")
            with contextlib.suppress(DruidIngestionFailed):  # it failed: it loaded nothing
                _task_await(task_id=load.task_id, deadline=deadline, check_cancelled=check_cancelled, notify=notify)
        else:
            notify(load.task_id, f"Stopping Druid task {load.task_id}: it loads this upload as it was before.")
            task_cancel(load.task_id)
    return earlier_loads(datasource=datasource, upload_id=request.upload_id) if running else loads


def _load_reusable(load: DruidLoad, *, fingerprint: str, datasource_name: str) -> bool:
    """Whether `load` stands for the upload's rows now: it loaded exactly them in this mode, and
    neither a sync (`druid_sync`, which replaces Druid's rows) nor a publish switched in over its
    days since can have removed them or, for a load carrying the catalogue's rows, outdated them."""
    if not load.succeeded or load.context.get(CONTEXT_ROWS) != fingerprint or load.days is None:
        return False
    base_version = load.context.get(CONTEXT_BASE_VERSION)
    if not isinstance(base_version, int) or _created_before(load.created, _druid_synced_at(datasource_name)):
        return False
    return not _switched_since(datasource_name=datasource_name, base_version=base_version, days=load.days)


def _switched_since(*, datasource_name: str, base_version: int, days: Days) -> bool:
    """Whether a data version after `base_version` added rows on any of `days` (a replace among them
    would have swapped Druid's rows of its days, this upload's unswitched ones included)."""
    return Segment.objects.filter(
        datasource__name=datasource_name,
        version__gt=base_version,
        interval_start__lte=days[1],
        interval_end__gte=days[0],
    ).exists()


def _load_plan(*, request: "PublishRequest", earlier: list[DruidLoad], workdir: Path) -> LoadPlan:
    """The upload's rows as they are (first load), or, after an earlier load of other rows, one
    replace of every day either wrote with the catalogue's rows of those days plus the upload's
    (for a replace, without the catalogue's rows of the upload's own days)."""
    upload_days = (request.interval_start, request.interval_end)
    if not earlier:
        base_version = Datasource.objects.filter(name=request.datasource_name).values_list("data_version", flat=True)
        return LoadPlan(request.curated_path, upload_days, request.replace, base_version.first() or 0)
    spans = [upload_days, *(load.days or druid_days(druid_datasource(request.datasource_name)) for load in earlier)]
    days = (min(span[0] for span in spans if span), max(span[1] for span in spans if span))
    snapshot = datasource_snapshot(name=request.datasource_name)
    rows = catalogue_rows_write(
        snapshot=snapshot,
        days=days,
        skip_days=upload_days if request.replace else None,
        added=request.curated_path,
        target=workdir / "reload.parquet",
    )
    return LoadPlan(rows or request.curated_path, days, True, snapshot.version if snapshot is not None else 0)


def catalogue_rows_write(
    *, snapshot: Snapshot | None, days: Days, skip_days: Days | None, added: Path | None, target: Path
) -> Path | None:
    """The catalogue version's rows of `days` (less `skip_days`), plus the `added` file's, as one
    Parquet file; None when there are none."""
    frames = []
    for segment in snapshot.segments if snapshot is not None else ():
        if segment.interval_start > days[1] or segment.interval_end < days[0]:
            continue
        kept = pl.col("date").is_between(days[0], days[1])
        if skip_days is not None:
            kept &= ~pl.col("date").is_between(skip_days[0], skip_days[1])
        frames.append(pl.scan_parquet(segment_local_path(segment=segment)).filter(kept))
    if added is not None:
        frames.append(pl.scan_parquet(added))
    if not frames:
        return None
    # Extra columns differ between uploads: each file's own, null elsewhere (as union_by_name).
    pl.concat(frames, how="diagonal_relaxed").sink_parquet(target)
    return target if pl.scan_parquet(target).select(pl.len()).collect().item() else None


def _load_run(
    *,
    plan: LoadPlan,
    request: "PublishRequest",
    storage,
    fingerprint: str,
    ndjson_path: Path | None,
    workdir: Path,
    deadline: float,
    check_cancelled: Callable[[], None] | None,
    notify: Notify,
) -> str:
    """Submit a task loading the plan's rows, and wait for it (submitted again while another
    upload holds its days' lock); the task id."""
    datasource = druid_datasource(request.datasource_name)
    rows = ndjson_path or curated_ndjson_write(curated_path=plan.rows_path, target=workdir / "rows.json")
    context = {
        CONTEXT_ROWS: fingerprint,
        CONTEXT_DAYS: f"{plan.days[0].isoformat()}/{plan.days[1].isoformat()}",
        CONTEXT_BASE_VERSION: plan.base_version,
    }
    for lock_retry in range(LOCK_RETRIES + 1):
        attempt = len(earlier_loads(datasource=datasource, upload_id=request.upload_id)) + 1
        task_id = druid_task_id(datasource=datasource, upload_id=request.upload_id, attempt=attempt)
        uri = _curated_store(storage=storage, request=request, attempt=attempt, ndjson_path=rows)
        dimensions = curated_dimensions(plan.rows_path)
        _task_submit(
            ingestion_spec(
                task_id=task_id,
                uri=uri,
                dimensions=dimensions,
                datasource_name=request.datasource_name,
                replace_days=plan.days if plan.replace else None,
                context=context,
            )
        )
        notify(task_id, f"Druid task {task_id} submitted; it reads {uri}.")
        try:
            _task_await(task_id=task_id, deadline=deadline, check_cancelled=check_cancelled, notify=notify)
            return task_id
        except DruidIngestionFailed as exc:
            # Two uploads loading the same days at once: Druid gives one of them the days'
            # lock and fails the other, which succeeds once the first is done.
            if LOCK_CONFLICT not in str(exc) or lock_retry == LOCK_RETRIES or time.monotonic() > deadline:
                raise
            notify(task_id, f"Druid task {task_id} found its days locked by another upload; trying again.")
            time.sleep(LOCK_RETRY_SECONDS * (lock_retry + 1))
    raise AssertionError("unreachable: the last lock retry raises")


def druid_days(datasource: str) -> Days | None:
    """The first and last day Druid holds rows of, None when it holds none."""
    if not druid_table_exists(datasource):
        return None
    [(first, last)] = druid_sql(f"SELECT MIN(__time), MAX(__time) FROM {quote(datasource)}", [])  # noqa: S608
    return None if first is None else (first.date(), last.date())


def druid_table_exists(datasource: str) -> bool:
    return bool(
        druid_sql(
            "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'druid' AND TABLE_NAME = ?",
            [datasource],
        )
    )


def _druid_synced_at(datasource_name: str) -> dt.datetime | None:
    return Datasource.objects.filter(name=datasource_name).values_list("druid_synced_at", flat=True).first()


def _created_before(created: dt.datetime | None, moment: dt.datetime | None) -> bool:
    """Whether a task was created before `moment`: a load before a sync (druid_sync), whose rows
    the sync replaced, so it cannot stand for this upload's rows any more."""
    if moment is None or created is None:
        return False
    return created < moment


# --- the rows, as Druid reads them ------------------------------------------------------------


def curated_dimensions(curated_path: Path) -> list[str]:
    """String columns of the curated file (canonical and extra): Druid's string dimensions."""
    schema = pl.read_parquet_schema(curated_path)
    return [name for name, dtype in schema.items() if dtype == pl.String and name not in NOT_DIMENSIONS]


def curated_ndjson_write(*, curated_path: Path, target: Path) -> Path:
    """One JSON object per row: the day, the hour of the sale (null without a time), dimensions, amounts."""
    schema = pl.read_parquet_schema(curated_path)
    hour = pl.col("datetime").dt.hour().cast(pl.Int64) if "datetime" in schema else pl.lit(None, pl.Int64)
    columns = [
        pl.col("date").dt.strftime("%Y-%m-%d").alias("date"),
        hour.alias("hour"),
        *(pl.col(name) for name in curated_dimensions(curated_path)),
        *(pl.col(name) if name in schema else pl.lit(None, pl.Float64).alias(name) for name in NUMERIC_FIELDS),
    ]
    pl.scan_parquet(curated_path).select(columns).sink_ndjson(target)
    return target


def _curated_store(*, storage, request: "PublishRequest", attempt: int, ndjson_path: Path) -> str:
    key = f"curated/{request.datasource_name}/{request.upload_id}/druid-{attempt}.json"
    with ndjson_path.open("rb") as handle:
        stored = stored_file_save(key=key, content=File(handle, name=Path(key).name))
    return s3_uri(storage, stored)


def ingestion_spec(
    *,
    task_id: str,
    uri: str,
    dimensions: list[str],
    datasource_name: str,
    replace_days: Days | None,
    context: dict | None = None,
) -> dict:
    """A native batch task reading `uri` from S3 into the datasource, rolled up by day; with
    `replace_days`, Druid's rows of those days are swapped for the file's. `context` is kept in
    the task's payload: what the task loads (`DruidLoad`)."""
    granularity: dict = {"type": "uniform", "segmentGranularity": "DAY", "queryGranularity": "DAY", "rollup": True}
    if replace_days is not None:
        granularity["intervals"] = [days_interval(replace_days)]
    return {
        "type": "index_parallel",
        "id": task_id,
        "context": context or {},
        "spec": {
            "dataSchema": {
                "dataSource": druid_datasource(datasource_name),
                "timestampSpec": {"column": "date", "format": "yyyy-MM-dd"},
                "dimensionsSpec": {
                    "dimensions": [
                        *({"type": "string", "name": name} for name in dimensions),
                        {"type": "long", "name": "hour"},
                    ]
                },
                "metricsSpec": METRICS_SPEC,
                "granularitySpec": granularity,
            },
            "ioConfig": {
                "type": "index_parallel",
                "inputSource": s3_input_source([uri]),
                "inputFormat": {"type": "json"},
                "appendToExisting": replace_days is None,
                "dropExisting": replace_days is not None,
            },
            "tuningConfig": {
                "type": "index_parallel",
                "partitionsSpec": {"type": "dynamic"},
                # A row Druid cannot parse fails the task instead of silently going missing.
                "maxParseExceptions": 0,
                "maxNumConcurrentSubTasks": 1,
            },
        },
    }


# --- the task -----------------------------------------------------------------------------------


def _task_path(task_id: str, tail: str = "") -> str:
    return f"/druid/indexer/v1/task/{url_quote(task_id, safe='')}{tail}"


def task_status(task_id: str) -> dict | None:
    """The task's status (`status`: RUNNING, SUCCESS or FAILED), or None when Druid does not know it."""
    response = druid_call("GET", _task_path(task_id, "/status"))
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise DruidRequestError(
            f"Druid did not give the status of task {task_id}: {druid_error_text(response)}",
            status=response.status_code,
        )
    return response.json().get("status") or None


def task_payload(task_id: str) -> dict:
    response = druid_call("GET", _task_path(task_id))
    return response.json().get("payload", {}) if response.status_code == 200 else {}


def earlier_loads(*, datasource: str, upload_id: uuid.UUID) -> list[DruidLoad]:
    """The upload's ingestion tasks Druid knows, first attempt first."""
    found = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        task_id = druid_task_id(datasource=datasource, upload_id=upload_id, attempt=attempt)
        status = task_status(task_id)
        if status is None:
            return found
        state = str(status.get("status"))
        # A failed task loaded nothing; only the others' context matters.
        context = (task_payload(task_id).get("context") or {}) if state != "FAILED" else {}
        created = status.get("createdTime")
        found.append(DruidLoad(task_id, state, dt.datetime.fromisoformat(created) if created else None, context))
    raise DruidIngestionFailed(
        f"Druid already ran {MAX_ATTEMPTS} ingestion tasks for this upload without success; fix the cause shown "
        "on the last one before retrying."
    )


def _task_submit(spec: dict) -> None:
    response = druid_call("POST", "/druid/indexer/v1/task", json=spec)
    if response.status_code == 200:
        return
    text = druid_error_text(response)
    if "already exists" in text:  # another worker submitted this very attempt: wait for it instead
        return
    raise DruidIngestionFailed(f"Druid refused ingestion task {spec['id']}: {text}")


def _task_await(*, task_id: str, deadline: float, check_cancelled: Callable[[], None] | None, notify: Notify) -> None:
    shown = None
    while True:
        status = task_status(task_id)
        if status is None:
            raise DruidIngestionFailed(f"Druid no longer knows ingestion task {task_id}; retry the upload.")
        state = status.get("status")
        if state == "SUCCESS":
            return
        if state == "FAILED":
            raise DruidIngestionFailed(task_failure_sentence(task_id, status))
        phase = str(status.get("runnerStatusCode") or state).lower()
        if phase != shown:
            notify(task_id, f"Druid task {task_id} is {phase}.")
            shown = phase
        if check_cancelled is not None:
            try:
                check_cancelled()
            except BaseException:
                if task_cancel(task_id):
                    raise
                logger.info("cancel of %s came after it succeeded; publishing its rows", task_id)
                return
        if time.monotonic() > deadline:
            task_cancel(task_id)
            raise DruidIngestionFailed(
                f"Druid task {task_id} did not finish within {settings.DRUID_PUBLISH_TIMEOUT_SECONDS} s "
                "(DRUID_PUBLISH_TIMEOUT_SECONDS); it was stopped and nothing was published."
            )
        time.sleep(POLL_SECONDS)


def task_cancel(task_id: str) -> bool:
    """Shut the task down; False when it had already succeeded (its rows are in Druid)."""
    druid_call("POST", _task_path(task_id, "/shutdown"))
    stop_by = time.monotonic() + SHUTDOWN_WAIT_SECONDS
    while time.monotonic() < stop_by:
        status = task_status(task_id) or {}
        if status.get("status") != "RUNNING":
            return status.get("status") != "SUCCESS"
        time.sleep(POLL_SECONDS / 2)
    return True


def task_failure_sentence(task_id: str, status: dict) -> str:
    """Why a task failed, in one sentence: the report's errorMsg and its root cause, in plain words."""
    text = _report_error(task_id) or status.get("errorMsg") or ""
    source = task_payload(task_id).get("spec", {}).get("ioConfig", {}).get("inputSource", {})
    uri = (source.get("uris") or ["the upload's rows in S3"])[0]
    bucket = uri.removeprefix("s3://").split("/", 1)[0]
    if ("s3" in text.lower() or "amazon" in text.lower()) and s3_problem_find(text, bucket=bucket) is not None:
        return s3_failure_sentence(text, who="Druid", action=f"read {uri}", side="druid", bucket=bucket)
    return f"Druid ingestion task {task_id} failed: {error_summary(text)}."


def _report_error(task_id: str) -> str:
    response = druid_call("GET", _task_path(task_id, "/reports"))
    if response.status_code != 200:
        return ""
    try:
        payload = response.json()["ingestionStatsAndErrors"]["payload"]
    except (ValueError, KeyError, TypeError):
        return ""
    return payload.get("errorMsg") or ""


# --- queryable ----------------------------------------------------------------------------------


def _queryable_await(*, task_id: str, datasource: str, days: Days, dimensions: list[str], deadline: float) -> None:
    """Until the coordinator has loaded the task's days and the broker answers SQL on every column."""
    interval = days_interval(days)
    columns = ", ".join(quote(name) for name in [*dimensions, "hour", *ADDITIVE_PARTS])
    probe = f"SELECT {columns} FROM {quote(datasource)} WHERE __time >= ? AND __time < ? LIMIT 1"  # noqa: S608
    bounds = [days[0], days[1] + dt.timedelta(days=1)]
    while True:
        if _loaded(datasource, interval) and _answers(probe, bounds):
            return
        if time.monotonic() > deadline:
            raise DruidIngestionFailed(
                f"Druid task {task_id} succeeded but its segments were not queryable within "
                f"{settings.DRUID_PUBLISH_TIMEOUT_SECONDS} s — check that the Druid historicals have room for them "
                "(druid.segmentCache.locations, druid.server.maxSize) and that the coordinator runs; retry the "
                "upload to publish them once they are."
            )
        time.sleep(POLL_SECONDS / 2)


def _loaded(datasource: str, interval: str) -> bool:
    response = druid_call(
        "GET",
        f"/druid/coordinator/v1/datasources/{url_quote(datasource, safe='')}/loadstatus",
        params={"forceMetadataRefresh": "true", "interval": interval},
    )
    if response.status_code != 200:
        return False
    try:
        status = response.json()
    except ValueError:  # an empty answer: the coordinator knows no segment of the interval yet
        return False
    return float(status.get(datasource, 0)) >= 100.0


def _answers(probe: str, days: list[dt.date]) -> bool:
    try:
        return bool(druid_sql(probe, days))
    except DruidRequestError:  # the broker does not know the table or a column yet
        return False
