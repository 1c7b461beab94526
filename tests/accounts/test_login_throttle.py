"""Failed logins are throttled per username and per address, on the site's and the admin's login."""

import time

import pytest
from django.test import Client

from tests.conftest import login_post
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

THROTTLED = b"Too many failed logins for this account or from this address."


def _fail(client: Client, username: str, times: int, path: str = "/accounts/login/") -> None:
    for _ in range(times):
        response = login_post(client, username=username, password="wrong-password", path=path)
        assert response.status_code == 200 and THROTTLED not in response.content


def test_a_username_is_refused_after_its_failures_even_with_the_right_password(viewer, settings) -> None:
    settings.LOGIN_THROTTLE_USER_FAILURES = 3
    _fail(Client(), viewer.username, 3)

    refused = login_post(Client(), username=viewer.username, password=TEST_PASSWORD)
    assert refused.status_code == 200
    assert THROTTLED in refused.content
    assert "_auth_user_id" not in refused.wsgi_request.session
    # The same address may still log in to another account.
    other = UserFactory(role="viewer")
    assert login_post(Client(), username=other.username, password=TEST_PASSWORD).status_code == 302


def test_the_refusal_ends_when_the_window_has_passed(viewer, settings) -> None:
    settings.LOGIN_THROTTLE_USER_FAILURES = 2
    settings.LOGIN_THROTTLE_SECONDS = 1
    _fail(Client(), viewer.username, 2)
    assert THROTTLED in login_post(Client(), username=viewer.username, password=TEST_PASSWORD).content

    time.sleep(1.2)
    assert login_post(Client(), username=viewer.username, password=TEST_PASSWORD).status_code == 302


def test_a_success_forgives_the_usernames_failures(viewer, settings) -> None:
    settings.LOGIN_THROTTLE_USER_FAILURES = 3
    _fail(Client(), viewer.username, 2)
    assert login_post(Client(), username=viewer.username, password=TEST_PASSWORD).status_code == 302
    _fail(Client(), viewer.username, 2)
    assert login_post(Client(), username=viewer.username, password=TEST_PASSWORD).status_code == 302


def test_an_address_is_refused_after_failures_across_usernames(viewer, settings) -> None:
    settings.LOGIN_THROTTLE_IP_FAILURES = 4
    for index in range(4):
        _fail(Client(), f"guess-{index}", 1)

    refused = login_post(Client(), username=viewer.username, password=TEST_PASSWORD)
    assert THROTTLED in refused.content
    elsewhere = login_post(Client(REMOTE_ADDR="10.0.0.9"), username=viewer.username, password=TEST_PASSWORD)
    assert elsewhere.status_code == 302


def test_behind_the_load_balancer_the_address_is_its_forwarded_one(viewer, settings) -> None:
    settings.HTTPS = True
    settings.SECURE_SSL_REDIRECT = False
    settings.LOGIN_THROTTLE_IP_FAILURES = 2
    # A client forging the first X-Forwarded-For entry still gets the load balancer's last one.
    for forged in ("1.1.1.1", "2.2.2.2"):
        _fail(Client(HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7"), f"guess-{forged}", 1)
    from_there = Client(HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert THROTTLED in login_post(from_there, username=viewer.username, password=TEST_PASSWORD).content
    other_client = Client(HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert login_post(other_client, username=viewer.username, password=TEST_PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(admin_user, settings) -> None:
    settings.LOGIN_THROTTLE_USER_FAILURES = 2
    _fail(Client(), admin_user.username, 2, path="/admin/login/")
    refused = login_post(Client(), username=admin_user.username, password=TEST_PASSWORD, path="/admin/login/")
    assert refused.status_code == 200
    assert THROTTLED in refused.content


NEW_PASSWORD = "a brand new passphrase 7"


def test_a_new_password_set_in_the_admin_lifts_the_account_s_lock(viewer, settings) -> None:
    # The lockout message says to ask an administrator for a new password: that must work at once.
    settings.LOGIN_THROTTLE_USER_FAILURES = 2
    _fail(Client(), viewer.username, 2)
    assert THROTTLED in login_post(Client(), username=viewer.username, password=TEST_PASSWORD).content
    assert b"ask an administrator to set a new password for the account" in (
        login_post(Client(), username=viewer.username, password=TEST_PASSWORD).content
    )

    administrator = Client()
    administrator.force_login(UserFactory(is_staff=True, is_superuser=True))
    changed = administrator.post(
        f"/admin/auth/user/{viewer.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert changed.status_code == 302, changed.content.decode()

    assert login_post(Client(), username=viewer.username, password=NEW_PASSWORD).status_code == 302


def test_the_changepassword_command_lifts_the_account_s_lock(viewer, settings, monkeypatch) -> None:
    from io import StringIO

    from django.contrib.auth.management.commands import changepassword
    from django.core.management import call_command

    settings.LOGIN_THROTTLE_USER_FAILURES = 2
    _fail(Client(), viewer.username, 2)
    monkeypatch.setattr(changepassword.Command, "_get_pass", lambda self, prompt=None: NEW_PASSWORD)

    call_command("changepassword", viewer.username, stdout=StringIO())

    assert login_post(Client(), username=viewer.username, password=NEW_PASSWORD).status_code == 302


def test_a_new_password_does_not_lift_an_address_s_lock(viewer, settings) -> None:
    # The message says so: the address's failures may be someone else's guessing.
    from accounts.services import user_password_set_by_admin

    settings.LOGIN_THROTTLE_IP_FAILURES = 2
    for index in range(2):
        _fail(Client(), f"guess-{index}", 1)
    user_password_set_by_admin(user=viewer)
    assert THROTTLED in login_post(Client(), username=viewer.username, password=TEST_PASSWORD).content
