import datetime as dt
import tempfile
from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from analytics.catalogue import datasource_snapshot
from analytics.services import datasource_mark_demo
from ingestion import errors
from ingestion.demo import (
    DEFAULT_DATASOURCE,
    DEFAULT_ROWS,
    DEFAULT_SEED,
    DEFAULT_START,
    DEFAULT_YEARS,
    demo_frame_generate,
    demo_manifest_write,
)
from ingestion.errors import IngestionError
from ingestion.management.commands.ingest import Command as IngestCommand
from ingestion.management.commands.ingest import file_sha256
from ingestion.services import (
    datasource_name_check,
    ingestion_duplicate_find,
    ingestion_upload_receive,
    upload_options_parse,
)
from ingestion.wording import cli_spelling
from sales_analytics.plural import counted


class Command(IngestCommand):
    help = (
        "Generate the demo sales dataset (seeded; seasonality, weekday and hour patterns, noise, a few "
        "injected anomalies), publish it through the ingestion pipeline as a demo datasource, and write "
        "the manifest of its anomalies."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"Sale lines (default {DEFAULT_ROWS}).")
        parser.add_argument("--datasource", default=DEFAULT_DATASOURCE, help="Datasource name (default: demo).")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"Random seed (default {DEFAULT_SEED}).")
        parser.add_argument(
            "--years", type=int, default=DEFAULT_YEARS, help=f"Years of data (default {DEFAULT_YEARS})."
        )
        parser.add_argument(
            "--start",
            type=dt.date.fromisoformat,
            default=DEFAULT_START,
            help="First day, YYYY-MM-DD (default %(default)s).",
        )
        parser.add_argument(
            "--replace", action="store_true", help="Load again over the demo data already there (replace mode)."
        )

    def handle(
        self, *args, rows: int, datasource: str, seed: int, years: int, start: dt.date, replace: bool, **options
    ):
        if rows < 1 or years < 1 or seed < 0:
            raise CommandError("--rows and --years must be ≥ 1 and --seed ≥ 0.")
        try:
            name = datasource_name_check(name=datasource)
        except IngestionError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        snapshot = datasource_snapshot(name=name)
        if snapshot is not None and not snapshot.datasource.is_demo:
            raise CommandError(
                f"Datasource '{name}' holds uploaded sales data; demo data never goes there. "
                "Choose another --datasource (default: demo)."
            )
        frame, anomalies = demo_frame_generate(rows=rows, seed=seed, start=start, years=years)
        details = {"seed": seed, "rows": rows, "start": start.isoformat(), "years": years}
        filename = f"demo-{name}-seed{seed}-{rows}rows-{start:%Y%m%d}-{years}y.csv"
        with tempfile.TemporaryDirectory(prefix="load-demo-") as workdir:
            path = Path(workdir) / filename
            frame.write_csv(path)
            sha256 = file_sha256(path)
            if snapshot is not None and not replace:
                task_id = self._already_there(name=name, sha256=sha256, snapshot_uploads=snapshot.uploads)
                self._finish(name=name, anomalies=anomalies, details={**details, "task_id": task_id})
                return
            self.stdout.write(
                f"Generated {counted(frame.height, 'row')} "
                f"({counted(len(anomalies), 'injected anomaly', 'injected anomalies')})."
            )
            try:
                task = ingestion_upload_receive(
                    local_path=path,
                    original_filename=filename,
                    sha256=sha256,
                    size_bytes=path.stat().st_size,
                    datasource_name=name,
                    options=upload_options_parse(mode="replace" if replace else "append", force=replace),
                    user=None,
                )
            except IngestionError as exc:
                if exc.code == errors.DUPLICATE_UPLOAD:
                    self._say_loaded(name)
                    self._finish(name=name, anomalies=anomalies, details=details)
                    return
                raise CommandError(f"{cli_spelling(exc.detail)} [{exc.code}]") from None
        # The raw file is in storage now; label the datasource before its rows appear.
        datasource_mark_demo(name=name)
        self.stdout.write(f"Task {task.pk} queued for '{name}'.")
        self.task_run_and_report(task)
        self._finish(name=name, anomalies=anomalies, details={**details, "task_id": str(task.pk)})

    def _already_there(self, *, name: str, sha256: str, snapshot_uploads) -> str:
        """Same file already published and still current: say so (and return its task id);
        anything else: refuse to pile a second dataset on the first."""
        earlier = ingestion_duplicate_find(datasource_name=name, sha256=sha256)
        current = {upload.upload_id for upload in snapshot_uploads}
        if earlier is not None and str(earlier.pk) in current:
            self._say_loaded(name)
            return str(earlier.pk)
        raise CommandError(
            f"Datasource '{name}' already holds other demo data (generated with other options); "
            "use --replace to load this one instead."
        )

    def _say_loaded(self, name: str) -> None:
        self.stdout.write(
            f"The demo data (same seed, rows and years) is already loaded in '{name}'. Use --replace to load it again."
        )

    def _finish(self, *, name: str, anomalies: list[dict], details: dict) -> None:
        datasource_mark_demo(name=name)
        path = demo_manifest_write(datasource=name, anomalies=anomalies, details=details)
        self.stdout.write(f"Anomaly manifest: {path}")
