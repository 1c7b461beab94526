"""`manage.py druid_check` and the health check's engine detail, against the real S3 server and Druid.

Each misconfiguration is made for real where the shared services allow it (the app's own S3
settings, the key pair an ingestion hands Druid, an unknown bucket, a closed port). Druid's own
JVM settings (region, endpoint) cannot be broken on a shared cluster, so those answers are
faked at the HTTP boundary, with the error texts Druid and S3 really send.
"""

import json
import socket
from collections.abc import Iterator
from io import StringIO

import pytest
from botocore.stub import Stubber
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client

from analytics.engines import druid_preflight
from analytics.engines.druid import DruidTimeout
from analytics.engines.druid_preflight import druid_preflight as preflight
from analytics.engines.druid_preflight import druid_reads_s3_check
from sales_analytics.settings import s3_storage_options

pytestmark = [pytest.mark.druid, pytest.mark.s3]

WRONG_SECRET = "wrong-secret-never-shown-0123456789abcdef"


def druid_check() -> tuple[bool, str]:
    out = StringIO()
    try:
        call_command("druid_check", stdout=out)
    except CommandError as exc:
        return False, out.getvalue() + str(exc)
    return True, out.getvalue()


def failed_line(output: str, check: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(f"FAIL {check}: ")]
    return line.removeprefix(f"FAIL {check}: ")


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def app_s3(settings):
    """Change the app's S3 storage options for one test (what S3_* variables would have set)."""

    def change(**options) -> None:
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**s3_storage_options(), **options}},
        }

    return change


def test_everything_reachable_passes() -> None:
    ok, output = druid_check()
    assert ok, output
    assert [line.split(":")[0] for line in output.splitlines() if line[:4] in ("ok  ", "FAIL")] == [
        "ok   app_s3",
        "ok   app_druid",
        "ok   druid_reads_s3",
    ]
    assert "Druid read a probe object from the S3 bucket." in output
    assert "Druid is ready" in output


def test_wrong_key_pair_for_druid_names_druid_s3_access_key_id(settings) -> None:
    settings.DRUID_S3_ACCESS_KEY_ID = "WRONGKEY0000DRUIDCHK"
    settings.DRUID_S3_SECRET_ACCESS_KEY = WRONG_SECRET

    ok, output = druid_check()

    assert not ok
    assert failed_line(output, "druid_reads_s3") == (
        "Druid could not read a probe object from the S3 bucket: the access key was refused (InvalidAccessKeyId) — "
        "check the access key Druid uses: DRUID_S3_ACCESS_KEY_ID."
    )
    assert WRONG_SECRET not in output


def test_wrong_secret_for_the_app_names_s3_secret_access_key(app_s3) -> None:
    app_s3(secret_key=WRONG_SECRET)

    ok, output = druid_check()

    assert not ok
    assert failed_line(output, "app_s3") == (
        "The app could not write a probe object to the S3 bucket: the secret key was refused "
        "(SignatureDoesNotMatch) — check S3_SECRET_ACCESS_KEY."
    )
    assert "not checked" in failed_line(output, "druid_reads_s3")
    assert WRONG_SECRET not in output


def test_missing_bucket_names_s3_bucket(app_s3) -> None:
    app_s3(bucket_name="no-such-bucket-for-sales")

    ok, output = druid_check()

    assert not ok
    assert failed_line(output, "app_s3") == (
        "The app could not write a probe object to the S3 bucket: the bucket does not exist (NoSuchBucket) — "
        "check S3_BUCKET, or create the bucket."
    )


def test_missing_bucket_seen_by_druid_names_s3_bucket() -> None:
    check = druid_reads_s3_check(uri="s3://no-such-bucket-for-sales/probe.json", bucket="no-such-bucket-for-sales")

    assert not check.ok
    assert check.detail == (
        "Druid could not read a probe object from the S3 bucket: the bucket does not exist (NoSuchBucket) — check "
        "S3_BUCKET, and that druid.s3.endpoint.url points at the server S3_ENDPOINT_URL names."
    )


def test_closed_endpoint_names_s3_endpoint_url(app_s3, closed_port) -> None:
    app_s3(endpoint_url=f"http://127.0.0.1:{closed_port}")

    ok, output = druid_check()

    assert not ok
    assert failed_line(output, "app_s3") == (
        "The app could not write a probe object to the S3 bucket: the S3 endpoint did not accept the connection — "
        "check S3_ENDPOINT_URL."
    )


def test_virtual_host_addressing_names_s3_addressing_style(app_s3) -> None:
    # An IP address endpoint makes boto3 fall back to path style; a host name does not.
    endpoint = default_storage.endpoint_url.replace("127.0.0.1", "localhost")
    options = s3_storage_options()
    config = options["client_config"].merge(type(options["client_config"])(s3={"addressing_style": "virtual"}))
    app_s3(endpoint_url=endpoint, addressing_style="virtual", client_config=config)

    ok, output = druid_check()

    assert not ok
    assert failed_line(output, "app_s3") == (
        "The app could not write a probe object to the S3 bucket: the bucket name was put into the host name "
        "(virtual-host addressing), which an S3-compatible server does not resolve — set S3_ADDRESSING_STYLE=path."
    )


def test_unreachable_druid_names_druid_router_url(settings, closed_port, monkeypatch) -> None:
    monkeypatch.setattr("analytics.engines.druid.BACKOFF_SECONDS", 0.01)
    settings.DRUID_ROUTER_URL = f"http://127.0.0.1:{closed_port}"

    ok, output = druid_check()

    assert not ok
    assert failed_line(output, "app_druid") == (
        "The app cannot reach Druid's router (ConnectionError) — check DRUID_ROUTER_URL and that Druid runs."
    )


def test_wrong_region_for_the_app_names_s3_region() -> None:
    """AWS answers a request signed for the wrong region like this; the local S3 server accepts any region."""
    client = default_storage.connection.meta.client
    with Stubber(client) as stub:
        stub.add_client_error(
            "put_object",
            service_error_code="AuthorizationHeaderMalformed",
            service_message="The authorization header is malformed; the region 'us-east-1' is wrong; "
            "expecting 'eu-west-3'",
            http_status_code=400,
        )
        checks = preflight()

    assert checks[0].detail == (
        "The app could not write a probe object to the S3 bucket: the bucket is in another region than the one "
        "requests are signed for — set S3_REGION to the bucket's region."
    )


class FakeSamplerAnswer:
    """Druid's sampler refusing, as its HTTP answer looks (status 400, JSON `error`)."""

    status_code = 400

    def __init__(self, error: str) -> None:
        self.text = json.dumps({"error": error})

    def json(self) -> dict:
        return json.loads(self.text)


def sampler_answers(monkeypatch, answer) -> None:
    real_call = druid_preflight.druid_call

    def call(method, path, **kwargs):
        if path == "/druid/indexer/v1/sampler":
            if isinstance(answer, Exception):
                raise answer
            return answer
        return real_call(method, path, **kwargs)

    monkeypatch.setattr(druid_preflight, "druid_call", call)


def test_druid_without_a_region_names_aws_region(monkeypatch) -> None:
    sampler_answers(
        monkeypatch,
        FakeSamplerAnswer(
            "Failed to sample data: com.amazonaws.SdkClientException: Unable to find a region via the region "
            "provider chain. Must provide an explicit region in the builder or setup environment to supply a region."
        ),
    )

    (app_s3, app_druid, druid_reads_s3) = preflight()

    assert app_s3.ok and app_druid.ok and not druid_reads_s3.ok
    assert druid_reads_s3.detail == (
        "Druid could not read a probe object from the S3 bucket: no AWS region is configured — set aws.region on "
        "every Druid process, task processes included (-Daws.region=… in jvm.config and in "
        "druid.indexer.runner.javaOptsArray, or the AWS_REGION environment variable)."
    )


def test_druid_stuck_on_an_unreachable_endpoint_names_its_endpoint_and_path_style(monkeypatch, settings) -> None:
    settings.DRUID_TIMEOUT_SECONDS = 5
    sampler_answers(monkeypatch, DruidTimeout("no answer"))

    druid_reads_s3 = preflight()[2]

    assert not druid_reads_s3.ok
    assert druid_reads_s3.detail.endswith(
        "within 5 s: it keeps retrying S3, which means it cannot reach the S3 server — check druid.s3.endpoint.url "
        "and, for an S3-compatible server, druid.s3.enablePathStyleAccess=true in Druid's runtime properties "
        "(druid_s3_* in docker-compose.yml)."
    )


def test_druid_refusing_an_unresolvable_host_names_path_style(monkeypatch) -> None:
    bucket = default_storage.bucket_name
    sampler_answers(
        monkeypatch,
        FakeSamplerAnswer(
            f"Failed to sample data: com.amazonaws.SdkClientException: Unable to execute HTTP request: "
            f"{bucket}.minio: Name or service not known"
        ),
    )

    assert preflight()[2].detail == (
        "Druid could not read a probe object from the S3 bucket: the bucket name was put into the host name "
        "(virtual-host addressing), which an S3-compatible server does not resolve — set "
        "druid.s3.enablePathStyleAccess=true in Druid's runtime properties (druid_s3_* variables in "
        "docker-compose.yml)."
    )


@pytest.mark.django_db
def test_health_reports_druid_reading_the_bucket(settings) -> None:
    settings.ANALYTICS_ENGINE = "druid"

    body = Client().get("/api/health").json()

    assert body["checks"]["engine"] == {"ok": True, "detail": "Druid answers SQL and reads the S3 bucket."}


@pytest.mark.django_db
def test_health_is_degraded_not_down_when_druid_cannot_read_the_bucket(settings) -> None:
    settings.ANALYTICS_ENGINE = "druid"
    settings.DRUID_S3_ACCESS_KEY_ID = "WRONGKEY0000DRUIDHLT"
    settings.DRUID_S3_SECRET_ACCESS_KEY = WRONG_SECRET

    response = Client().get("/api/health")

    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["engine"]["ok"] is False
    assert "DRUID_S3_ACCESS_KEY_ID" in body["checks"]["engine"]["detail"]
    assert WRONG_SECRET not in response.content.decode()
    assert "WRONGKEY0000DRUIDHLT" not in response.content.decode()
    assert body["status"] == "degraded" or not body["checks"]["worker"]["ok"]
