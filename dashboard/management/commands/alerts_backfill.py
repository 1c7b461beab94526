import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.alerts import alerts_backfill, latest_data_day
from sales_analytics.plural import counted


class Command(BaseCommand):
    help = "Evaluate the alert rules of a datasource for every day of a range (default: all its data)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--datasource", default="sales")
        parser.add_argument("--start", type=dt.date.fromisoformat)
        parser.add_argument("--end", type=dt.date.fromisoformat)

    def handle(self, *args, datasource: str, start: dt.date | None, end: dt.date | None, **options) -> None:
        from analytics.catalogue import datasource_snapshot

        snapshot = datasource_snapshot(name=datasource)
        if snapshot is None:
            raise CommandError(f"Datasource {datasource!r} has no data.")
        first, last = snapshot.date_range
        start, end = start or first, end or latest_data_day(datasource) or last
        if start > end:
            raise CommandError("--start must be on or before --end.")
        outcome = alerts_backfill(datasource=datasource, start=start, end=end)
        self.stdout.write(f"Evaluated {start} to {end}: {outcome.opened} opened, {outcome.resolved} resolved.")
        if outcome.failed_rules:
            failures = "\n".join(f"  {failure}" for failure in outcome.failed_rules.values())
            raise CommandError(
                f"{counted(len(outcome.failed_rules), 'rule')} could not be evaluated (fix them on the Alerts page "
                f"or in the admin; the log has each traceback):\n{failures}"
            )
