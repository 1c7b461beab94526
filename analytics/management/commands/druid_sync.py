from django.core.management.base import BaseCommand, CommandError

from analytics.engines import EngineError
from analytics.engines.druid_sync import druid_reconcile, druid_sync
from analytics.models import Datasource


class Command(BaseCommand):
    help = (
        "Compare Druid's rows of each datasource with the catalogue's current version (lines and revenue) and, "
        "where they differ, load the catalogue's rows into Druid in their place: after switching "
        "ANALYTICS_ENGINE to druid with data published by the embedded engine, or when a check finds them "
        "apart. Exit status 1 when a datasource is still out of sync."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--datasource", action="append", help="Only this datasource (repeatable).")
        parser.add_argument("--check", action="store_true", help="Only compare; change nothing.")

    def handle(self, *args, datasource: list[str] | None, check: bool, **options) -> None:
        names = datasource or list(Datasource.objects.order_by("name").values_list("name", flat=True))
        apart = []
        try:
            for name in names:
                result = druid_reconcile(datasource_name=name)
                if not result.in_sync and not check:
                    self.stdout.write(f"{result.describe()}; loading the catalogue's rows into Druid …")
                    result = druid_sync(
                        datasource_name=name, on_progress=lambda task_id, message: self.stdout.write(f"  {message}")
                    )
                self.stdout.write(result.describe())
                if not result.in_sync:
                    apart.append(name)
        except EngineError as exc:
            raise CommandError(str(exc)) from exc
        if apart:
            hint = " Run without --check to load the catalogue's rows." if check else ""
            raise CommandError(f"Out of sync: {', '.join(apart)}.{hint}")
