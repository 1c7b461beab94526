"""API tokens expire, and die with the password they were made under or the account's activity."""

import re
from datetime import timedelta
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import APIToken
from accounts.services import api_token_create
from tests.conftest import token_client
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

RAW_TOKEN = re.compile(r"sa_[A-Za-z0-9_-]{43}")
NEW_PASSWORD = "a-new-long-password-7"
GRAPHQL_VIEWER = {"query": "{ viewer { username } }"}


def _works(raw_token: str) -> bool:
    return token_client(raw_token).get("/api/ingest/tasks").status_code == 200


def _expired_token(user: AbstractBaseUser) -> str:
    token, raw_token = api_token_create(user=user, days=1)
    APIToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return raw_token


def _superuser_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


# --- Expiry ------------------------------------------------------------------------------------


def test_a_new_token_expires_after_api_token_days(viewer, settings) -> None:
    settings.API_TOKEN_DAYS = 30
    token, raw_token = api_token_create(user=viewer)
    assert timedelta(days=30) - timedelta(minutes=1) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert _works(raw_token)


def test_zero_days_makes_a_token_that_never_expires(viewer, settings) -> None:
    settings.API_TOKEN_DAYS = 0
    assert api_token_create(user=viewer)[0].expires_at is None
    settings.API_TOKEN_DAYS = 30
    assert api_token_create(user=viewer, days=0)[0].expires_at is None


def test_an_expired_token_is_refused_like_a_wrong_one_but_says_it_expired(viewer) -> None:
    raw_token = _expired_token(viewer)
    wrong = Client(HTTP_AUTHORIZATION="Bearer sa_not-a-real-token").get("/api/ingest/tasks")

    expired = token_client(raw_token).get("/api/ingest/tasks")

    assert expired.status_code == wrong.status_code == 401
    assert expired["WWW-Authenticate"] == wrong["WWW-Authenticate"]
    assert expired.json().keys() == wrong.json().keys()
    assert expired.json()["code"] == wrong.json()["code"] == "not_authenticated"
    assert "expired" in expired.json()["detail"]
    assert "expired" not in wrong.json()["detail"]


def test_graphql_refuses_an_expired_token_saying_it_expired(viewer) -> None:
    response = token_client(_expired_token(viewer)).post("/graphql", GRAPHQL_VIEWER, content_type="application/json")
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "not_authenticated"
    assert "expired" in error["message"]


def test_an_upload_with_an_expired_token_is_refused_saying_it_expired(uploader) -> None:
    response = token_client(_expired_token(uploader)).post(
        "/api/ingest/upload", {"file": StringIO("date,branch\n")}, format="multipart"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert "expired" in response.json()["detail"]


def test_a_revoked_token_past_its_expiry_is_not_called_expired(viewer) -> None:
    raw_token = _expired_token(viewer)
    APIToken.objects.update(revoked_at=timezone.now())
    assert "expired" not in token_client(raw_token).get("/api/ingest/tasks").json()["detail"]


def test_create_api_token_command_takes_days(viewer) -> None:
    stderr = StringIO()
    call_command("create_api_token", viewer.username, "--days", "7", stdout=StringIO(), stderr=stderr)
    token = APIToken.objects.get(user=viewer)
    assert timedelta(days=7) - timedelta(minutes=1) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert f"expires {token.expires_at:%Y-%m-%d}" in stderr.getvalue()

    call_command("create_api_token", viewer.username, "--days", "0", stdout=StringIO(), stderr=stderr)
    assert APIToken.objects.filter(user=viewer, expires_at__isnull=True).count() == 1
    assert "never expires" in stderr.getvalue()


def test_create_api_token_command_refuses_negative_days(viewer) -> None:
    with pytest.raises(CommandError, match="--days"):
        call_command("create_api_token", viewer.username, "--days", "-1", stdout=StringIO(), stderr=StringIO())
    assert not APIToken.objects.exists()


def test_the_admin_sets_and_shows_a_tokens_expiry(viewer, settings) -> None:
    settings.API_TOKEN_DAYS = 90
    client = _superuser_client()
    assert 'name="days" value="90"' in client.get("/admin/accounts/apitoken/add/").content.decode()

    client.post("/admin/accounts/apitoken/add/", {"user": viewer.pk, "name": "weekly", "days": "7"})

    token = APIToken.objects.get(user=viewer, name="weekly")
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)
    listing = client.get("/admin/accounts/apitoken/").content.decode()
    assert "column-expires_at" in listing
    assert (
        token.expires_at.strftime("%Y") in client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    )


# --- A new password or an inactive account revokes the tokens ---------------------------------


def test_changing_ones_own_password_revokes_ones_tokens(viewer) -> None:
    _, raw_token = api_token_create(user=viewer)
    other_users_token = api_token_create(user=UserFactory(role="viewer"))[1]
    client = Client()
    client.force_login(viewer)

    client.post(
        "/accounts/password_change/",
        urlencode({"old_password": TEST_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}),
        content_type="application/x-www-form-urlencoded",
    )

    assert not _works(raw_token)
    assert _works(other_users_token)
    assert b"API tokens were revoked" in client.get("/accounts/password_change/done/").content


def test_an_admin_setting_a_password_revokes_the_users_tokens(viewer) -> None:
    _, raw_token = api_token_create(user=viewer)
    _superuser_client().post(
        f"/admin/auth/user/{viewer.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    viewer.refresh_from_db()
    assert viewer.check_password(NEW_PASSWORD)
    assert not _works(raw_token)


def test_the_changepassword_command_revokes_the_users_tokens(viewer, monkeypatch) -> None:
    _, raw_token = api_token_create(user=viewer)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)
    stdout = StringIO()

    call_command("changepassword", viewer.username, stdout=stdout)

    viewer.refresh_from_db()
    assert viewer.check_password(NEW_PASSWORD)
    assert not _works(raw_token)
    assert "Revoked 1 API token of that user." in stdout.getvalue()


def test_deactivating_a_user_in_the_admin_revokes_their_tokens_for_good(viewer) -> None:
    _, raw_token = api_token_create(user=viewer)
    client = _superuser_client()
    form = {
        "username": viewer.username,
        "email": viewer.email,
        "groups": list(viewer.groups.values_list("pk", flat=True)),
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "branch_scope-TOTAL_FORMS": "0",
        "branch_scope-INITIAL_FORMS": "0",
    }

    response = client.post(f"/admin/auth/user/{viewer.pk}/change/", {**form, "is_active": ""})
    assert response.status_code == 302, response.content.decode()
    viewer.refresh_from_db()
    assert not viewer.is_active
    assert not _works(raw_token)

    # Back to active, role kept: the old tokens stay dead, whoever holds them; new ones work.
    client.post(f"/admin/auth/user/{viewer.pk}/change/", {**form, "is_active": "on"})
    viewer.refresh_from_db()
    assert viewer.is_active
    assert _works(api_token_create(user=viewer)[1])
    assert not _works(raw_token)


@pytest.mark.parametrize("how", ["rest", "graphql"])
def test_an_inactive_users_token_is_refused_even_before_revocation(viewer, how: str) -> None:
    _, raw_token = api_token_create(user=viewer)
    viewer.is_active = False
    viewer.save()  # not through the admin: nothing revoked the token, the lookup must still refuse it
    assert APIToken.objects.get(user=viewer).revoked_at is None
    client = token_client(raw_token)
    if how == "rest":
        assert client.get("/api/ingest/tasks").status_code == 401
    else:
        assert client.post("/graphql", GRAPHQL_VIEWER, content_type="application/json").status_code == 401
