import hashlib
import shutil
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingestion.errors import IngestionError
from ingestion.models import IngestionTask
from ingestion.services import ingestion_task_run, ingestion_upload_receive, upload_options_parse

_BAR_WIDTH = 30


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Ingest a sales file (CSV, Excel or Parquet) through the same pipeline as uploads."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--datasource", default="", help="Datasource name (default: DEFAULT_DATASOURCE).")
        parser.add_argument("--mapping", default=None, help="JSON object: source column → canonical field.")
        parser.add_argument("--mode", default="append", choices=["append", "replace"])
        parser.add_argument("--date-format", default=None, help="strftime format of the date column, e.g. %%d/%%m/%%y.")
        parser.add_argument(
            "--decimal", default=None, help='Decimal mark of the numbers: "." or "," (default: detected).'
        )
        parser.add_argument("--sheet", default=None)
        parser.add_argument("--header-row", default=None)
        parser.add_argument("--max-rejected-ratio", default=None)
        parser.add_argument("--force", action="store_true", help="Load a file even if it was published before.")
        parser.add_argument(
            "--background", action="store_true", help="Only queue the task for the worker; do not wait."
        )

    def handle(self, *args, file: Path, **options) -> None:
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            upload_options = upload_options_parse(
                mode=options["mode"],
                mapping=options["mapping"],
                date_format=options["date_format"],
                decimal=options["decimal"],
                sheet=options["sheet"],
                header_row=options["header_row"],
                max_rejected_ratio=options["max_rejected_ratio"],
                force=options["force"],
            )
            task = ingestion_upload_receive(
                local_path=file,
                original_filename=file.name,
                sha256=file_sha256(file),
                size_bytes=file.stat().st_size,
                datasource_name=options["datasource"],
                options=upload_options,
                user=None,
            )
        except IngestionError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        self.stdout.write(f"Task {task.pk} queued for '{task.datasource.name}'.")
        if options["background"]:
            return
        finished = ingestion_task_run(task_id=str(task.pk), on_progress=self._draw_progress)
        self.stderr.write("")
        if finished is None or finished.status != IngestionTask.Status.SUCCEEDED:
            message = finished.message if finished else "the task disappeared"
            raise CommandError(f"Ingestion {finished.status if finished else 'failed'}: {message}")
        self.stdout.write(self.style.SUCCESS(finished.message))

    def _draw_progress(self, task: IngestionTask) -> None:
        filled = _BAR_WIDTH * task.progress // 100
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        columns = shutil.get_terminal_size((100, 20)).columns
        line = f"[{bar}] {task.progress:3d}% {task.stage}: {task.message}"
        end = "\r" if sys.stderr.isatty() else "\n"
        self.stderr.write(line[: columns - 1].ljust(columns - 1), ending=end)
