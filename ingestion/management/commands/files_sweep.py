import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingestion.housekeeping import disk_sweep


class Command(BaseCommand):
    help = (
        "Delete files no data version needs: superseded versions' rollups, stored files no segment or rollup "
        "points at, and stale local copies of S3 files, each once older than the grace period; and the work "
        "folders killed ingestion runs left in the temporary folder. Runs daily as a schedule too "
        "(install_schedules)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=settings.FILES_SWEEP_GRACE_HOURS,
            help="Only files unneeded for at least this long (default: FILES_SWEEP_GRACE_HOURS, %(default)s).",
        )

    def handle(self, *args, grace_hours: float, **options) -> None:
        try:
            outcome = disk_sweep(grace=dt.timedelta(hours=grace_hours))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(outcome.describe().capitalize() + "."))
