"""Fixtures for the API tests: a live server with the real file published, token callers."""

import httpx
import pytest
from django.core.files.base import ContentFile
from django.test import Client

from accounts.services import api_token_create, user_branch_scope_set
from tests.factories import UserFactory

REVENUE = 322_966.749
UNITS = 5_510
LINES = 1_000
BRANCH_A_REVENUE = 106_200.3705
# What branch A's scope must never reveal: the other branches' revenue (to the cent).
OTHER_BRANCH_REVENUE = {"B": 106_197.672, "C": 110_568.7065}


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_create(user=user)[1]}"}


@pytest.fixture
def make_user(role_groups):
    def make(role: str | None = None, branches: list[str] | None = None, **extra):
        user = UserFactory(role=role, **extra)
        if branches:
            user_branch_scope_set(user=user, branches=branches)
        return user

    return make


@pytest.fixture
def published(live_server, role_groups, tasks_inline, real_file) -> str:
    """The real file uploaded through the live REST API and published; returns the task id."""
    uploader = UserFactory(role="uploader")
    with httpx.Client(base_url=live_server.url, headers=bearer(uploader), timeout=60) as client:
        with real_file.open("rb") as handle:
            response = client.post("/api/ingest/upload", files={"file": ("supermarket_sales.csv", handle, "text/csv")})
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        status = client.get(f"/api/ingest/status/{task_id}").json()
    assert status["status"] == "succeeded", status
    return task_id


@pytest.fixture
def published_inline(role_groups, tasks_inline, real_file, django_capture_on_commit_callbacks) -> str:
    """The same in-process (test client, no live server): the on-commit queueing is executed inline."""
    client = Client(HTTP_AUTHORIZATION=bearer(UserFactory(role="uploader"))["Authorization"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/ingest/upload", {"file": ContentFile(real_file.read_bytes(), name="s.csv")})
    assert response.status_code == 202, response.content
    status = client.get(response.json()["status_url"]).json()
    assert status["status"] == "succeeded", status
    return status["task_id"]
