"""The same file is published once per datasource unless forced: checked when it is received,
when a task is retried, before publishing and again inside the publish switch."""

import io
from pathlib import Path

import pytest

import analytics.services as analytics_services
from analytics.models import Segment
from ingestion import pipeline, services
from ingestion.models import IngestionTask
from ingestion.services import ingestion_duplicate_find, ingestion_task_run

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client, content: bytes, **fields):
    handle = io.BytesIO(content)
    handle.name = "sales.csv"
    return client.post("/api/ingest/upload", {"file": handle, **fields})


def _upload_failing_at_publish(client, content: bytes, monkeypatch, **fields) -> str:
    """Upload with the publish crashing (the task fails, nothing published); the id of its task."""
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "datasource_publish", _publish_crash)
        task_id = _upload(client, content, **fields).json()["task_id"]
    assert IngestionTask.objects.get(pk=task_id).status == IngestionTask.Status.FAILED
    return task_id


def _publish_crash(**kwargs):
    raise RuntimeError("injected crash in publishing")


def _lines(client) -> int:
    return client.get("/api/metrics/summary").json()["lines"]


def test_a_file_still_queued_is_not_accepted_twice(uploader_api, real_file: Path) -> None:
    # A double-clicked upload: both were accepted and both published (every total doubled).
    first = _upload(uploader_api, real_file.read_bytes()).json()  # no worker: stays queued
    second = _upload(uploader_api, real_file.read_bytes())
    assert second.status_code == 409, second.content
    assert second.json()["code"] == "duplicate_upload"
    assert f"already being loaded into 'sales' by task {first['task_id']}" in second.json()["detail"]
    assert _upload(uploader_api, real_file.read_bytes(), force="true").status_code == 202


def test_retry_after_the_same_file_was_published_by_another_upload_is_refused(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    failed = _upload_failing_at_publish(uploader_api, real_file.read_bytes(), monkeypatch)
    second = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]  # the failed one published nothing
    assert IngestionTask.objects.get(pk=second).status == IngestionTask.Status.SUCCEEDED

    response = uploader_api.post(f"/api/ingest/tasks/{failed}/retry")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "duplicate_upload"
    assert second in response.json()["detail"]
    assert IngestionTask.objects.get(pk=failed).status == IngestionTask.Status.FAILED
    assert _lines(uploader_api) == 1000


def test_retry_of_a_cancelled_upload_while_its_twin_is_queued_is_refused(uploader_api, real_file: Path) -> None:
    cancelled = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    assert uploader_api.post(f"/api/ingest/tasks/{cancelled}/cancel").json()["status"] == "cancelled"
    queued = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    response = uploader_api.post(f"/api/ingest/tasks/{cancelled}/retry")
    assert response.status_code == 409
    assert queued in response.json()["detail"]


def test_uploads_received_at_the_same_moment_publish_once(uploader_api, real_file: Path, monkeypatch) -> None:
    # Two requests both pass the check before either has created its task: the worker refuses
    # the second before publishing.
    monkeypatch.setattr(services, "ingestion_duplicate_refuse", lambda **kwargs: None)
    first = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    second = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    monkeypatch.undo()
    ingestion_task_run(task_id=first)
    refused = ingestion_task_run(task_id=second)
    assert (refused.status, refused.error_code) == (IngestionTask.Status.FAILED, "duplicate_upload")
    assert "Nothing was published" in refused.message
    assert _lines(uploader_api) == 1000


def test_a_twin_published_while_this_one_was_publishing_is_refused_in_the_switch(
    uploader_api, real_file: Path, monkeypatch
) -> None:
    # This one entered publishing; a forced twin (which enters without checking) published the
    # same file before this one's switch: the switch itself, under the datasource's lock, refuses.
    second = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    first = _upload(uploader_api, real_file.read_bytes(), force="true").json()["task_id"]
    real_plan = analytics_services._publish_plan
    twin_runs: list[str] = []

    def plan_then_twin_publishes(**kwargs):
        plan = real_plan(**kwargs)
        if str(kwargs["request"].upload_id) == second and not twin_runs:
            twin_runs.append(first)
            ingestion_task_run(task_id=first)
        return plan

    monkeypatch.setattr(analytics_services, "_publish_plan", plan_then_twin_publishes)
    refused = ingestion_task_run(task_id=second)
    assert IngestionTask.objects.get(pk=first).status == IngestionTask.Status.SUCCEEDED
    assert (refused.status, refused.error_code) == (IngestionTask.Status.FAILED, "duplicate_upload")
    assert not Segment.objects.filter(upload_id=second).exists()
    assert _lines(uploader_api) == 1000


def test_a_task_whose_rows_are_switched_in_counts_as_published_before_it_is_marked(
    uploader_api, real_file: Path, tasks_inline
) -> None:
    # Between its switch and its `succeeded` (or when a worker died in between) a task is still
    # `running`; its segments say the file is published.
    task = IngestionTask.objects.get(pk=_upload(uploader_api, real_file.read_bytes()).json()["task_id"])
    IngestionTask.objects.filter(pk=task.pk).update(status=IngestionTask.Status.RUNNING)
    other = IngestionTask.objects.create(
        datasource=task.datasource, original_filename="b.csv", size_bytes=1, sha256=task.sha256
    )
    found = ingestion_duplicate_find(datasource_name="sales", sha256=task.sha256, exclude=other.pk)
    assert found is not None and found.pk == task.pk


def test_forced_upload_and_its_retry_may_publish_the_same_file_again(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    assert _upload(uploader_api, real_file.read_bytes()).status_code == 202
    forced = _upload_failing_at_publish(uploader_api, real_file.read_bytes(), monkeypatch, force="true")
    assert uploader_api.post(f"/api/ingest/tasks/{forced}/retry").status_code == 202
    assert IngestionTask.objects.get(pk=forced).status == IngestionTask.Status.SUCCEEDED
    assert _lines(uploader_api) == 2000


@pytest.mark.parametrize("first_to_publish", ["earlier", "later"])
def test_of_twins_reaching_publishing_together_exactly_one_publishes(
    uploader_api, real_file: Path, monkeypatch, first_to_publish: str
) -> None:
    # Druid loads rows before the switch: the check inside the switch comes too late, and a rule
    # by creation order let an earlier twin load after a later one had started (both counted).
    from ingestion.errors import IngestionError

    monkeypatch.setattr(services, "ingestion_duplicate_refuse", lambda **kwargs: None)
    earlier = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    later = _upload(uploader_api, real_file.read_bytes()).json()["task_id"]
    monkeypatch.undo()
    IngestionTask.objects.filter(pk__in=[earlier, later]).update(status=IngestionTask.Status.RUNNING)
    winner, loser = (earlier, later) if first_to_publish == "earlier" else (later, earlier)
    pipeline._publishing_claim(task=IngestionTask.objects.get(pk=winner))
    assert IngestionTask.objects.get(pk=winner).stage == IngestionTask.Stage.PUBLISHING
    with pytest.raises(IngestionError, match="already being loaded") as refused:
        pipeline._publishing_claim(task=IngestionTask.objects.get(pk=loser))
    assert refused.value.code == "duplicate_upload"
    assert IngestionTask.objects.get(pk=loser).stage != IngestionTask.Stage.PUBLISHING


def test_fix_and_retry_of_a_forced_upload_stays_forced(
    uploader_api, real_file: Path, tasks_inline, monkeypatch
) -> None:
    # The fix form sends the options it shows, without `force`: the retry was refused as a duplicate.
    from ingestion.services import ingestion_task_retry

    assert _upload(uploader_api, real_file.read_bytes()).status_code == 202
    forced = _upload_failing_at_publish(uploader_api, real_file.read_bytes(), monkeypatch, force="true")
    task = ingestion_task_retry(task=IngestionTask.objects.get(pk=forced), overrides={"max_rejected_ratio": "0.5"})
    assert task.options["force"] is True
    finished = IngestionTask.objects.get(pk=forced)
    assert finished.status == IngestionTask.Status.SUCCEEDED, finished.message
    assert _lines(uploader_api) == 2000


def _twin_refused_at_publishing(client, content: bytes) -> str:
    """A task failed as `duplicate_upload` when publishing: a forced twin published the file first."""
    first = _upload(client, content).json()["task_id"]  # no worker: stays queued
    second = _upload(client, content, force="true").json()["task_id"]
    assert ingestion_task_run(task_id=second).status == IngestionTask.Status.SUCCEEDED
    refused = ingestion_task_run(task_id=first)
    assert (refused.status, refused.error_code) == (IngestionTask.Status.FAILED, "duplicate_upload")
    return first


def test_a_refused_twin_is_loaded_again_only_when_the_retry_says_force(uploader_api, real_file: Path) -> None:
    # The refusal said "send force=true", but the retry endpoint took no options at all.
    refused = _twin_refused_at_publishing(uploader_api, real_file.read_bytes())
    url = f"/api/ingest/tasks/{refused}/retry"
    again = uploader_api.post(url)
    assert (again.status_code, again.json()["code"]) == (409, "duplicate_upload")
    assert "force=true" in again.json()["detail"]

    forced = uploader_api.post(url, {"force": "true"})

    assert forced.status_code == 202, forced.content
    assert IngestionTask.objects.get(pk=refused).options["force"] is True
    assert ingestion_task_run(task_id=refused).status == IngestionTask.Status.SUCCEEDED
    assert _lines(uploader_api) == 2000


def test_a_retry_can_turn_force_off(uploader_api, real_file: Path, tasks_inline, monkeypatch) -> None:
    forced = _upload_failing_at_publish(uploader_api, real_file.read_bytes(), monkeypatch, force="true")
    assert _upload(uploader_api, real_file.read_bytes(), force="true").status_code == 202  # published meanwhile
    response = uploader_api.post(f"/api/ingest/tasks/{forced}/retry", {"force": "false"})
    assert (response.status_code, response.json()["code"]) == (409, "duplicate_upload")


def test_a_retry_changes_only_the_options_it_sends(uploader_api, real_file: Path, tasks_inline, monkeypatch) -> None:
    task_id = _upload_failing_at_publish(uploader_api, real_file.read_bytes(), monkeypatch, max_rejected_ratio="0.5")
    url = f"/api/ingest/tasks/{task_id}/retry"
    bad = uploader_api.post(url, {"mode": "sideways"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_option")
    assert IngestionTask.objects.get(pk=task_id).status == IngestionTask.Status.FAILED  # unchanged

    response = uploader_api.post(url, {"date_format": "%d-%b-%Y"})

    assert response.status_code == 202, response.content
    options = IngestionTask.objects.get(pk=task_id).options
    assert (options["date_format"], options["max_rejected_ratio"]) == ("%d-%b-%Y", 0.5)
    finished = IngestionTask.objects.get(pk=task_id)
    assert finished.status == IngestionTask.Status.SUCCEEDED, finished.message


def test_the_task_page_offers_to_load_a_refused_twin_anyway(uploader_api, uploader, real_file: Path) -> None:
    from django.test import Client

    refused = _twin_refused_at_publishing(uploader_api, real_file.read_bytes())
    browser = Client()
    browser.force_login(uploader)
    page = browser.get(f"/uploads/{refused}").content.decode()
    assert "Retry from the stored file" not in page  # refused again, whatever it tried
    assert "Load it again anyway" in page
    assert "Valid rows (not published)" in page and "Rows published" not in page
    browser.post(f"/uploads/{refused}/retry", {"force": "true"})
    assert ingestion_task_run(task_id=refused).status == IngestionTask.Status.SUCCEEDED
    assert "Rows published" in browser.get(f"/uploads/{refused}").content.decode()


def test_graphql_retries_a_refused_twin_with_force(uploader_api, uploader, real_file: Path) -> None:
    from django.test import Client

    refused = _twin_refused_at_publishing(uploader_api, real_file.read_bytes())
    browser = Client()
    browser.force_login(uploader)
    mutation = 'mutation { retryIngestionTask(id: "%s"%s) { task { status } } }'
    again = browser.post("/graphql", {"query": mutation % (refused, "")}, content_type="application/json").json()
    assert again["errors"][0]["extensions"]["code"] == "duplicate_upload"

    forced = browser.post(
        "/graphql", {"query": mutation % (refused, ", force: true")}, content_type="application/json"
    ).json()

    assert forced["data"]["retryIngestionTask"]["task"]["status"] == "queued", forced
    assert ingestion_task_run(task_id=refused).status == IngestionTask.Status.SUCCEEDED


def test_the_same_data_with_other_bytes_is_refused_unless_forced(uploader_api, real_file: Path, tasks_inline) -> None:
    # Saved again with Windows line endings: another sha256, so not a duplicate file, and every
    # total doubled (with only a warning). Every line belongs to a published invoice: refused.
    assert _upload(uploader_api, real_file.read_bytes()).status_code == 202
    crlf = real_file.read_bytes().replace(b"\n", b"\r\n")

    refused = IngestionTask.objects.get(pk=_upload(uploader_api, crlf).json()["task_id"])

    assert refused.status == IngestionTask.Status.FAILED
    assert refused.error_code == "duplicate_upload"
    assert "Every line of this file belongs to invoices already published in 'sales' (1,000 invoices)" in (
        refused.message
    )
    assert "mode=replace" in refused.message and "force=true" in refused.message
    assert _lines(uploader_api) == 1000

    assert uploader_api.post(f"/api/ingest/tasks/{refused.pk}/retry", {"force": "true"}).status_code == 202
    forced = IngestionTask.objects.get(pk=refused.pk)
    assert forced.status == IngestionTask.Status.SUCCEEDED, forced.message
    warning = "1,000 of these lines belong to 1,000 invoices already published in 'sales'"
    assert warning in forced.message and any(warning in note for note in forced.notes)
    assert _lines(uploader_api) == 2000


def test_data_partly_published_before_is_loaded_with_a_warning(uploader_api, real_file: Path, tasks_inline) -> None:
    # Invoices may span files: some lines of published invoices among new ones are loaded, with a
    # warning naming them.
    header, *rows = real_file.read_text().splitlines()
    assert _upload(uploader_api, "\n".join([header, *rows[:600]]).encode() + b"\n").status_code == 202

    task_id = _upload(uploader_api, "\n".join([header, *rows[500:]]).encode() + b"\n").json()["task_id"]

    task = IngestionTask.objects.get(pk=task_id)
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert "100 of these lines belong to 100 invoices already published in 'sales'" in task.message
    assert _lines(uploader_api) == 1100


def test_a_replace_says_how_many_rows_it_swapped_out(uploader_api, real_file: Path, tasks_inline) -> None:
    # A replace swaps every row from the file's first to its last day, also days the file lacks;
    # the message said only how many rows it published.
    import datetime as dt

    assert _upload(uploader_api, real_file.read_bytes()).status_code == 202
    header, *rows = real_file.read_text().splitlines()

    def day(row: str) -> dt.date:
        return dt.datetime.strptime(row.split(",")[10], "%d-%b-%Y").date()

    kept = [row for row in rows if day(row).month == 2][::2]  # half of February's lines
    first, last = min(map(day, kept)), max(map(day, kept))
    swapped = sum(1 for row in rows if first <= day(row) <= last)

    task_id = _upload(uploader_api, "\n".join([header, *kept]).encode() + b"\n", mode="replace").json()["task_id"]

    task = IngestionTask.objects.get(pk=task_id)
    assert task.status == IngestionTask.Status.SUCCEEDED, task.message
    assert f"Published {len(kept):,} rows" in task.message
    # Every row of the range went, days the file lacks included: said so, not "those days had".
    assert f"({first} to {last}); it replaced the {swapped:,} rows from {first} to {last} (every day" in task.message
    assert _lines(uploader_api) == len(rows) - swapped + len(kept)


def test_a_replace_run_again_after_its_switch_does_not_claim_it_swapped_nothing(
    uploader_api, real_file: Path, tasks_inline
) -> None:
    # The worker died after the switch; the run again finds the rows published and swaps nothing.
    assert _upload(uploader_api, real_file.read_bytes()).status_code == 202
    header, *rows = real_file.read_text().splitlines()
    february = "\n".join([header, *[row for row in rows if "-Feb-2019," in row][:10]]) + "\n"
    task_id = _upload(uploader_api, february.encode(), mode="replace").json()["task_id"]
    assert "it replaced the" in IngestionTask.objects.get(pk=task_id).message
    IngestionTask.objects.filter(pk=task_id).update(status=IngestionTask.Status.QUEUED)

    again = ingestion_task_run(task_id=task_id)

    assert again.status == IngestionTask.Status.SUCCEEDED, again.message
    assert "it replaced the" not in again.message


def _receipts_restarting_daily(first_day: str, days: int) -> bytes:
    """Receipt numbers 1–3 again every day in each of two stores, two lines each."""
    import datetime as dt

    start = dt.date.fromisoformat(first_day)
    lines = ["Receipt ID,Date,Branch,Product line,Quantity,Total"]
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        for store in ("A", "B"):
            for receipt in (1, 2, 3):
                lines += [
                    f"{receipt},{day.isoformat()},{store},Food,1,10",
                    f"{receipt},{day.isoformat()},{store},Toys,2,5",
                ]
    return ("\n".join(lines) + "\n").encode()


def test_receipt_numbers_restarting_every_day_are_named_and_a_later_month_is_not_called_published(
    uploader_api, tasks_inline
) -> None:
    # Transactions count distinct invoice ids: ids reused by every store every day were counted as
    # 3 transactions without a word, and the next month's file was said to be counted twice.
    january = IngestionTask.objects.get(
        pk=_upload(uploader_api, _receipts_restarting_daily("2024-01-01", 31)).json()["task_id"]
    )
    assert january.status == IngestionTask.Status.SUCCEEDED, january.message
    assert "invoice ids now stand for sales of several days and branches" in january.message
    assert any("map a column unique to each sale as the invoice id" in note for note in january.notes)

    february = IngestionTask.objects.get(
        pk=_upload(uploader_api, _receipts_restarting_daily("2024-02-01", 29)).json()["task_id"]
    )

    assert february.status == IngestionTask.Status.SUCCEEDED, february.message
    assert "already published" not in february.message
    assert "several days" not in february.message  # said once, when it happened
    summary = uploader_api.get("/api/metrics/summary").json()
    assert summary["lines"] == (31 + 29) * 2 * 3 * 2
    assert summary["transactions"] == 3  # as DESIGN.md defines them: distinct invoice ids
    by_day = uploader_api.get("/api/metrics/summary", {"start": "2024-02-10", "end": "2024-02-10"}).json()
    assert by_day["transactions"] == 3 and by_day["lines"] == 12


def test_unique_invoice_ids_give_no_reuse_warning(uploader_api, real_file: Path, tasks_inline) -> None:
    task = IngestionTask.objects.get(pk=_upload(uploader_api, real_file.read_bytes()).json()["task_id"])
    assert task.status == IngestionTask.Status.SUCCEEDED and "Warning" not in task.message


def test_counts_in_messages_agree_with_their_number(uploader_api, tasks_inline) -> None:
    one_line = b"Date,Branch,Product line,Quantity,Total,Invoice ID\n2019-01-01,A,Food,1,10,INV-1\n"
    task = IngestionTask.objects.get(pk=_upload(uploader_api, one_line).json()["task_id"])
    assert task.message.startswith("Published 1 row as data version 1"), task.message

    # The same line in other bytes, loaded anyway: one line of one invoice published before.
    crlf = one_line.replace(b"\n", b"\r\n")
    task = IngestionTask.objects.get(pk=_upload(uploader_api, crlf, force="true").json()["task_id"])
    assert "Warning: 1 of these lines belongs to 1 invoice already published" in task.message, task.message

    replace = _upload(
        uploader_api, b"Date,Branch,Product line,Quantity,Total\n2019-01-01,A,Food,1,10\n", mode="replace"
    )
    task = IngestionTask.objects.get(pk=replace.json()["task_id"])
    assert "Published 1 row " in task.message
    assert "it replaced the 2 rows from 2019-01-01 to 2019-01-01" in task.message, task.message


def test_too_many_rejected_rows_are_counted_in_words_that_agree(uploader_api, tasks_inline) -> None:
    content = b"Date,Branch,Product line,Quantity,Total\n2019-01-01,A,Food,one,10\n"
    task = IngestionTask.objects.get(pk=_upload(uploader_api, content).json()["task_id"])
    assert task.error_code == "too_many_rejected_rows"
    assert task.message.startswith("1 of 1 row (100.0%) was rejected"), task.message


def test_a_refused_replace_is_advised_as_a_replace(uploader_api, real_file: Path, tasks_inline) -> None:
    # The advice was "with mode=replace its days' rows are swapped", to a request that sent mode=replace.
    assert _upload(uploader_api, real_file.read_bytes()).status_code == 202
    refused = _upload(uploader_api, real_file.read_bytes(), mode="replace")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "Send force=true (with mode=replace, as now) to swap its days' rows for the file's again." in detail
    assert "with mode=replace its days" not in detail

    appended = _upload(uploader_api, real_file.read_bytes()).json()["detail"]
    assert "Send force=true to load it again: its rows are then added a second time" in appended
