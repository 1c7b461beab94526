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

Task ids are `sales_analytics_<datasource>_<upload id>_<attempt>`. Before submitting, the earlier
attempts of the same upload are looked up: one that succeeded is reused (a retry never loads
the rows twice) and one still running is waited for instead of starting another.
"""

import datetime as dt
import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote as url_quote

import polars as pl
from django.conf import settings
from django.core.files import File

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
from analytics.segments import stored_file_save
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


# A task that could not lock its time chunks (another upload holds them) is submitted again.
LOCK_CONFLICT = "Failed to get lock"
LOCK_RETRIES = 5
LOCK_RETRY_SECONDS = 2.0


def druid_task_id(*, datasource: str, upload_id: uuid.UUID, attempt: int) -> str:
    return f"{TASK_PREFIX}_{datasource}_{uuid.UUID(str(upload_id)).hex}_{attempt}"


def upload_interval(request: "PublishRequest") -> str:
    """The upload's days as an ISO interval: from its first day to the day after its last."""
    return f"{request.interval_start.isoformat()}/{(request.interval_end + dt.timedelta(days=1)).isoformat()}"


def upload_ingest(
    *,
    request: "PublishRequest",
    check_cancelled: Callable[[], None] | None = None,
    on_progress: EngineProgress | None = None,
) -> str:
    """Load the upload into Druid and wait until it is queryable; the Druid task id."""
    storage = s3_storage_require()
    datasource = druid_datasource(request.datasource_name)
    deadline = time.monotonic() + settings.DRUID_PUBLISH_TIMEOUT_SECONDS
    notify: Notify = on_progress or (lambda task_id, message: None)
    earlier = _earlier_attempts(datasource=datasource, upload_id=request.upload_id)
    synced_at = _druid_synced_at(request.datasource_name)
    succeeded = [
        task_id
        for task_id, status in earlier
        if status.get("status") == "SUCCESS" and not _created_before(status, synced_at)
    ]
    running = [task_id for task_id, status in earlier if status.get("status") == "RUNNING"]
    dimensions = curated_dimensions(request.curated_path)
    if succeeded:
        task_id = succeeded[-1]
        notify(task_id, f"Druid task {task_id} had already loaded this upload; checking its rows are queryable.")
    else:
        for lock_retry in range(LOCK_RETRIES + 1):
            if running:
                task_id = running[-1]
                notify(task_id, f"Waiting for Druid task {task_id}, which is already loading this upload.")
            else:
                attempt = len(earlier) + 1
                task_id = druid_task_id(datasource=datasource, upload_id=request.upload_id, attempt=attempt)
                uri = _curated_store(storage=storage, request=request, attempt=attempt)
                _task_submit(ingestion_spec(task_id=task_id, uri=uri, dimensions=dimensions, request=request))
                notify(task_id, f"Druid task {task_id} submitted; it reads {uri}.")
            try:
                _task_await(task_id=task_id, deadline=deadline, check_cancelled=check_cancelled, notify=notify)
                break
            except DruidIngestionFailed as exc:
                # Two uploads loading the same days at once: Druid gives one of them the days'
                # lock and fails the other, which succeeds once the first is done.
                if LOCK_CONFLICT not in str(exc) or lock_retry == LOCK_RETRIES or time.monotonic() > deadline:
                    raise
                notify(task_id, f"Druid task {task_id} found its days locked by another upload; trying again.")
                time.sleep(LOCK_RETRY_SECONDS * (lock_retry + 1))
                earlier = _earlier_attempts(datasource=datasource, upload_id=request.upload_id)
                running = []
        notify(task_id, f"Druid task {task_id} succeeded; waiting for its segments to be queryable.")
    _queryable_await(task_id=task_id, datasource=datasource, request=request, dimensions=dimensions, deadline=deadline)
    return task_id


def _druid_synced_at(datasource_name: str) -> dt.datetime | None:
    from analytics.models import Datasource

    return Datasource.objects.filter(name=datasource_name).values_list("druid_synced_at", flat=True).first()


def _created_before(status: dict, moment: dt.datetime | None) -> bool:
    """Whether the task was created before `moment`: a load before a sync (druid_sync), whose rows
    the sync replaced, so it cannot stand for this upload's rows any more."""
    created = status.get("createdTime")
    if moment is None or not created:
        return False
    return dt.datetime.fromisoformat(created) < moment


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


def _curated_store(*, storage, request: "PublishRequest", attempt: int) -> str:
    key = f"curated/{request.datasource_name}/{request.upload_id}/druid-{attempt}.json"
    with tempfile.TemporaryDirectory(prefix="druid-rows-") as workdir:
        rows = curated_ndjson_write(curated_path=request.curated_path, target=Path(workdir) / "rows.json")
        with rows.open("rb") as handle:
            stored = stored_file_save(key=key, content=File(handle, name=Path(key).name))
    return s3_uri(storage, stored)


def ingestion_spec(*, task_id: str, uri: str, dimensions: list[str], request: "PublishRequest") -> dict:
    """A native batch task reading `uri` from S3 into the upload's datasource, rolled up by day."""
    granularity: dict = {"type": "uniform", "segmentGranularity": "DAY", "queryGranularity": "DAY", "rollup": True}
    if request.replace:
        granularity["intervals"] = [upload_interval(request)]
    return {
        "type": "index_parallel",
        "id": task_id,
        "spec": {
            "dataSchema": {
                "dataSource": druid_datasource(request.datasource_name),
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
                "appendToExisting": not request.replace,
                "dropExisting": request.replace,
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


def _earlier_attempts(*, datasource: str, upload_id: uuid.UUID) -> list[tuple[str, dict]]:
    found = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        task_id = druid_task_id(datasource=datasource, upload_id=upload_id, attempt=attempt)
        status = task_status(task_id)
        if status is None:
            return found
        found.append((task_id, status))
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
                if _task_cancel(task_id):
                    raise
                logger.info("cancel of %s came after it succeeded; publishing its rows", task_id)
                return
        if time.monotonic() > deadline:
            _task_cancel(task_id)
            raise DruidIngestionFailed(
                f"Druid task {task_id} did not finish within {settings.DRUID_PUBLISH_TIMEOUT_SECONDS} s "
                "(DRUID_PUBLISH_TIMEOUT_SECONDS); it was stopped and nothing was published."
            )
        time.sleep(POLL_SECONDS)


def _task_cancel(task_id: str) -> bool:
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


def _queryable_await(
    *, task_id: str, datasource: str, request: "PublishRequest", dimensions: list[str], deadline: float
) -> None:
    """Until the coordinator has loaded the upload's days and the broker answers SQL on every column."""
    interval = upload_interval(request)
    columns = ", ".join(quote(name) for name in [*dimensions, "hour", *ADDITIVE_PARTS])
    probe = f"SELECT {columns} FROM {quote(datasource)} WHERE __time >= ? AND __time < ? LIMIT 1"  # noqa: S608
    days = [request.interval_start, request.interval_end + dt.timedelta(days=1)]
    while True:
        if _loaded(datasource, interval) and _answers(probe, days):
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
    return float(response.json().get(datasource, 0)) >= 100.0


def _answers(probe: str, days: list[dt.date]) -> bool:
    try:
        return bool(druid_sql(probe, days))
    except DruidRequestError:  # the broker does not know the table or a column yet
        return False
