"""A disk that refuses an upload (full, read-only): a clear 507 through every way in, and nothing
left behind, neither the temporary upload nor a partial raw file in storage."""

import errno
import io
import json
import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.test import Client

from ingestion.models import IngestionTask
from tests.conftest import storage_backend_class, stored_keys

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_MUTATION = "mutation($file: Upload!) { uploadFile(file: $file) { task { id } } }"


def _disk_error(number: int) -> OSError:
    return OSError(number, os.strerror(number))


@pytest.fixture
def upload_temp_dir(settings, tmp_path: Path) -> Path:
    """A folder of this test's own for temporary uploads, to see what is left in it."""
    folder = tmp_path / "upload-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def upload_temp_dir_full(upload_temp_dir: Path, monkeypatch) -> Path:
    """The temporary upload folder fills up once the first chunk is written."""
    write_chunk = TemporaryFileUploadHandler.receive_data_chunk

    def write_then_refuse(self, raw_data: bytes, start: int):
        write_chunk(self, raw_data, start)
        self.file.flush()
        raise _disk_error(errno.ENOSPC)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", write_then_refuse)
    return upload_temp_dir


def _named(content: bytes, name: str = "sales.csv") -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def _upload_refused(client: Client, content: bytes) -> dict:
    """The REST answer to an upload the server's disk refused."""
    response = client.post("/api/ingest/upload", {"file": _named(content)})
    assert response.status_code == 507, response.content
    return response.json()


def _graphql_upload(client: Client, content: bytes, *, status: int) -> dict:
    """The first error of an upload; `status`: 507 when the request itself was refused, 200 when
    the mutation ran and answered with an error (GraphQL's way)."""
    response = client.post(
        "/graphql",
        {
            "operations": json.dumps({"query": UPLOAD_MUTATION, "variables": {"file": None}}),
            "map": json.dumps({"0": ["variables.file"]}),
            "0": ContentFile(content, name="sales.csv"),
        },
    )
    assert response.status_code == status, response.content
    return response.json()["errors"][0]


def test_a_full_upload_folder_is_a_507_that_leaves_no_temporary_file(
    uploader, uploader_api, real_file: Path, upload_temp_dir_full: Path
) -> None:
    refused = _upload_refused(uploader_api, real_file.read_bytes())

    assert refused == {
        "detail": "The server ran out of disk space while receiving the file (its temporary upload folder). "
        "Nothing was stored; ask the administrator to free space, then send the file again.",
        "code": "storage_full",
    }
    assert list(upload_temp_dir_full.iterdir()) == []
    assert not IngestionTask.objects.exists()

    preview = uploader_api.post("/api/ingest/preview", {"file": _named(real_file.read_bytes())})
    assert (preview.status_code, preview.json()["code"]) == (507, "storage_full")

    graphql = _graphql_upload(uploader_api, real_file.read_bytes(), status=507)
    assert graphql["extensions"]["code"] == "storage_full"
    assert graphql["message"] == refused["detail"]

    browser = Client()
    browser.force_login(uploader)
    page = browser.post("/uploads", {"file": _named(real_file.read_bytes())}, follow=True)
    assert "ran out of disk space while receiving the file" in page.content.decode()
    assert list(upload_temp_dir_full.iterdir()) == []
    assert not IngestionTask.objects.exists()


def test_a_read_only_upload_folder_is_a_507(uploader_api, real_file: Path, upload_temp_dir: Path, monkeypatch) -> None:
    from django.core.files import uploadedfile

    def read_only(*args, **kwargs):
        raise _disk_error(errno.EROFS)

    monkeypatch.setattr(uploadedfile.tempfile, "NamedTemporaryFile", read_only)

    refused = _upload_refused(uploader_api, real_file.read_bytes())

    assert refused["code"] == "storage_unwritable"
    assert "cannot write to its disk (a read-only file system)" in refused["detail"]
    assert not IngestionTask.objects.exists()


def _raw_files() -> list[str]:
    return stored_keys("raw")


@pytest.fixture
def storage_full(monkeypatch) -> None:
    """Storage takes the first bytes of a file, then its disk is full."""

    backend = storage_backend_class()
    save = backend._save

    def save_part_then_refuse(self, name: str, content) -> str:
        save(self, name, ContentFile(content.read(1000)))
        raise _disk_error(errno.ENOSPC)

    monkeypatch.setattr(backend, "_save", save_part_then_refuse)


def test_a_full_storage_is_a_507_that_leaves_no_partial_raw_file(
    uploader, uploader_api, real_file: Path, storage_full
) -> None:
    before = _raw_files()

    refused = _upload_refused(uploader_api, real_file.read_bytes())

    assert refused == {
        "detail": "The server ran out of disk space while storing the raw file. Nothing was stored; ask the "
        "administrator to free space, then send the file again.",
        "code": "storage_full",
    }
    assert _raw_files() == before
    assert not IngestionTask.objects.exists()

    # The page and GraphQL store the file through the same service, and say the same.
    graphql = _graphql_upload(uploader_api, real_file.read_bytes(), status=200)
    assert (graphql["message"], graphql["extensions"]["code"]) == (refused["detail"], "storage_full")
    browser = Client()
    browser.force_login(uploader)
    page = browser.post("/uploads", {"file": _named(real_file.read_bytes())}, follow=True)
    assert "ran out of disk space while storing the raw file" in page.content.decode()
    assert _raw_files() == before


def test_a_read_only_storage_is_a_507(uploader_api, real_file: Path, monkeypatch) -> None:
    def read_only(self, name: str, content) -> str:
        raise _disk_error(errno.EROFS)

    monkeypatch.setattr(storage_backend_class(), "_save", read_only)

    refused = _upload_refused(uploader_api, real_file.read_bytes())

    assert refused["code"] == "storage_unwritable"
    assert refused["detail"].startswith(
        "The server cannot write to its disk (a read-only file system) while storing the raw file."
    )
    assert not IngestionTask.objects.exists()
