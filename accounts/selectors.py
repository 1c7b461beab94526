"""Reads for accounts."""

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import APIToken, api_token_hash, branch_names_problem, branch_names_tidy

logger = logging.getLogger(__name__)

# Writing last_used_at on every call would turn each API read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def api_token_user(*, raw_token: str) -> AbstractBaseUser | None:
    """The active user a bearer token belongs to, or None for an unknown, revoked or expired token."""
    now = timezone.now()
    token = (
        _api_tokens_usable()
        .select_related("user")
        .filter(key_hash=api_token_hash(raw_token))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if token is None:
        return None
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_expired(*, raw_token: str) -> bool:
    """Whether `raw_token` would still be accepted but for its expiry: its caller is told so, not
    just that the token is wrong."""
    return _api_tokens_usable().filter(key_hash=api_token_hash(raw_token), expires_at__lte=timezone.now()).exists()


def _api_tokens_usable() -> QuerySet[APIToken]:
    """Tokens neither revoked nor held by an inactive user (expiry aside)."""
    return APIToken.objects.filter(revoked_at__isnull=True, user__is_active=True)


def api_token_owners_allowed(*, user: AbstractBaseUser) -> QuerySet:
    """The users `user` may hold API tokens for: anyone for a superuser, else themselves only.

    A token acts as its owner with the owner's role and branch scope, so a token made for someone
    else is a way to act as them; a branch-scoped admin would see every branch through a
    superuser's token. Tokens for others are the superuser's (or `manage.py create_api_token`'s) job.
    """
    users = get_user_model().objects.all()
    return users if user.is_superuser else users.filter(pk=user.pk)


def api_tokens_manageable(*, user: AbstractBaseUser) -> QuerySet[APIToken]:
    """The tokens `user` may list, rename and revoke: those of the owners they may hold tokens for."""
    return APIToken.objects.select_related("user").filter(user__in=api_token_owners_allowed(user=user))


def user_allowed_branches(*, user: AbstractBaseUser | None) -> tuple[str, ...] | None:
    """The branches `user` may see, or None for no restriction. A stored scope that is not a list
    of branch names (written past the admin's checks) allows no branch at all: never more."""
    from accounts.models import BranchScope

    if user is None or getattr(user, "is_superuser", False):
        return None
    # Remembered on the user object, which lives for one request: a page asks many questions.
    if hasattr(user, "_allowed_branches"):
        return user._allowed_branches
    scope = BranchScope.objects.filter(user_id=user.pk).first()
    allowed = _scope_branches(scope) if scope is not None else None
    user._allowed_branches = allowed
    return allowed


def _scope_branches(scope) -> tuple[str, ...] | None:
    problem = branch_names_problem(scope.branches)
    if problem is not None:
        logger.error("user %s: branch scope unreadable, so no branch is allowed: %s", scope.user_id, problem)
        return ()
    return tuple(branch_names_tidy(scope.branches)) or None
