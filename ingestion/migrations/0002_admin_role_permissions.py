"""Let the admin role read ingestion tasks in the Django admin and edit saved mappings."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADMIN_PERMISSIONS = ["view_ingestiontask", "view_columnmapping", "change_columnmapping"]


def grant(apps, schema_editor):
    config = apps.get_app_config("ingestion")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admin, _ = Group.objects.get_or_create(name="admin")
    admin.permissions.add(
        *Permission.objects.filter(content_type__app_label="ingestion", codename__in=ADMIN_PERMISSIONS)
    )


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0001_initial"), ("accounts", "0002_roles")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
