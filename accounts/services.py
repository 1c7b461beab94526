"""Writes for accounts: API tokens and roles."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.utils import timezone

from accounts.login_throttle import login_failures_clear
from accounts.models import APIToken, api_token_generate, api_token_hash, branch_names_tidy
from accounts.roles import Role


def api_token_expiry(*, days: int | None = None) -> datetime | None:
    """When a token made now for `days` days expires: API_TOKEN_DAYS when None, never when 0."""
    lifetime_days = settings.API_TOKEN_DAYS if days is None else days
    if lifetime_days < 0:
        raise ValueError(f"A token's lifetime cannot be negative (got {lifetime_days} days).")
    return timezone.now() + timedelta(days=lifetime_days) if lifetime_days else None


def api_token_create(*, user: AbstractBaseUser, name: str = "", days: int | None = None) -> tuple[APIToken, str]:
    """Create a token valid for `days` days (see api_token_expiry); the raw value is returned once and never stored."""
    raw_token = api_token_generate()
    token = APIToken.objects.create(
        user=user,
        name=name,
        key_hash=api_token_hash(raw_token),
        key_prefix=raw_token[:10],
        expires_at=api_token_expiry(days=days),
    )
    return token, raw_token


def api_token_revoke(*, token: APIToken) -> APIToken:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return token


def user_api_tokens_revoke(*, user: AbstractBaseUser) -> int:
    """Revoke every live token of `user`; returns how many.

    Called when the user's password changes or they are deactivated: a token is a second
    credential, and whoever may have taken the old password may have made or copied one.
    """
    return APIToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


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
