import re
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import APIToken
from accounts.roles import ROLE_CAPABILITIES, Capability, Role, permission_name
from accounts.services import api_token_create, api_token_revoke, user_branch_scope_set, user_role_assign
from tests.conftest import token_client
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

# Besides its capabilities, the admin role manages API tokens in the Django admin.
ADMIN_MODEL_PERMISSIONS = {"view_apitoken", "add_apitoken", "change_apitoken", "delete_apitoken"}
RAW_TOKEN = re.compile(r"sa_[A-Za-z0-9_-]{20,}")


def accounts_permissions(role: Role) -> set[str]:
    # Other apps' migrations may grant the admin role their own admin pages; only accounts' are checked here.
    group = Group.objects.get(name=role.value)
    return {
        f"accounts.{codename}"
        for codename in group.permissions.filter(content_type__app_label="accounts").values_list("codename", flat=True)
    }


@pytest.mark.parametrize("role", list(Role))
def test_migration_created_each_role_with_exactly_its_capabilities(role: Role) -> None:
    expected = {permission_name(capability) for capability in ROLE_CAPABILITIES[role]}
    if role == Role.ADMIN:
        expected |= {f"accounts.{codename}" for codename in ADMIN_MODEL_PERMISSIONS}
    assert accounts_permissions(role) == expected
    if role != Role.ADMIN:
        # Only the admin role works in the Django admin, so only it holds model permissions.
        assert not Group.objects.get(name=role.value).permissions.exclude(content_type__app_label="accounts").exists()


def test_every_role_has_a_group_and_nothing_else_does() -> None:
    assert set(Group.objects.values_list("name", flat=True)) == {role.value for role in Role}
    assert set(ROLE_CAPABILITIES) == set(Role)


def test_viewer_may_view_but_not_upload_or_manage_alerts(viewer) -> None:
    assert viewer.has_perm(permission_name(Capability.VIEW_DASHBOARDS))
    assert not viewer.has_perm(permission_name(Capability.UPLOAD_DATA))
    assert not viewer.has_perm(permission_name(Capability.MANAGE_ALERTS))


def test_uploader_may_view_and_upload_but_not_manage_alerts(uploader) -> None:
    assert uploader.has_perm(permission_name(Capability.VIEW_DASHBOARDS))
    assert uploader.has_perm(permission_name(Capability.UPLOAD_DATA))
    assert not uploader.has_perm(permission_name(Capability.MANAGE_ALERTS))


def test_admin_has_every_capability(admin_user) -> None:
    for capability in Capability:
        assert admin_user.has_perm(permission_name(capability))
    assert not admin_user.is_superuser


def test_role_assign_keeps_exactly_one_role(viewer) -> None:
    user_role_assign(user=viewer, role=Role.UPLOADER)
    assert list(viewer.groups.values_list("name", flat=True)) == ["uploader"]


def admin_client(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=TEST_PASSWORD)
    return client


def _token_added_in_admin(client: Client, *, owner, name: str) -> tuple[APIToken, str]:
    response = client.post("/admin/accounts/apitoken/add/", {"user": owner.pk, "name": name}, follow=True)
    assert response.status_code == 200
    shown_once = [str(m) for m in get_messages(response.wsgi_request) if "shown again" in str(m)]
    assert len(shown_once) == 1, response.content.decode()
    return APIToken.objects.get(user=owner, name=name), RAW_TOKEN.search(shown_once[0]).group()


def test_admin_role_lists_and_adds_its_own_api_tokens_in_the_django_admin(admin_user) -> None:
    client = admin_client(admin_user)
    assert client.get("/admin/accounts/apitoken/").status_code == 200
    assert client.get("/admin/accounts/apitoken/add/").status_code == 200

    token, raw_token = _token_added_in_admin(client, owner=admin_user, name="reporting script")

    assert token.key_prefix == raw_token[:10]
    assert raw_token not in (token.key_hash, token.key_prefix)
    assert token_client(raw_token).get("/api/ingest/tasks").status_code == 200
    # Shown once: the token's own pages never show it again.
    assert raw_token not in client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    assert raw_token not in client.get("/admin/accounts/apitoken/").content.decode()


def test_superuser_adds_api_tokens_for_other_users_in_the_django_admin(viewer) -> None:
    superuser = UserFactory(is_staff=True, is_superuser=True)

    token, raw_token = _token_added_in_admin(admin_client(superuser), owner=viewer, name="reporting script")

    assert token.user == viewer
    assert token_client(raw_token).get("/api/ingest/tasks").status_code == 200


@pytest.mark.parametrize("scoped", [True, False])
def test_admin_role_cannot_make_a_token_for_another_user(admin_user, viewer, scoped: bool) -> None:
    # A token acts as its owner: a superuser's token showed a branch-scoped admin every branch.
    if scoped:
        user_branch_scope_set(user=admin_user, branches=["A"])
    client = admin_client(admin_user)
    superuser = UserFactory(is_staff=True, is_superuser=True)
    for owner in (superuser, viewer):
        response = client.post("/admin/accounts/apitoken/add/", {"user": owner.pk, "name": "mine now"})
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()
        assert not APIToken.objects.filter(user=owner).exists()
    assert f'value="{superuser.pk}"' not in client.get("/admin/accounts/apitoken/add/").content.decode()


def test_admin_role_cannot_move_a_token_to_another_user(admin_user) -> None:
    superuser = UserFactory(is_staff=True, is_superuser=True)
    token, _ = api_token_create(user=admin_user, name="mine")

    admin_client(admin_user).post(
        f"/admin/accounts/apitoken/{token.pk}/change/", {"user": superuser.pk, "name": "renamed"}
    )

    token.refresh_from_db()
    assert (token.user, token.name) == (admin_user, "renamed")


def test_admin_role_lists_and_revokes_only_its_own_api_tokens(admin_user, viewer) -> None:
    user_branch_scope_set(user=admin_user, branches=["A"])
    own, _ = api_token_create(user=admin_user, name="own script")
    others, others_raw = api_token_create(user=viewer, name="head office script")
    client = admin_client(admin_user)

    listing = client.get("/admin/accounts/apitoken/").content.decode()
    assert "own script" in listing and "head office script" not in listing
    assert client.get(f"/admin/accounts/apitoken/{others.pk}/change/").status_code == 302  # "does not exist"
    client.post("/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [own.pk, others.pk]})

    own.refresh_from_db()
    others.refresh_from_db()
    assert own.revoked_at is not None
    assert others.revoked_at is None
    assert token_client(others_raw).get("/api/ingest/tasks").status_code == 200


def test_new_api_token_never_travels_in_a_cookie(admin_user) -> None:
    """The "copy it now" message is kept in the session (server side), not in the signed `messages` cookie."""
    client = admin_client(admin_user)
    created = client.post("/admin/accounts/apitoken/add/", {"user": admin_user.pk, "name": "reporting script"})
    assert created.status_code == 302
    shown = client.get(created["Location"])
    raw_token = RAW_TOKEN.search(shown.content.decode()).group()
    for response in (created, shown):
        assert "messages" not in response.cookies
        assert not any(raw_token in morsel.value for morsel in response.cookies.values())
    assert not any(raw_token in morsel.value for morsel in client.cookies.values())


def test_superuser_revokes_api_tokens_in_the_django_admin(viewer) -> None:
    superuser = UserFactory(is_staff=True, is_superuser=True)
    token, raw_token = api_token_create(user=viewer)
    assert token_client(raw_token).get("/api/ingest/tasks").status_code == 200

    response = admin_client(superuser).post(
        "/admin/accounts/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.pk]}
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_client(raw_token).get("/api/ingest/tasks").status_code == 401


@pytest.mark.parametrize("role", ["viewer", "uploader"])
def test_non_admin_roles_cannot_reach_the_django_admin(role: str) -> None:
    client = Client()
    client.force_login(UserFactory(role=role))
    for path in ("/admin/", "/admin/accounts/apitoken/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def roleless_client(user, how: str) -> Client:
    if how == "token":
        return token_client(api_token_create(user=user)[1])
    client = Client()
    client.force_login(user)
    return client


def test_user_without_role_gets_403_page(roleless_user) -> None:
    assert roleless_client(roleless_user, "session").get("/").status_code == 403


@pytest.mark.parametrize("how", ["session", "token"])
def test_user_without_role_gets_403_json_from_rest(roleless_user, how: str) -> None:
    response = roleless_client(roleless_user, how).get("/api/ingest/tasks")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("how", ["session", "token"])
def test_user_without_role_gets_403_from_graphql(roleless_user, how: str) -> None:
    response = roleless_client(roleless_user, how).post(
        "/graphql", {"query": "{ viewer { username } }"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "permission_denied"


def test_create_api_token_command_prints_a_working_token(viewer) -> None:
    stdout, stderr = StringIO(), StringIO()
    call_command("create_api_token", viewer.username, "--name", "nightly export", stdout=stdout, stderr=stderr)

    raw_token = stdout.getvalue().strip().splitlines()[-1]
    assert RAW_TOKEN.fullmatch(raw_token)
    assert APIToken.objects.get(user=viewer).name == "nightly export"
    assert token_client(raw_token).get("/api/ingest/tasks").status_code == 200


def test_create_api_token_command_refuses_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="nobody"):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())
    assert not APIToken.objects.exists()


def test_create_api_token_command_refuses_an_inactive_user(viewer) -> None:
    viewer.is_active = False
    viewer.save()
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", viewer.username, stdout=StringIO(), stderr=StringIO())


def _ensure_superuser(monkeypatch, *, username: str, password: str) -> str:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", username)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    out = StringIO()
    call_command("ensure_superuser", stdout=out)
    return out.getvalue()


def test_ensure_superuser_creates_the_superuser_once(monkeypatch) -> None:
    assert "Created superuser 'boss'." in _ensure_superuser(monkeypatch, username="boss", password=TEST_PASSWORD)
    assert "Superuser 'boss' already exists." in _ensure_superuser(monkeypatch, username="boss", password="other")
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="boss").is_superuser


def test_ensure_superuser_refuses_a_name_of_a_user_who_is_not_a_superuser(viewer, monkeypatch) -> None:
    # It said "Superuser 'viewer1' already exists." and succeeded, with no superuser at all.
    with pytest.raises(CommandError, match=f"User '{viewer.username}' exists but is not a superuser"):
        _ensure_superuser(monkeypatch, username=viewer.username, password=TEST_PASSWORD)
    viewer.refresh_from_db()
    assert not viewer.is_superuser and not viewer.is_staff


def test_ensure_superuser_applies_the_password_validators(monkeypatch) -> None:
    from django.contrib.auth import get_user_model

    with pytest.raises(CommandError) as refused:
        _ensure_superuser(monkeypatch, username="boss", password="123")
    assert "This password is too short. It must contain at least 8 characters." in str(refused.value)
    assert "This password is entirely numeric." in str(refused.value)
    assert not get_user_model().objects.filter(username="boss").exists()


def test_the_revoke_action_says_how_many_tokens_it_revoked(viewer) -> None:
    superuser = UserFactory(is_staff=True, is_superuser=True)
    tokens = [api_token_create(user=viewer)[0] for _ in range(3)]
    api_token_revoke(token=tokens[0])

    response = admin_client(superuser).post(
        "/admin/accounts/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk for token in tokens]},
        follow=True,
    )

    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == ["Revoked 2 tokens (1 token was revoked already)."]
