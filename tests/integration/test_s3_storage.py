"""File storage against the real S3-compatible server from `make services` (rclone serve s3).

Each test works under its own random prefix (the storage's `location`) and removes it after.
"""

import hashlib
import os
import uuid
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from storages.backends.s3 import S3Storage

from sales_analytics.settings import s3_storage_options

pytestmark = pytest.mark.s3

MB = 1024 * 1024


def storage_build(**overrides) -> S3Storage:
    """A storage configured exactly as the app's default storage, with `overrides` on top."""
    return S3Storage(**{**s3_storage_options(), **overrides})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"tests/{uuid.uuid4().hex}"
    yield prefix
    storage_build().bucket.objects.filter(Prefix=f"{prefix}/").delete()


@pytest.fixture
def storage(prefix: str) -> S3Storage:
    return storage_build(location=prefix)


def test_bytes_round_trip(storage: S3Storage) -> None:
    content = b"date,branch,revenue\n2019-01-05,A,548.97\n\x00\xff binary tail"

    name = storage.save("raw/sales/2019/01/upload.csv", ContentFile(content))

    assert name == "raw/sales/2019/01/upload.csv"
    assert storage.exists(name)
    assert storage.size(name) == len(content)
    with storage.open(name, "rb") as stored:
        assert stored.read() == content
    assert storage.listdir("raw/sales/2019/01") == ([], ["upload.csv"])

    storage.delete(name)

    assert not storage.exists(name)
    with pytest.raises(FileNotFoundError):
        storage.open(name, "rb")


def test_existing_name_is_never_overwritten(storage: S3Storage) -> None:
    first = storage.save("raw/report.csv", ContentFile(b"first"))
    second = storage.save("raw/report.csv", ContentFile(b"second"))

    assert second != first
    with storage.open(first, "rb") as stored:
        assert stored.read() == b"first"
    with storage.open(second, "rb") as stored:
        assert stored.read() == b"second"


def test_large_file_goes_multipart_and_round_trips_byte_for_byte(storage: S3Storage) -> None:
    content = os.urandom(12 * MB)
    parts_uploaded: list[int] = []

    def count_part(params, **kwargs) -> None:
        parts_uploaded.append(params["PartNumber"])

    client = storage.connection.meta.client
    client.meta.events.register("before-parameter-build.s3.UploadPart", count_part)
    try:
        name = storage.save("raw/sales/big.parquet", ContentFile(content))
    finally:
        client.meta.events.unregister("before-parameter-build.s3.UploadPart", count_part)

    # boto3 switches to multipart above 8 MB: 12 MB is two parts.
    assert sorted(parts_uploaded) == [1, 2]
    assert storage.size(name) == len(content)
    with storage.open(name, "rb") as stored:
        assert sha256(stored.read()) == sha256(content)


@pytest.mark.parametrize(
    ("credentials", "expected_codes"),
    [
        pytest.param({"secret_key": "wrong-" + "0" * 34}, {"SignatureDoesNotMatch"}, id="wrong-secret"),
        pytest.param({"access_key": "UNKNOWNKEY0000000000"}, {"InvalidAccessKeyId"}, id="unknown-key"),
    ],
)
def test_wrong_credentials_are_refused_and_write_nothing(
    storage: S3Storage, prefix: str, credentials: dict, expected_codes: set[str]
) -> None:
    # file_overwrite=True skips the existence check, so the refusal comes from the upload itself.
    intruder = storage_build(location=prefix, file_overwrite=True, **credentials)

    with pytest.raises(ClientError) as refused:
        intruder.save("raw/intruder.csv", ContentFile(b"should never be stored"))

    assert refused.value.response["Error"]["Code"] in expected_codes
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert not storage.exists("raw/intruder.csv")
    assert storage.listdir("raw") == ([], [])


def test_wrong_secret_cannot_read(storage: S3Storage, prefix: str) -> None:
    name = storage.save("raw/private.csv", ContentFile(b"private"))
    intruder = storage_build(location=prefix, secret_key="wrong-" + "0" * 34)

    with pytest.raises(ClientError) as refused:
        intruder.open(name, "rb")

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_default_storage_is_the_s3_bucket() -> None:
    assert isinstance(default_storage, S3Storage)
    assert default_storage.bucket_name == settings.S3_BUCKET
    assert default_storage.endpoint_url == (settings.S3_ENDPOINT_URL or None)

    name = default_storage.save(f"tests/{uuid.uuid4().hex}/default.txt", ContentFile(b"through default_storage"))
    try:
        # Read back with a separate client: the object really is in the bucket.
        stored = storage_build().connection.meta.client.get_object(Bucket=settings.S3_BUCKET, Key=name)
        assert stored["Body"].read() == b"through default_storage"
    finally:
        default_storage.delete(name)
    assert not default_storage.exists(name)
