import hashlib
import json
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from sales_analytics.text import text_tidy

TOKEN_PREFIX = "sa_"  # noqa: S105 (a marker, not a secret)


class Access(models.Model):
    """Holds the role capabilities as permissions; it has no table of its own."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboards", "Can view dashboards and read data through the APIs"),
            ("upload_data", "Can upload files and retry or cancel ingestion tasks"),
            ("manage_alerts", "Can create, edit and delete alert rules"),
        ]

    def __str__(self) -> str:
        return "role capabilities"


def api_token_hash(raw_token: str) -> str:
    """Tokens are 256-bit random, so an unsalted SHA-256 is enough and allows an indexed lookup."""
    return hashlib.sha256(raw_token.encode()).hexdigest()


def api_token_generate() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class APIToken(models.Model):
    """A bearer token for programs; only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters identify a token in lists without revealing it.
    key_prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="From this moment the token is refused; empty: it never expires."
    )

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key_prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class BranchScope(models.Model):
    """Branches a user may see; a user without one (or with an empty list) sees every branch."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="branch_scope")
    branches = models.JSONField(default=list, blank=True, help_text='Branch names, e.g. ["A", "C"]. Empty: all.')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "branch scope"

    def __str__(self) -> str:
        if branch_names_problem(self.branches) is not None:
            return f"{self.user}: no branches (unreadable scope {json.dumps(self.branches)})"
        return f"{self.user}: {', '.join(self.branches) or 'all branches'}"


def branch_names_problem(value: object) -> str | None:
    """Why `value` is not a branch scope (a list of non-empty branch names), or None when it is one.

    Read loosely, a bare string "AB" became branches A and B and {"A": false} branch A: a scope that
    is not a list of names must never be guessed at.
    """
    if not isinstance(value, list):
        return f'Use a list of branch names in quotes, e.g. ["A", "C"] (got {json.dumps(value)}).'
    for name in value:
        if not isinstance(name, str) or not name.strip():
            return f'Each branch must be a non-empty name in quotes, e.g. ["A", "C"] (got {json.dumps(name)}).'
    return None


def branch_names_tidy(names: list[str]) -> list[str]:
    """Branch names as stored: tidied as files' text is (trimmed, NFC, no invisible edges), each once, sorted."""
    return sorted({text_tidy(name) for name in names})
