"""How Druid reads the bucket, and what a failed S3 read means in plain words.

Both the app (boto3, through django-storages) and Druid (the AWS SDK for Java, in every Druid
process including the ones that run tasks) talk to the same bucket. The settings that decide
whether that works live in two places: the app's S3_* variables and Druid's own `druid.s3.*`
runtime properties (`druid_s3_*` variables in docker-compose.yml). Each known problem below
is told as one sentence naming the setting to change, for whichever side failed.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from storages.backends.s3 import S3Storage

from analytics.engines import EngineError


class S3Required(EngineError):
    code = "druid_needs_s3"


def s3_storage_require() -> S3Storage:
    """The default storage when it is S3: Druid can only read uploads from there."""
    if not isinstance(default_storage, S3Storage):
        raise S3Required(
            "The Druid engine reads uploads from S3, but files are stored in a local folder — set S3_BUCKET "
            "(with S3_ENDPOINT_URL, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY for an S3-compatible server), "
            "or use ANALYTICS_ENGINE=embedded."
        )
    return default_storage


def s3_object_key(storage: S3Storage, name: str) -> str:
    """The object key of a stored file (the storage's `location` is a key prefix)."""
    location = (storage.location or "").strip("/")
    return f"{location}/{name}" if location else name


def s3_uri(storage: S3Storage, name: str) -> str:
    return f"s3://{storage.bucket_name}/{s3_object_key(storage, name)}"


def s3_input_source(uris: list[str]) -> dict:
    """Druid's `s3` input source for these objects.

    With DRUID_S3_ACCESS_KEY_ID set, the key pair travels in the task (Druid shows task payloads
    to its API users); otherwise Druid uses its own druid.s3.accessKey/secretKey.
    """
    source: dict = {"type": "s3", "uris": uris}
    if settings.DRUID_S3_ACCESS_KEY_ID or settings.DRUID_S3_SECRET_ACCESS_KEY:
        source["properties"] = {
            "accessKeyId": {"type": "default", "password": settings.DRUID_S3_ACCESS_KEY_ID},
            "secretAccessKey": {"type": "default", "password": settings.DRUID_S3_SECRET_ACCESS_KEY},
        }
    return source


@dataclass(frozen=True)
class S3Problem:
    # Error codes or message fragments (from boto3 or from Druid's Java stack traces) that identify it.
    markers: tuple[str, ...]
    what: str
    # What to change, for the app and for Druid; {druid_key} and {druid_secret} name where Druid's key pair is set.
    app_fix: str
    druid_fix: str


_DRUID_CONFIG = "in Druid's runtime properties (druid_s3_* variables in docker-compose.yml)"
_VIRTUAL_HOST = S3Problem(
    markers=(),
    what="the bucket name was put into the host name (virtual-host addressing), which an S3-compatible server "
    "does not resolve",
    app_fix="set S3_ADDRESSING_STYLE=path",
    druid_fix=f"set druid.s3.enablePathStyleAccess=true {_DRUID_CONFIG}",
)
# Most specific first: a wrong region can also look like a refused signature or a redirect.
S3_PROBLEMS: tuple[S3Problem, ...] = (
    S3Problem(
        markers=("Unable to find a region", "Unable to load region", "NoRegionError", "You must specify a region"),
        what="no AWS region is configured",
        app_fix="set S3_REGION",
        druid_fix="set aws.region on every Druid process, task processes included (-Daws.region=… in jvm.config "
        "and in druid.indexer.runner.javaOptsArray, or the AWS_REGION environment variable)",
    ),
    S3Problem(
        markers=(
            "AuthorizationHeaderMalformed",
            "PermanentRedirect",
            "IllegalLocationConstraintException",
            "region is wrong",
            "the region '",
        ),
        what="the bucket is in another region than the one requests are signed for",
        app_fix="set S3_REGION to the bucket's region",
        druid_fix=f"set druid.s3.endpoint.signingRegion (and aws.region) to the bucket's region {_DRUID_CONFIG}",
    ),
    S3Problem(
        markers=("InvalidAccessKeyId",),
        what="the access key was refused (InvalidAccessKeyId)",
        app_fix="check S3_ACCESS_KEY_ID",
        druid_fix="check the access key Druid uses: {druid_key}",
    ),
    S3Problem(
        markers=("SignatureDoesNotMatch",),
        what="the secret key was refused (SignatureDoesNotMatch)",
        app_fix="check S3_SECRET_ACCESS_KEY",
        druid_fix="check the secret key Druid uses: {druid_secret}",
    ),
    S3Problem(
        markers=("NoSuchBucket", "specified bucket does not exist"),
        what="the bucket does not exist (NoSuchBucket)",
        app_fix="check S3_BUCKET, or create the bucket",
        druid_fix="check S3_BUCKET, and that druid.s3.endpoint.url points at the server S3_ENDPOINT_URL names",
    ),
    S3Problem(
        markers=("NoSuchKey",),
        what="the object is not there (NoSuchKey)",
        app_fix="check S3_BUCKET and S3_ENDPOINT_URL",
        druid_fix="check that druid.s3.endpoint.url points at the server S3_ENDPOINT_URL names",
    ),
    S3Problem(
        markers=("AccessDenied", "Access Denied"),
        what="access was denied (AccessDenied)",
        app_fix="give the key in S3_ACCESS_KEY_ID read and write access to the bucket",
        druid_fix="give the key Druid uses ({druid_key}) read access to the bucket",
    ),
    S3Problem(
        markers=(
            "UnknownHostException",
            "Name or service not known",
            "nodename nor servname",
            "Temporary failure in name resolution",
            "Failed to resolve",
        ),
        what="the S3 server's host name could not be resolved",
        app_fix="check S3_ENDPOINT_URL",
        druid_fix=f"check druid.s3.endpoint.url {_DRUID_CONFIG}",
    ),
    S3Problem(
        markers=(
            "Connection refused",
            "HttpHostConnectException",
            "EndpointConnectionError",
            "Could not connect to the endpoint",
            "ConnectTimeout",
            "connect timed out",
            "Unable to execute HTTP request",
        ),
        what="the S3 endpoint did not accept the connection",
        app_fix="check S3_ENDPOINT_URL",
        druid_fix=f"check druid.s3.endpoint.url {_DRUID_CONFIG}: Druid must reach the S3 server from its own machines",
    ),
    S3Problem(
        markers=("(403)", "Forbidden", "Status Code: 403"),
        what="the credentials were refused (HTTP 403)",
        app_fix="check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY",
        druid_fix="check the key pair Druid uses: {druid_key} and {druid_secret}",
    ),
)


def s3_problem_find(text: str, *, bucket: str) -> S3Problem | None:
    # The bucket as the first label of a host name: "http://BUCKET.host:port/…", "…request: BUCKET.host: Name…".
    if bucket and re.search(rf"(?://|[:\s]){re.escape(bucket)}\.[A-Za-z0-9]", text):
        return _VIRTUAL_HOST
    for problem in S3_PROBLEMS:
        if any(marker in text for marker in problem.markers):
            return problem
    return None


def druid_key_setting() -> str:
    if settings.DRUID_S3_ACCESS_KEY_ID:
        return "DRUID_S3_ACCESS_KEY_ID"
    return "druid.s3.accessKey (druid_s3_accessKey in docker-compose.yml; bin/services sets it from S3_ACCESS_KEY_ID)"


def druid_secret_setting() -> str:
    if settings.DRUID_S3_SECRET_ACCESS_KEY:
        return "DRUID_S3_SECRET_ACCESS_KEY"
    return (
        "druid.s3.secretKey (druid_s3_secretKey in docker-compose.yml; bin/services sets it from S3_SECRET_ACCESS_KEY)"
    )


def s3_failure_sentence(text: str, *, who: str, action: str, side: str, bucket: str) -> str:
    """One sentence: `who` could not `action`, what went wrong, and the setting to change.

    `side` is "app" or "druid": whose settings decide the fix.
    """
    problem = s3_problem_find(text, bucket=bucket)
    if problem is None:
        return f"{who} could not {action}: {error_summary(text)}."
    fix = problem.app_fix if side == "app" else problem.druid_fix
    fix = fix.format(druid_key=druid_key_setting(), druid_secret=druid_secret_setting())
    return f"{who} could not {action}: {problem.what} — {fix}."


_PACKAGE_PREFIX = re.compile(r"\b(?:[a-z][\w$]*\.)+([A-Z][\w$]*)")


def error_summary(text: str, *, limit: int = 300) -> str:
    """The first line of a (Java) error and its root `Caused by`, without package names or stack frames."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no reason given"
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    parts = [lines[0]] + ([causes[-1]] if causes and causes[-1] not in lines[0] else [])
    summary = "; caused by ".join(_PACKAGE_PREFIX.sub(r"\1", part) for part in parts)
    return summary if len(summary) <= limit else summary[: limit - 1] + "…"
