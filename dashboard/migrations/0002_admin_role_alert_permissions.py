"""The admin role manages alert rules (pages and Django admin) and reads events and notifications."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADMIN_PERMISSIONS = [
    "view_alertrule",
    "add_alertrule",
    "change_alertrule",
    "delete_alertrule",
    "view_alertevent",
    "change_alertevent",
    "view_notification",
]


def grant(apps, schema_editor):
    config = apps.get_app_config("dashboard")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.add(
        *Permission.objects.filter(content_type__app_label="dashboard", codename__in=ADMIN_PERMISSIONS)
    )


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0001_alerts"), ("accounts", "0002_roles")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
