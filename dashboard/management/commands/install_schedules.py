from django.core.management.base import BaseCommand

from dashboard.schedules import schedules_install


class Command(BaseCommand):
    help = "Install (or update) the recurring django-q2 schedules defined in dashboard/schedules.py."

    def handle(self, *args, **options) -> None:
        for schedule in schedules_install():
            self.stdout.write(f"{schedule.name}: every {schedule.minutes} min ({schedule.func})")
