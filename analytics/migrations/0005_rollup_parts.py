from django.db import migrations, models

# The parts every rollup held before rollups recorded theirs (`invoices` only with invoice ids,
# which routing checks on its own). Frozen here: later releases add parts, never to these files.
PARTS_BEFORE_0005 = [
    "revenue_sum",
    "cost_sum",
    "gross_profit_sum",
    "quantity_sum",
    "tax_sum",
    "lines",
    "rating_sum",
    "rating_count",
]


def rollup_parts_record(apps, schema_editor) -> None:
    Rollup = apps.get_model("analytics", "Rollup")
    Rollup.objects.update(parts=PARTS_BEFORE_0005)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0004_stored_files_druid_sync"),
    ]

    operations = [
        migrations.AddField(
            model_name="rollup",
            name="parts",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(rollup_parts_record, migrations.RunPython.noop),
    ]
