import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analytics.query import Summary
from analytics.runner import run_query

pytestmark = pytest.mark.django_db(transaction=True)


def test_ingest_command_publishes_the_real_file(real_file: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", str(real_file), "--datasource", "cli_sales", stdout=out, stderr=err)
    assert "Published 1,000 rows" in out.getvalue()
    assert "100%" in err.getvalue()  # the progress bar reached the end
    totals = run_query(Summary(datasource="cli_sales"), user=None).first
    assert totals["revenue"] == pytest.approx(322_966.749, abs=0.005)


def test_ingest_command_reports_refusals(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(CommandError, match="empty_file"):
        call_command("ingest", str(empty), stdout=io.StringIO(), stderr=io.StringIO())


def test_ingest_command_replace_mode(real_file: Path) -> None:
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("ingest", str(real_file), "--datasource", "cli_replace", **quiet)
    call_command("ingest", str(real_file), "--datasource", "cli_replace", "--mode", "replace", "--force", **quiet)
    result = run_query(Summary(datasource="cli_replace"), user=None)
    assert result.first["lines"] == 1000
    assert result.data_version == 2


def test_ingest_command_takes_the_decimal_mark(tmp_path: Path) -> None:
    # "1.250" is 1250 by the convention of ";" files; --decimal says it is 1.25.
    rows = "05.01.2019;A;Food;1;1.250\n" * 5
    path = tmp_path / "points.csv"
    path.write_text("Date;Branch;Product line;Quantity;Total\n" + rows, encoding="utf-8")
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("ingest", str(path), "--datasource", "cli_point", "--decimal", ".", **quiet)
    assert run_query(Summary(datasource="cli_point"), user=None).first["revenue"] == pytest.approx(5 * 1.25)
    call_command("ingest", str(path), "--datasource", "cli_guess", **quiet)
    assert run_query(Summary(datasource="cli_guess"), user=None).first["revenue"] == pytest.approx(5 * 1250)
    with pytest.raises(CommandError, match="invalid_option"):
        call_command("ingest", str(path), "--decimal", "x", **quiet)


def _one_bad_row_file(tmp_path: Path, *, bad_rows: int = 1) -> Path:
    rows = ["Date,Branch,Product line,Quantity,Total"]
    rows += [f"2019-01-{day:02d},A,Food,1,10" for day in range(1, 11)]
    for index in range(1, bad_rows + 1):
        rows[index] = f"2019-01-{index:02d},A,Food,one,10"
    path = tmp_path / "partly.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_published_file_with_rejects_exits_0_and_says_where_the_report_is(tmp_path: Path) -> None:
    from django.core.files.storage import FileSystemStorage, default_storage

    from ingestion.models import IngestionTask

    out = io.StringIO()
    call_command("ingest", str(_one_bad_row_file(tmp_path)), stdout=out, stderr=io.StringIO())
    task = IngestionTask.objects.get()
    assert task.status == IngestionTask.Status.SUCCEEDED
    # A local folder names the file itself; S3 (CI) its key.
    if isinstance(default_storage, FileSystemStorage):
        where = default_storage.path(task.error_report_key)
    else:
        where = f"storage key {task.error_report_key}"
    expected = f"1 row rejected. Error report: {where} (or GET /api/ingest/tasks/{task.pk}/error-report)"
    assert expected in out.getvalue()
    with default_storage.open(task.error_report_key, "rb") as report:
        assert report.read().decode("utf-8-sig").startswith("row_number,column,value,reason")


def test_a_refused_file_exits_non_zero_with_its_code_and_report(tmp_path: Path) -> None:
    import subprocess
    import sys

    from django.conf import settings

    from tests.processes import MANAGE_PY, django_subprocess_env

    completed = subprocess.run(
        [sys.executable, str(MANAGE_PY), "ingest", str(_one_bad_row_file(tmp_path, bad_rows=5))],
        cwd=settings.BASE_DIR,
        env=django_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "Ingestion failed: 5 of 10 rows (50.0%) were rejected" in completed.stderr
    assert "[too_many_rejected_rows] Error report: " in completed.stderr


def test_messages_name_the_command_s_flags_not_the_api_s_fields(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("Date,Branch,Product line,Quantity,Total\n01/02/19,A,Food,1,10\n03/04/19,B,Food,2,20\n")
    with pytest.raises(CommandError) as refused:
        call_command("ingest", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert "Pass --date-format in strftime syntax" in str(refused.value)
    assert "date_format" not in str(refused.value)

    call_command("ingest", str(path), "--date-format", "%d/%m/%y", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError) as duplicate:
        call_command("ingest", str(path), "--mode", "replace", stdout=io.StringIO(), stderr=io.StringIO())
    assert "Send --force (with --mode replace, as now)" in str(duplicate.value)

    with pytest.raises(CommandError) as bad_mapping:
        call_command("ingest", str(path), "--mapping", "{", stdout=io.StringIO(), stderr=io.StringIO())
    assert str(bad_mapping.value).startswith("--mapping is not valid JSON")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [io.StringIO, _Terminal], ids=["log", "terminal"])
def test_progress_messages_are_printed_in_full(real_file: Path, stream, monkeypatch) -> None:
    # They were cut at the terminal's width (here 40 columns).
    monkeypatch.setenv("COLUMNS", "40")
    err = stream()
    call_command("ingest", str(real_file), "--datasource", "cli_long", stdout=io.StringIO(), stderr=err)
    detected = "Detected CSV file, encoding utf-8, delimiter ',', header on row 1, 17 columns."
    assert f"reading: {detected}" in err.getvalue()
    assert "publishing: Publishing 1,000 rows." in err.getvalue()
    if stream is _Terminal:
        assert "[##############################] 100% done\r" in err.getvalue()


@pytest.mark.parametrize("stream", [io.StringIO, _Terminal], ids=["log", "terminal"])
def test_each_progress_message_is_printed_once(real_file: Path, stream) -> None:
    err = stream()
    call_command("ingest", str(real_file), "--datasource", "cli_once", stdout=io.StringIO(), stderr=err)
    assert err.getvalue().count("Validated 1,000 rows (0 rejected).") == 1, err.getvalue()


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ('upload it again with the option decimal=".".', 'upload it again with the option --decimal ".".'),
        ('decimal must be "." (12.50) or "," (12,50).', '--decimal must be "." (12.50) or "," (12,50).'),
    ],
)
def test_messages_name_the_decimal_option_as_its_flag(message: str, shown: str) -> None:
    from ingestion.wording import cli_spelling

    assert cli_spelling(message) == shown
