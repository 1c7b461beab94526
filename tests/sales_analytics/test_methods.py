"""Methods an API path does not take are refused in the API's JSON shape; HEAD works where GET does for monitors."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_a_wrong_method_on_the_api_answers_json_405(viewer_api: Client, method: str) -> None:
    response = getattr(viewer_api, method)("/api/metrics/summary")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"{method.upper()} is not allowed on /api/metrics/summary: use GET.",
        "code": "method_not_allowed",
    }
    assert response["Allow"] == "GET"


def test_a_wrong_method_on_a_write_endpoint_names_the_allowed_one(viewer_api: Client) -> None:
    response = viewer_api.get("/api/ingest/upload")
    assert (response.status_code, response.json()["code"], response["Allow"]) == (405, "method_not_allowed", "POST")


def test_head_on_health_answers_like_get_without_a_body() -> None:
    client = Client()
    got = client.get("/api/health")
    head = client.head("/api/health")
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == got["Content-Type"] == "application/json; charset=utf-8"
