"""Keep a rule's branch scope with the rule; rules made by branch-scoped users get their creator's."""

from django.db import migrations, models


def scope_existing_rules(apps, schema_editor):
    AlertRule = apps.get_model("dashboard", "AlertRule")
    BranchScope = apps.get_model("accounts", "BranchScope")
    for scope in BranchScope.objects.select_related("user"):
        # An empty list is no restriction, and a superuser sees every branch whatever the row says.
        if not scope.branches or scope.user.is_superuser:
            continue
        AlertRule.objects.filter(created_by_id=scope.user_id).update(
            scope_branches=sorted({str(branch) for branch in scope.branches})
        )


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0002_admin_role_alert_permissions"),
        ("accounts", "0003_branch_scope"),
    ]

    operations = [
        migrations.AddField(
            model_name="alertrule",
            name="scope_branches",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(scope_existing_rules, migrations.RunPython.noop),
    ]
