from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts.models import APIToken
from accounts.services import api_token_create, api_token_revoke
from tests.conftest import login_post, token_client
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

PAGES = ["/"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_page_redirects_to_login(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_is_public_and_styled() -> None:
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    assert b"css/app.css" in response.content
    assert b'name="password"' in response.content


def test_login_then_overview(viewer) -> None:
    client = Client()
    response = login_post(client, username=viewer.username, password=TEST_PASSWORD)
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_user_without_role_gets_403_page(roleless_user) -> None:
    client = Client()
    client.force_login(roleless_user)
    assert client.get("/").status_code == 403


def test_anonymous_api_is_401_json_not_redirect() -> None:
    response = Client().get("/api/ingest/tasks")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_anonymous_graphql_is_401_json() -> None:
    response = Client().post("/graphql", {"query": "{ viewer { username } }"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "not_authenticated"


def test_token_authenticates_rest_and_graphql(viewer) -> None:
    _, raw = api_token_create(user=viewer)
    client = token_client(raw)
    assert client.get("/api/ingest/tasks").status_code == 200
    response = client.post("/graphql", {"query": "{ viewer { username roles } }"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["data"]["viewer"] == {"username": viewer.username, "roles": ["viewer"]}


def test_only_the_hash_is_stored(viewer) -> None:
    token, raw = api_token_create(user=viewer)
    stored = APIToken.objects.get(pk=token.pk)
    assert raw not in (stored.key_hash, stored.key_prefix, stored.name)
    assert len(stored.key_hash) == 64


@pytest.mark.parametrize("header", ["Bearer sa_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_bad_token_is_401(header: str) -> None:
    response = Client(HTTP_AUTHORIZATION=header).get("/api/ingest/tasks")
    assert response.status_code == 401
    graphql = Client(HTTP_AUTHORIZATION=header).post(
        "/graphql", {"query": "{ viewer { username } }"}, content_type="application/json"
    )
    assert graphql.status_code == 401


def test_revoked_token_is_401(viewer) -> None:
    token, raw = api_token_create(user=viewer)
    client = token_client(raw)
    assert client.get("/api/ingest/tasks").status_code == 200
    api_token_revoke(token=token)
    assert client.get("/api/ingest/tasks").status_code == 401


def test_bad_token_does_not_fall_back_to_session(viewer) -> None:
    client = Client(HTTP_AUTHORIZATION="Bearer sa_wrong")
    client.force_login(viewer)
    assert client.get("/api/ingest/tasks").status_code == 401


def test_inactive_users_token_is_401(viewer) -> None:
    _, raw = api_token_create(user=viewer)
    viewer.is_active = False
    viewer.save()
    assert token_client(raw).get("/api/ingest/tasks").status_code == 401


def _later_session_api_write_requires_csrf(uploader) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(uploader)
    response = client.post("/api/ingest/tasks/1/retry")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_session_graphql_post_requires_csrf(viewer) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    response = client.post("/graphql", {"query": "{ viewer { username } }"}, content_type="application/json")
    assert response.status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
    ],
)
def test_no_self_service_password_reset(path: str, viewer) -> None:
    """Admins set passwords; only the login page is public (DESIGN.md), and no reset link goes to a mailbox or log."""
    assert Client().get(path).status_code == 404
    assert (
        Client().post(path, {"email": viewer.email}, content_type="application/x-www-form-urlencoded").status_code
        == 404
    )
    login_page = Client().get("/accounts/login/").content
    assert b"reset" not in login_page.lower()


def test_logged_in_user_can_change_password(viewer) -> None:
    client = Client()
    client.force_login(viewer)
    assert client.get("/accounts/password_change/").status_code == 200
    response = client.post(
        "/accounts/password_change/",
        urlencode(
            {
                "old_password": TEST_PASSWORD,
                "new_password1": "a-new-long-password-7",
                "new_password2": "a-new-long-password-7",
            }
        ),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    viewer.refresh_from_db()
    assert viewer.check_password("a-new-long-password-7")


def test_a_rest_csrf_refusal_says_what_to_send_as_graphql_does(uploader) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(uploader)
    rest = client.post("/api/ingest/tasks/00000000-0000-0000-0000-000000000000/retry")
    graphql = client.post("/graphql", {"query": "{ viewer { username } }"}, content_type="application/json")
    assert (rest.status_code, graphql.status_code) == (403, 403)
    assert rest.json()["code"] == graphql.json()["errors"][0]["extensions"]["code"] == "csrf_failed"
    assert rest.json()["detail"] == graphql.json()["errors"][0]["message"]
    assert "send the X-CSRFToken header (from the csrftoken cookie)" in rest.json()["detail"]
    assert "or use an API token" in rest.json()["detail"]
