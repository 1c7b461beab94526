"""The catalogue of published data: datasources, their data versions and segments."""

import re
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

DATASOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_DATASOURCE_NAME = re.compile(DATASOURCE_NAME_PATTERN)


def datasource_name_possible(name: str) -> bool:
    """Whether some datasource could have this name. Lookups skip names that cannot: PostgreSQL
    refuses text with NUL characters outright (a 500 instead of "no such datasource")."""
    return _DATASOURCE_NAME.fullmatch(name) is not None


datasource_name_validator = RegexValidator(
    DATASOURCE_NAME_PATTERN,
    "A datasource name is 1–63 characters: lowercase letters, digits and underscores, starting with a letter.",
    code="invalid_datasource",
)


class Datasource(models.Model):
    name = models.CharField(max_length=63, unique=True, validators=[datasource_name_validator])
    # Bumped by every publish; caches and the embedded engine's local copies key on it.
    data_version = models.PositiveIntegerField(default=0)
    # Unique per publish: cache keys use it, so a datasource deleted and created again never
    # meets the cached answers of its earlier life.
    version_token = models.UUIDField(default=uuid.uuid4, editable=False)
    is_demo = models.BooleanField(default=False, help_text="Generated demo data, labelled as such on every page.")
    # Facts about the published rows of the current version, switched with it.
    columns = models.JSONField(default=list, blank=True, help_text="Columns of the published rows.")
    has_invoice_id = models.BooleanField(default=False, help_text="Transactions count distinct invoice ids.")
    invoice_constant_dimensions = models.JSONField(
        default=list,
        blank=True,
        help_text="Dimensions with one value per invoice (keeps rollup distinct counts exact).",
    )
    # When `manage.py druid_sync` last replaced Druid's rows with the catalogue's: a Druid load
    # of an upload that succeeded before it is not reused by a retry (the sync removed its rows).
    druid_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Segment(models.Model):
    """One published file of curated rows; a data version is the set of active segments."""

    datasource = models.ForeignKey(Datasource, on_delete=models.CASCADE, related_name="segments")
    # The upload that produced it (an ingestion task id); analytics does not import ingestion.
    upload_id = models.UUIDField(db_index=True)
    upload_name = models.CharField(max_length=255, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    # Who uploaded it: a branch-scoped user is shown the names of their own uploads only.
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    interval_start = models.DateField()
    interval_end = models.DateField()
    rows = models.PositiveBigIntegerField()
    # The branches of its rows; null for segments published before they were recorded (unknown).
    branches = models.JSONField(null=True, blank=True)
    path = models.CharField(max_length=1024, help_text="Storage key of the curated Parquet file.")
    version = models.PositiveIntegerField(help_text="Data version that added this segment.")
    retired_in_version = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["datasource", "interval_start", "id"]
        indexes = [models.Index(fields=["datasource", "active"])]

    def __str__(self) -> str:
        return f"{self.datasource.name} {self.interval_start}…{self.interval_end} v{self.version}"


class Rollup(models.Model):
    """Pre-aggregated rows of one data version: day × some dimensions, additive parts per cell."""

    datasource = models.ForeignKey(Datasource, on_delete=models.CASCADE, related_name="rollups")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=63)
    dimensions = models.JSONField(default=list)
    path = models.CharField(max_length=1024)
    rows = models.PositiveBigIntegerField()
    # The metric parts its cells hold (analytics.metrics.PARTS); queries needing another part
    # read finer data (a rollup of an earlier release lacks the parts added since).
    parts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["datasource", "version", "rows"]
        constraints = [
            models.UniqueConstraint(fields=["datasource", "version", "name"], name="unique_rollup_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.datasource.name} v{self.version} {self.name}"


class StoredFile(models.Model):
    """Every file publishing stored (segments, rollups, Druid's row files): the files sweep
    (analytics.housekeeping) deletes only these, so files another deployment keeps in the same
    bucket, or anything stored by hand, are never touched."""

    key = models.CharField(max_length=1024, unique=True)
    stored_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.key
