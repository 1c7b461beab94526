"""Can the Druid shape work here? Three checks, each told in one sentence naming what to change.

1. The app reaches S3: it writes and reads back a tiny probe object (the app's S3_* settings).
2. The app reaches Druid: the router is healthy and the broker answers SQL (DRUID_ROUTER_URL).
3. Druid itself reads the probe object from the bucket through the sampler API, with the same
   `s3` input source an ingestion uses (Druid's druid.s3.* settings, or DRUID_S3_* when set).
   This is what failed in the original system while the cluster looked healthy.

Used by `manage.py druid_check` and, cached for a minute, by the health check's engine detail.
Details name settings, never values: the health check is public.
"""

import contextlib
import json
import uuid
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.cache import cache

from analytics.engines import EngineError, EngineHealth
from analytics.engines.druid import (
    DruidTimeout,
    DruidUnavailable,
    druid_call,
    druid_error_text,
    druid_sql,
    router_url_shown,
)
from analytics.engines.druid_s3 import (
    S3Required,
    s3_failure_sentence,
    s3_input_source,
    s3_object_key,
    s3_storage_require,
    s3_uri,
)

HEALTH_CACHE_KEY = "druid:preflight"
HEALTH_CACHE_SECONDS = 60
PROBE_ROW = {"date": "2000-01-01", "probe": "sales-analytics druid_check"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # What was checked (URLs, bucket, object): shown by `manage.py druid_check`, never by /api/health.
    context: dict = field(default_factory=dict)


def druid_preflight() -> list[Check]:
    """The three checks, in order; Druid's read of S3 is only tried when the app reached both."""
    app_s3, probe = _app_reaches_s3()
    app_druid = _app_reaches_druid()
    checks = [app_s3, app_druid]
    try:
        if probe is not None and app_druid.ok:
            checks.append(druid_reads_s3_check(uri=probe.uri, bucket=probe.storage.bucket_name))
        else:
            checks.append(
                Check("druid_reads_s3", False, "Druid's access to the bucket was not checked: fix the problems above.")
            )
    finally:
        if probe is not None:
            _probe_delete(probe)
    return checks


def druid_health() -> EngineHealth:
    """The preflight as the health check's engine detail, cached: load balancers probe often."""
    cached = cache.get(HEALTH_CACHE_KEY)
    if cached is not None:
        return cached
    failed = [check for check in druid_preflight() if not check.ok]
    if failed:
        health = EngineHealth(ok=False, detail=" ".join(check.detail for check in failed))
    else:
        health = EngineHealth(ok=True, detail="Druid answers SQL and reads the S3 bucket.")
    cache.set(HEALTH_CACHE_KEY, health, HEALTH_CACHE_SECONDS)
    return health


@dataclass(frozen=True)
class _Probe:
    storage: object
    name: str
    uri: str


def _app_reaches_s3() -> tuple[Check, _Probe | None]:
    try:
        storage = s3_storage_require()
    except S3Required as exc:
        return Check("app_s3", False, exc.detail), None
    name = f"health/druid-probe-{uuid.uuid4().hex}.json"
    key = s3_object_key(storage, name)
    context = {"bucket": storage.bucket_name, "endpoint": settings.S3_ENDPOINT_URL or "AWS", "object": key}
    # The client itself, not the storage's save(): a refused PUT says why (InvalidAccessKeyId,
    # SignatureDoesNotMatch, NoSuchBucket…), where the storage's existence check (a HEAD) only says 403 or 404.
    client = storage.connection.meta.client
    body = (json.dumps(PROBE_ROW) + "\n").encode()
    try:
        client.put_object(Bucket=storage.bucket_name, Key=key, Body=body)
        read_back = client.get_object(Bucket=storage.bucket_name, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        detail = s3_failure_sentence(
            _boto_error_text(exc),
            who="The app",
            action="write a probe object to the S3 bucket",
            side="app",
            bucket=storage.bucket_name,
        )
        return Check("app_s3", False, detail, context), None
    if read_back != body:
        return Check("app_s3", False, "The S3 server returned other bytes than the app wrote.", context), None
    probe = _Probe(storage=storage, name=name, uri=s3_uri(storage, name))
    return Check("app_s3", True, "The app wrote and read back a probe object in the S3 bucket.", context), probe


def _boto_error_text(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')} ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _app_reaches_druid() -> Check:
    context = {"router": router_url_shown()}
    try:
        response = druid_call("GET", "/status/health", retries=1, timeout=min(settings.DRUID_TIMEOUT_SECONDS, 10))
        if response.status_code != 200:
            return Check(
                "app_druid",
                False,
                f"Druid's router answered HTTP {response.status_code} to a health check — check DRUID_ROUTER_URL "
                "names the router (port 8888), not another Druid process.",
                context,
            )
        druid_sql("SELECT 1", [])
    except DruidUnavailable as exc:
        return Check(
            "app_druid",
            False,
            f"The app cannot reach Druid's router ({_reason(exc)}) — check DRUID_ROUTER_URL and that Druid runs.",
            context,
        )
    except EngineError as exc:
        return Check(
            "app_druid",
            False,
            f"Druid's router is up but its broker does not answer SQL — check the broker process ({exc.detail[:200]}).",
            context,
        )
    return Check("app_druid", True, "The app reaches Druid's router and its broker answers SQL.", context)


def _reason(exc: DruidUnavailable) -> str:
    text = exc.detail
    if "(" in text and ")" in text:
        return text[text.rindex("(") + 1 : text.rindex(")")]
    return "no answer"


def druid_reads_s3_check(*, uri: str, bucket: str) -> Check:
    """Druid reads one small JSON object through the sampler, with the s3 input source an ingestion uses."""
    spec = {
        "type": "index",
        "spec": {
            "ioConfig": {"type": "index", "inputSource": s3_input_source([uri]), "inputFormat": {"type": "json"}},
            "dataSchema": {
                "dataSource": "sales_analytics_probe",
                "timestampSpec": {"column": "date", "format": "auto"},
                "dimensionsSpec": {},
                "granularitySpec": {"rollup": False},
            },
        },
        "samplerConfig": {"numRows": 1, "timeoutMs": settings.DRUID_TIMEOUT_SECONDS * 1000},
    }
    context = {"object": uri}
    try:
        response = druid_call("POST", "/druid/indexer/v1/sampler", json=spec, retries=1)
    except DruidTimeout:
        # The AWS SDK in Druid retries an unreachable endpoint (or an unresolvable host) for minutes.
        return Check(
            "druid_reads_s3",
            False,
            f"Druid did not read {uri} within {settings.DRUID_TIMEOUT_SECONDS} s: it keeps retrying S3, which "
            "means it cannot reach the S3 server — check druid.s3.endpoint.url and, for an S3-compatible server, "
            "druid.s3.enablePathStyleAccess=true in Druid's runtime properties (druid_s3_* in docker-compose.yml).",
            context,
        )
    except DruidUnavailable as exc:
        return Check(
            "druid_reads_s3",
            False,
            f"Druid's overlord did not answer the sampler ({_reason(exc)}) — check that the coordinator-overlord runs.",
            context,
        )
    if response.status_code == 200 and response.json().get("numRowsRead", 0) >= 1:
        return Check("druid_reads_s3", True, "Druid read a probe object from the S3 bucket.", context)
    detail = s3_failure_sentence(
        druid_error_text(response),
        who="Druid",
        action="read a probe object from the S3 bucket",
        side="druid",
        bucket=bucket,
    )
    return Check("druid_reads_s3", False, detail, context)


def _probe_delete(probe: _Probe) -> None:
    # A probe left behind is harmless; the check's answer matters more than its cleanup.
    with contextlib.suppress(BotoCoreError, ClientError):
        probe.storage.delete(probe.name)
