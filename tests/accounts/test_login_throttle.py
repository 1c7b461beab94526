"""Failed logins are throttled per username and per address, on the site's and the admin's login."""

import threading
import time
from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts.forms import ThrottledAuthenticationForm
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
    # Long enough for two password checks (a few tenths of a second each) to fit in the window.
    settings.LOGIN_THROTTLE_SECONDS = 3
    window_start = time.time()
    _fail(Client(), viewer.username, 2)
    assert THROTTLED in login_post(Client(), username=viewer.username, password=TEST_PASSWORD).content

    time.sleep(max(0.0, window_start + settings.LOGIN_THROTTLE_SECONDS + 1.0 - time.time()))
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


@pytest.mark.parametrize(("proxies", "inner_hops"), [(1, ""), (2, ", 10.0.0.2")], ids=["one", "two"])
def test_behind_load_balancers_the_address_is_the_one_the_outer_one_appended(
    viewer, settings, proxies: int, inner_hops: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    settings.LOGIN_THROTTLE_IP_FAILURES = 2
    # A client forging the first X-Forwarded-For entries still gets the one the outer proxy appended;
    # an inner proxy appends the outer one's address after it.
    for forged in ("1.1.1.1", "2.2.2.2"):
        _fail(Client(HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7{inner_hops}"), f"guess-{forged}", 1)
    from_there = Client(HTTP_X_FORWARDED_FOR=f"203.0.113.7{inner_hops}")
    assert THROTTLED in login_post(from_there, username=viewer.username, password=TEST_PASSWORD).content
    other_client = Client(HTTP_X_FORWARDED_FOR=f"198.51.100.4{inner_hops}")
    assert login_post(other_client, username=viewer.username, password=TEST_PASSWORD).status_code == 302


def test_without_trusted_proxies_a_forged_forwarded_address_changes_nothing(viewer, settings) -> None:
    # HTTPS=true (Compose's default) trusted X-Forwarded-For: a client reaching the app directly
    # sent another address with each guess and was never throttled.
    settings.HTTPS = True
    settings.SECURE_SSL_REDIRECT = False
    settings.LOGIN_THROTTLE_IP_FAILURES = 2
    for forged in ("1.1.1.1", "2.2.2.2"):
        _fail(Client(HTTP_X_FORWARDED_FOR=forged), f"guess-{forged}", 1)
    refused = login_post(Client(HTTP_X_FORWARDED_FOR="3.3.3.3"), username=viewer.username, password=TEST_PASSWORD)
    assert THROTTLED in refused.content


def test_fewer_forwarded_entries_than_proxies_count_as_the_connection_s_address(settings, rf) -> None:
    from accounts.login_throttle import client_address

    settings.TRUSTED_PROXY_COUNT = 2
    # It did not come through both proxies: the one entry is the client's own.
    request = rf.post("/accounts/login/", HTTP_X_FORWARDED_FOR="198.51.100.4", REMOTE_ADDR="192.0.2.1")
    assert client_address(request) == "192.0.2.1"


def test_the_admin_login_is_throttled_too(admin_user, settings) -> None:
    settings.LOGIN_THROTTLE_USER_FAILURES = 2
    _fail(Client(), admin_user.username, 2, path="/admin/login/")
    refused = login_post(Client(), username=admin_user.username, password=TEST_PASSWORD, path="/admin/login/")
    assert refused.status_code == 200
    assert THROTTLED in refused.content


def test_parallel_attempts_check_no_more_passwords_than_the_limit(settings, monkeypatch) -> None:
    """Attempts in flight at once each take their own count before their password is checked: with a
    limit of 3, twelve parallel guesses check three passwords, not twelve."""
    settings.LOGIN_THROTTLE_USER_FAILURES = 3
    password_checks: list[str] = []
    checks_lock = threading.Lock()

    def slow_wrong_password(request, **credentials):
        with checks_lock:
            password_checks.append(credentials["password"])
        time.sleep(0.05)  # a real password hash takes longer still: every other attempt arrives meanwhile
        return None

    monkeypatch.setattr("django.contrib.auth.forms.authenticate", slow_wrong_password)
    start = threading.Barrier(12)
    refused: list[bool] = []

    def guess(index: int) -> None:
        form = ThrottledAuthenticationForm(request=None, data={"username": "alice", "password": f"guess-{index}"})
        start.wait()
        form.is_valid()
        refused.append(any(error.code == "login_throttled" for error in form.non_field_errors().as_data()))

    threads = [threading.Thread(target=guess, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(password_checks) == 3
    assert refused.count(True) == 9


def test_a_login_without_a_password_forgives_no_failures(viewer, settings) -> None:
    settings.LOGIN_THROTTLE_USER_FAILURES = 2
    _fail(Client(), viewer.username, 1)
    # The form reports the missing password; it checked none, so it is not a successful login.
    empty = Client().post(
        "/accounts/login/",
        urlencode({"username": viewer.username, "password": ""}),
        content_type="application/x-www-form-urlencoded",
    )
    assert empty.status_code == 200
    _fail(Client(), viewer.username, 1)
    assert THROTTLED in login_post(Client(), username=viewer.username, password=TEST_PASSWORD).content


def test_successful_logins_are_not_failures_of_their_address(viewer, settings) -> None:
    settings.LOGIN_THROTTLE_IP_FAILURES = 2
    for _ in range(3):
        assert login_post(Client(), username=viewer.username, password=TEST_PASSWORD).status_code == 302


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
