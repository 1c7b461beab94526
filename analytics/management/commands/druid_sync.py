from django.core.management.base import BaseCommand, CommandError

from analytics.engines import EngineError
from analytics.engines.druid_sync import druid_reconcile, druid_sync
from analytics.models import Datasource


class Command(BaseCommand):
    help = (
        "Compare Druid's rows of each datasource with the catalogue's current version (lines and revenue per day "
        "and branch) and, where they differ, load the catalogue's rows into Druid in their place: after switching "
        "ANALYTICS_ENGINE to druid with data published by the embedded engine, or when a check finds them "
        "apart. Run it while no upload is publishing. Exit status 1 when a datasource is still out of sync."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--datasource", action="append", help="Only this datasource (repeatable).")
        parser.add_argument("--check", action="store_true", help="Only compare; change nothing.")
        parser.add_argument(
            "--drop-unpublished",
            action="store_true",
            help="Also drop Druid's rows of a datasource with nothing published (they may be a first upload's, "
            "loaded and about to be switched in: use it when no upload is running).",
        )

    def handle(self, *args, datasource: list[str] | None, check: bool, drop_unpublished: bool, **options) -> None:
        known = list(Datasource.objects.order_by("name").values_list("name", flat=True))
        unknown = sorted(set(datasource or ()) - set(known))
        if unknown:
            # Never a Druid datasource the catalogue does not own: another application's, on a shared cluster.
            raise CommandError(f"Not datasources of this catalogue: {', '.join(unknown)} (known: {', '.join(known)}).")
        apart = []
        try:
            for name in datasource or known:
                result = druid_reconcile(datasource_name=name)
                if not result.in_sync and not check:
                    self.stdout.write(f"{result.describe()}\n  loading the catalogue's rows into Druid …")
                    result = druid_sync(
                        datasource_name=name,
                        drop_unpublished=drop_unpublished,
                        on_progress=lambda task_id, message: self.stdout.write(f"  {message}"),
                    )
                self.stdout.write(result.describe())
                if not result.in_sync:
                    apart.append(name)
                    if result.data_version == 0 and not check:
                        self.stdout.write("  nothing is published: --drop-unpublished drops Druid's rows of it")
        except EngineError as exc:
            raise CommandError(str(exc)) from exc
        if apart:
            hint = " Run without --check to load the catalogue's rows." if check else ""
            raise CommandError(f"Out of sync: {', '.join(apart)}.{hint}")
