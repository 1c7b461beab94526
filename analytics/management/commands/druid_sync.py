from django.core.management.base import BaseCommand, CommandError

from analytics.engines import EngineError
from analytics.engines.druid_sync import Reconciliation, druid_reconcile, druid_sync
from analytics.models import Datasource


def sync_action(result: Reconciliation, *, drop_unpublished: bool) -> str | None:
    """What a sync of this datasource would do, in words; None when it would do nothing."""
    if result.data_version:
        return f"loading the catalogue's version {result.data_version} into Druid in place of its rows"
    if result.druid_days is not None and drop_unpublished:
        return "nothing is published: dropping Druid's rows of it"
    return None


class Command(BaseCommand):
    help = (
        "Compare Druid's rows of each datasource with the catalogue's current version (every additive part per "
        "day and branch, and each dimension's lines per day and value) and, where they differ, load the "
        "catalogue's rows into Druid in their place: after switching ANALYTICS_ENGINE to druid with data "
        "published by the embedded engine, or when a check finds them apart. Run it while no upload is "
        "publishing. Exit status 1 when a datasource is still out of sync."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--datasource", action="append", help="Only this datasource (repeatable).")
        parser.add_argument("--check", action="store_true", help="Only compare; change nothing.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load the catalogue's rows into Druid even where the comparison finds them equal.",
        )
        parser.add_argument(
            "--drop-unpublished",
            action="store_true",
            help="Also drop Druid's rows of a datasource with nothing published (they may be a first upload's, "
            "loaded and about to be switched in: use it when no upload is running).",
        )

    def handle(
        self, *args, datasource: list[str] | None, check: bool, force: bool, drop_unpublished: bool, **options
    ) -> None:
        if check and force:
            raise CommandError("--check only compares and --force loads: choose one.")
        known = list(Datasource.objects.order_by("name").values_list("name", flat=True))
        unknown = sorted(set(datasource or ()) - set(known))
        if unknown:
            # Never a Druid datasource the catalogue does not own: another application's, on a shared cluster.
            raise CommandError(f"Not datasources of this catalogue: {', '.join(unknown)} (known: {', '.join(known)}).")
        apart = []
        try:
            for name in datasource or known:
                result = druid_reconcile(datasource_name=name)
                self.stdout.write(result.describe())
                if not check and (force or not result.in_sync):
                    result = self._sync(result, drop_unpublished=drop_unpublished)
                if not result.in_sync:
                    apart.append(name)
        except EngineError as exc:
            raise CommandError(str(exc)) from exc
        if apart:
            hint = " Run without --check to load the catalogue's rows." if check else ""
            raise CommandError(f"Out of sync: {', '.join(apart)}.{hint}")

    def _sync(self, result: Reconciliation, *, drop_unpublished: bool) -> Reconciliation:
        action = sync_action(result, drop_unpublished=drop_unpublished)
        if action is None:
            if result.druid_days is not None:
                self.stdout.write("  nothing is published: --drop-unpublished drops Druid's rows of it")
            return result
        self.stdout.write(f"  {action} …")
        after = druid_sync(
            datasource_name=result.datasource,
            drop_unpublished=drop_unpublished,
            on_progress=lambda task_id, message: self.stdout.write(f"  {message}"),
        )
        self.stdout.write(after.describe())
        return after
