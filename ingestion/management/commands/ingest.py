import hashlib
from pathlib import Path

from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from ingestion.errors import IngestionError
from ingestion.models import IngestionTask
from ingestion.services import ingestion_task_run, ingestion_upload_receive, upload_options_parse
from ingestion.wording import cli_spelling
from sales_analytics.plural import counted

_BAR_WIDTH = 30


def error_report_location(task: IngestionTask) -> str:
    """Where to find the task's error report: the file itself when storage is a local folder."""
    stored = (
        default_storage.path(task.error_report_key)
        if isinstance(default_storage, FileSystemStorage)
        else f"storage key {task.error_report_key}"
    )
    url = reverse("api:ingestion_task_error_report", kwargs={"task_id": task.pk})
    return f"{stored} (or GET {url})"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Ingest a sales file (CSV, Excel or Parquet) through the same pipeline as uploads."
    _last_message = ""  # the progress message last printed on a terminal
    _last_line = ""  # the progress line last printed elsewhere

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
            raise CommandError(f"{cli_spelling(exc.detail)} [{exc.code}]") from None
        self.stdout.write(f"Task {task.pk} queued for '{task.datasource.name}'.")
        if options["background"]:
            return
        self.task_run_and_report(task)

    def task_run_and_report(self, task: IngestionTask) -> IngestionTask:
        """Run the task here with a progress bar; CommandError (a non-zero exit) unless it succeeded."""
        finished = ingestion_task_run(task_id=str(task.pk), on_progress=self._draw_progress)
        self.stderr.write("")
        if finished is None or finished.status != IngestionTask.Status.SUCCEEDED:
            message = cli_spelling(finished.message) if finished else "the task disappeared"
            code = f" [{finished.error_code}]" if finished and finished.error_code else ""
            raise CommandError(
                f"Ingestion {finished.status if finished else 'failed'}: {message}{code}{self._report_note(finished)}"
            )
        self.stdout.write(self.style.SUCCESS(cli_spelling(finished.message)))
        if finished.rows_rejected:
            # Published with some rows left out: a success (exit 0), but the rejects must not go unseen.
            self.stdout.write(
                self.style.WARNING(f"{counted(finished.rows_rejected, 'row')} rejected.{self._report_note(finished)}")
            )
        return finished

    @staticmethod
    def _report_note(task: IngestionTask | None) -> str:
        return f" Error report: {error_report_location(task)}" if task and task.error_report_key else ""

    def _draw_progress(self, task: IngestionTask) -> None:
        """Each message in full: cut at the terminal's width, its end (often the useful part) was
        lost. On a terminal the bar redraws in place below the messages; elsewhere (a log) each
        update is one line."""
        message = cli_spelling(task.message)
        filled = _BAR_WIDTH * task.progress // 100
        bar = f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {task.progress:3d}% {task.stage}"
        if not self.stderr.isatty():
            # The pipeline may write the same state twice (the last batch's count, then the same
            # count with the file's notes): one line says it.
            line = f"{bar}: {message}"
            if line != self._last_line:
                self._last_line = line
                self.stderr.write(line)
            return
        if message != self._last_message:
            self._last_message = message
            self.stderr.write(f"\r\033[K{task.stage}: {message}")  # over the bar, then the bar below it
        self.stderr.write(bar, ending="\r")
