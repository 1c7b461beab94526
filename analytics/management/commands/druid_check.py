from django.core.management.base import BaseCommand, CommandError

from analytics.engines.druid_preflight import druid_preflight


class Command(BaseCommand):
    help = (
        "Check the Druid shape: the app reaches S3 and Druid, and Druid itself reads an object from the "
        "configured bucket. Each problem is one sentence naming the setting to change; exit status 1 on any."
    )

    def handle(self, *args, **options) -> None:
        checks = druid_preflight()
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            self.stdout.write(f"{mark} {check.name}: {check.detail}")
            for key, value in check.context.items():
                self.stdout.write(f"       {key}: {value}")
        failed = [check.name for check in checks if not check.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(checks)} Druid checks failed: {', '.join(failed)}.")
        self.stdout.write(self.style.SUCCESS("Druid is ready: uploads can be published to it."))
