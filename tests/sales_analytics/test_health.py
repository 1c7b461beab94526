import json
import socket
from collections.abc import Iterator

import pytest
from botocore.config import Config as BotoConfig
from django.db import OperationalError
from django.test import Client

from tests.processes import running_worker

CHECKS = {"database", "storage", "engine", "broker", "worker"}
FAKE_S3_SECRET = "fake-s3-secret-Zq8v2Lx7-never-shown"
FAKE_SECRET_KEY = "fake-django-secret-key-Wm3r9Tc1-never-shown"
FAKE_DB_PASSWORD = "fake-db-password-Hk5p0Ne4-never-shown"
# What a real driver error can look like: the message carries the connection string.
DB_ERROR_MESSAGE = f'connection to "postgres://sales:{FAKE_DB_PASSWORD}@db.internal:5432/sales" failed'


def get_health() -> tuple[int, dict]:
    response = Client().get("/api/health")
    assert response["Content-Type"].startswith("application/json")
    return response.status_code, response.json()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def unreachable_s3_storage(port: int) -> dict:
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "sales-analytics",
            "access_key": "AKIAFAKEHEALTHCHECK0",
            "secret_key": FAKE_S3_SECRET,
            "region_name": "us-east-1",
            "endpoint_url": f"http://127.0.0.1:{port}",
            "addressing_style": "path",
            "signature_version": "s3v4",
            "file_overwrite": False,
            "client_config": BotoConfig(
                connect_timeout=2, read_timeout=2, retries={"max_attempts": 1, "mode": "standard"}
            ),
        },
    }


def unreachable_folder_storage() -> dict:
    # A folder "inside" a character device can never be created.
    return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": "/dev/null/storage"}}


class UnreachableConnection:
    """Stands in for `django.db.connection` in the health module: every cursor fails."""

    vendor = "postgresql"

    def cursor(self):
        raise OperationalError(DB_ERROR_MESSAGE)


@pytest.fixture
def database_unreachable(monkeypatch) -> None:
    monkeypatch.setattr("sales_analytics.health.connection", UnreachableConnection())


@pytest.mark.django_db
def test_health_is_public_and_lists_every_check() -> None:
    status_code, body = get_health()
    assert status_code == 200
    assert set(body) == {"status", "checks"}
    assert set(body["checks"]) == CHECKS
    for check in body["checks"].values():
        assert isinstance(check["ok"], bool)
        assert isinstance(check["detail"], str)
        assert check["detail"]


@pytest.mark.django_db
def test_health_without_worker_is_degraded_not_down() -> None:
    status_code, body = get_health()
    assert status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["storage"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_health_with_worker_running_is_ok() -> None:
    with running_worker():
        status_code, body = get_health()
    assert status_code == 200, body
    assert body["status"] == "ok", body
    assert all(check["ok"] for check in body["checks"].values()), body
    # Once the worker is gone, the health check says so.
    status_code, body = get_health()
    assert (status_code, body["status"], body["checks"]["worker"]["ok"]) == (200, "degraded", False)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_health_with_storage_unreachable_is_503_down(kind: str, settings, closed_port: int) -> None:
    storage = unreachable_folder_storage() if kind == "folder" else unreachable_s3_storage(closed_port)
    settings.STORAGES = {**settings.STORAGES, "default": storage}
    status_code, body = get_health()
    assert status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["storage"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_health_with_database_unreachable_is_503_down(database_unreachable) -> None:
    status_code, body = get_health()
    assert status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["database"] == {"ok": False, "detail": "database unreachable (OperationalError)"}


@pytest.mark.django_db
def test_health_shows_no_secrets_or_exception_messages(settings, closed_port: int, database_unreachable) -> None:
    settings.SECRET_KEY = FAKE_SECRET_KEY
    settings.STORAGES = {**settings.STORAGES, "default": unreachable_s3_storage(closed_port)}
    status_code, body = get_health()
    text = json.dumps(body)

    assert status_code == 503
    secrets = [FAKE_SECRET_KEY, FAKE_S3_SECRET, FAKE_DB_PASSWORD, "AKIAFAKEHEALTHCHECK0", "db.internal"]
    secrets += [s for s in (settings.DATABASES["default"].get("PASSWORD"), settings.S3_BUCKET) if s]
    for secret in secrets:
        assert secret not in text
    assert f"127.0.0.1:{closed_port}" not in text
    # A failed check names the exception's class, never its message.
    assert body["checks"]["database"]["detail"] == "database unreachable (OperationalError)"
    assert body["checks"]["storage"]["detail"].startswith("storage unreachable (")
    assert "failed" not in body["checks"]["database"]["detail"]


@pytest.mark.django_db
def test_health_of_configured_services_shows_no_connection_strings(settings) -> None:
    """Whatever the run is configured with (PostgreSQL, S3), their credentials never appear."""
    _, body = get_health()
    text = json.dumps(body)
    database = settings.DATABASES["default"]
    storage_options = settings.STORAGES["default"].get("OPTIONS", {})
    for secret in (
        settings.SECRET_KEY,
        database.get("PASSWORD"),
        storage_options.get("secret_key"),
        storage_options.get("access_key"),
    ):
        if secret:
            assert secret not in text
    assert "://" not in text
