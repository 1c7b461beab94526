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
