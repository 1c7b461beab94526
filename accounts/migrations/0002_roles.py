"""Create the viewer, uploader and admin groups with their capabilities."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_CAPABILITIES = {
    "viewer": ["view_dashboards"],
    "uploader": ["view_dashboards", "upload_data"],
    "admin": ["view_dashboards", "upload_data", "manage_alerts"],
}
# The admin role also manages tokens in the Django admin.
ADMIN_MODEL_PERMISSIONS = ["view_apitoken", "add_apitoken", "change_apitoken", "delete_apitoken"]


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; create ours now.
    accounts_config = apps.get_app_config("accounts")
    accounts_config.models_module = True
    create_permissions(accounts_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_CAPABILITIES.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = codenames + (ADMIN_MODEL_PERMISSIONS if role == "admin" else [])
        group.permissions.add(*Permission.objects.filter(content_type__app_label="accounts", codename__in=wanted))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_CAPABILITIES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
