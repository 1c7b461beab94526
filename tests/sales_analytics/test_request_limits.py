"""Request bodies refused before they are read: multipart from unknown callers, bodies past the
upload limit, more file parts than an upload needs; and the limit counts every part of a request."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from ingestion.models import IngestionTask
from tests.conftest import login_post, token_client
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

MULTIPART = "multipart/form-data; boundary=BOUNDARY"
ONE_MB = 1024 * 1024


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if anything reads it (parses or spools it)."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the request body was read")

    def readline(self, size: int = -1) -> bytes:
        raise AssertionError("the request body was read")


def post_unread_body(client: Client, path: str, *, content_length: int, content_type: str = MULTIPART):
    return client.generic(
        "POST",
        path,
        data=b"-",
        content_type=content_type,
        CONTENT_LENGTH=str(content_length),
        **{"wsgi.input": UnreadableBody()},
    )


@pytest.mark.parametrize("path", ["/accounts/login/", "/api/ingest/upload", "/graphql", "/uploads"])
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token"])
def test_multipart_from_an_unknown_caller_is_refused_unread(path: str, authorization: str | None) -> None:
    # The CSRF check is on, as in production: it is what parsed the body before anything refused it.
    client = Client(enforce_csrf_checks=True, **({"HTTP_AUTHORIZATION": authorization} if authorization else {}))
    response = post_unread_body(client, path, content_length=50 * ONE_MB)
    assert response.status_code == 401
    assert "Location" not in response
    if path.startswith("/api/"):
        assert response.json()["code"] == "not_authenticated"
    elif path == "/graphql":
        assert response.json()["errors"][0]["extensions"]["code"] == "not_authenticated"
    else:
        assert b"before sending files" in response.content


def test_login_form_still_works(viewer) -> None:
    """The login form is urlencoded (as a browser sends a form without enctype), not multipart."""
    response = login_post(Client(), username=viewer.username, password=TEST_PASSWORD)
    assert response.status_code == 302


def test_body_past_the_limit_is_413_before_it_is_read(uploader, uploader_api, settings) -> None:
    settings.MAX_UPLOAD_MB = 2
    too_long = 3 * ONE_MB + 1  # the file limit, plus the form's 1 MB allowance, plus one byte
    response = post_unread_body(uploader_api, "/api/ingest/upload", content_length=too_long)
    assert response.status_code == 413
    assert response.json() == {
        "detail": "The file is larger than the 2 MB limit (MAX_UPLOAD_MB).",
        "code": "file_too_large",
    }
    graphql = post_unread_body(uploader_api, "/graphql", content_length=too_long).json()
    assert graphql["errors"][0]["extensions"]["code"] == "file_too_large"
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(uploader)
    page = post_unread_body(browser, "/uploads", content_length=too_long)
    assert page.status_code == 413
    assert b"larger than the 2 MB limit" in page.content
    assert IngestionTask.objects.count() == 0


def _two_files(size: int) -> dict:
    return {"file": ContentFile(b"x" * size, name="a.csv"), "other": ContentFile(b"y" * size, name="b.csv")}


def test_a_second_file_part_is_refused(uploader_api) -> None:
    response = uploader_api.post("/api/ingest/upload", _two_files(10))
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_files"
    operations = {"query": "mutation($file: Upload!) { uploadFile(file: $file) { task { id } } }", "variables": {}}
    graphql = uploader_api.post(
        "/graphql",
        {"operations": json.dumps(operations), "map": json.dumps({"file": ["variables.file"]}), **_two_files(10)},
    )
    assert graphql.status_code == 400
    assert graphql.json()["errors"][0]["extensions"]["code"] == "too_many_files"
    assert IngestionTask.objects.count() == 0


def test_the_limit_counts_every_file_part_of_a_request(uploader_api, settings) -> None:
    """Two parts each under the limit, together over it (should more parts ever be allowed)."""
    settings.MAX_UPLOAD_MB = 1
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    response = uploader_api.post("/api/ingest/upload", _two_files(700 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "file_too_large"
    assert IngestionTask.objects.count() == 0


def test_a_known_caller_can_still_upload(uploader) -> None:
    from accounts.services import api_token_create

    client = token_client(api_token_create(user=uploader)[1])
    handle = io.BytesIO(b"Date,Branch,Product line,Quantity,Total\n2019-01-05,A,Food,1,10\n")
    handle.name = "a.csv"
    response = client.post("/api/ingest/upload", {"file": handle})
    assert response.status_code == 202
