"""Login required for pages (htmx included), and the idle timeout of browser sessions."""

import time

import pytest
from django.test import Client

from accounts.middleware import SESSION_LAST_ACTIVITY_KEY
from accounts.services import api_token_create
from analytics.services import datasource_get_or_create
from ingestion.models import IngestionTask
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

IDLE_MESSAGE = "You were logged out after 8 hours without activity. Log in again to continue."
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/sales?branch=A"}


def _client_last_active(user, *, seconds_ago: float) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_LAST_ACTIVITY_KEY] = time.time() - seconds_ago
    session.save()
    return client


def _last_activity(client: Client) -> float | None:
    return client.session.get(SESSION_LAST_ACTIVITY_KEY)


def test_the_default_idle_timeout_is_eight_hours(settings) -> None:
    assert settings.SESSION_IDLE_MINUTES == 480


def test_a_session_idle_too_long_is_logged_out_to_the_login_page_which_says_why(viewer) -> None:
    client = _client_last_active(viewer, seconds_ago=8 * 3600 + 60)

    response = client.get("/sales")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/sales"
    assert "_auth_user_id" not in client.session
    login_page = client.get(response["Location"])
    assert IDLE_MESSAGE in login_page.content.decode()
    # Said once.
    assert IDLE_MESSAGE not in client.get("/accounts/login/").content.decode()


def test_a_session_in_use_stays_and_its_activity_is_noted(viewer) -> None:
    client = _client_last_active(viewer, seconds_ago=8 * 3600 - 60)
    assert client.get("/").status_code == 200
    assert time.time() - _last_activity(client) < 5
    # Within a minute of the last note, the session is not written again for it.
    noted = _last_activity(client)
    client.get("/")
    assert _last_activity(client) == noted


def test_the_idle_timeout_is_a_setting(viewer, settings) -> None:
    settings.SESSION_IDLE_MINUTES = 15
    client = _client_last_active(viewer, seconds_ago=16 * 60)
    assert client.get("/").status_code == 302
    assert "after 15 minutes without activity" in client.get("/accounts/login/").content.decode()


def test_an_htmx_request_of_an_idle_session_gets_a_redirect_htmx_follows(viewer) -> None:
    client = _client_last_active(viewer, seconds_ago=8 * 3600 + 60)

    response = client.get("/sales?branch=A&partial=panels", **HTMX)

    # Not a 302 (htmx would follow it and swap the login page into the panel): HX-Redirect, to the
    # login page and back to the page the browser shows, not to the partial.
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/sales%3Fbranch%3DA"
    assert b"password" not in response.content
    assert IDLE_MESSAGE in client.get(response["HX-Redirect"]).content.decode()


def test_an_anonymous_htmx_request_gets_the_login_redirect_htmx_follows() -> None:
    response = Client().get("/sales", **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


def test_a_page_refreshing_itself_is_not_activity(viewer) -> None:
    client = _client_last_active(viewer, seconds_ago=3600)
    before = _last_activity(client)

    response = client.get("/uploads?partial=tasks", HTTP_X_BACKGROUND_REFRESH="true", **HTMX)

    assert response.status_code == 200
    assert _last_activity(client) == before


def test_the_self_refreshing_panels_say_so(uploader) -> None:
    IngestionTask.objects.create(
        datasource=datasource_get_or_create(name="sales"), original_filename="sales.csv", sha256="0" * 64
    )
    client = Client()
    client.force_login(uploader)
    assert """hx-headers='{"X-Background-Refresh": "true"}'""" in client.get("/uploads").content.decode()


def test_an_idle_session_gets_401_from_the_apis(viewer) -> None:
    client = _client_last_active(viewer, seconds_ago=8 * 3600 + 60)
    assert client.get("/api/ingest/tasks").status_code == 401


def test_a_bearer_token_has_no_idle_timeout(viewer) -> None:
    _, raw_token = api_token_create(user=viewer)
    assert token_client(raw_token).get("/api/ingest/tasks").status_code == 200
