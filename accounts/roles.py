"""The three roles and what each may do, declared once."""

from enum import StrEnum


class Capability(StrEnum):
    """Custom permissions (`accounts.<value>`) that views and APIs check."""

    VIEW_DASHBOARDS = "view_dashboards"
    UPLOAD_DATA = "upload_data"
    MANAGE_ALERTS = "manage_alerts"


class Role(StrEnum):
    VIEWER = "viewer"
    UPLOADER = "uploader"
    ADMIN = "admin"


ROLE_CAPABILITIES: dict[Role, tuple[Capability, ...]] = {
    Role.VIEWER: (Capability.VIEW_DASHBOARDS,),
    Role.UPLOADER: (Capability.VIEW_DASHBOARDS, Capability.UPLOAD_DATA),
    Role.ADMIN: (Capability.VIEW_DASHBOARDS, Capability.UPLOAD_DATA, Capability.MANAGE_ALERTS),
}


def permission_name(capability: Capability) -> str:
    """The dotted name for `user.has_perm`."""
    return f"accounts.{capability.value}"
