import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from analytics.selectors import SummaryFilters, summary_compute

pytestmark = pytest.mark.django_db(transaction=True)


def test_ingest_command_publishes_the_real_file(real_file: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", str(real_file), "--datasource", "cli_sales", stdout=out, stderr=err)
    assert "Published 1,000 rows" in out.getvalue()
    assert "100%" in err.getvalue()  # the progress bar reached the end
    totals = summary_compute(datasource_name="cli_sales", filters=SummaryFilters())
    assert totals.total_revenue == pytest.approx(322_966.749, abs=0.005)


def test_ingest_command_reports_refusals(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(CommandError, match="empty_file"):
        call_command("ingest", str(empty), stdout=io.StringIO(), stderr=io.StringIO())


def test_ingest_command_replace_mode(real_file: Path) -> None:
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("ingest", str(real_file), "--datasource", "cli_replace", **quiet)
    call_command("ingest", str(real_file), "--datasource", "cli_replace", "--mode", "replace", "--force", **quiet)
    totals = summary_compute(datasource_name="cli_replace", filters=SummaryFilters())
    assert totals.lines == 1000
    assert totals.data_version == 2
