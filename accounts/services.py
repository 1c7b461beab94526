"""Writes for accounts: API tokens and roles."""

from django.contrib.auth.models import AbstractBaseUser, Group
from django.utils import timezone

from accounts.login_throttle import login_failures_clear
from accounts.models import APIToken, api_token_generate, api_token_hash, branch_names_tidy
from accounts.roles import Role


def api_token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[APIToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    raw_token = api_token_generate()
    token = APIToken.objects.create(user=user, name=name, key_hash=api_token_hash(raw_token), key_prefix=raw_token[:10])
    return token, raw_token


def api_token_revoke(*, token: APIToken) -> APIToken:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return token


def user_role_assign(*, user: AbstractBaseUser, role: Role) -> None:
    """Put the user in exactly one role group."""
    user.groups.remove(*Group.objects.filter(name__in=[r.value for r in Role]))
    user.groups.add(Group.objects.get(name=role.value))


def user_branch_scope_set(*, user: AbstractBaseUser, branches: list[str]) -> None:
    """Restrict `user` to `branches`; an empty list removes the restriction."""
    from accounts.models import BranchScope

    BranchScope.objects.update_or_create(user=user, defaults={"branches": branch_names_tidy(branches)})
    user.__dict__.pop("_allowed_branches", None)  # the per-request memo of accounts.selectors


def user_password_set_by_admin(*, user: AbstractBaseUser) -> None:
    """After an administrator set `user`'s new password: the failed logins counted against the
    username are forgiven, as the lockout message promises (not the address's, as on a login)."""
    login_failures_clear(username=user.get_username())
