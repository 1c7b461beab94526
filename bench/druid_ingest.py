"""Druid ingestion benchmark (issue 5): from upload accepted to the rows queryable in Druid, 1,000 rows.

    .venv/bin/python bench/druid_ingest.py [--runs 3] [--file PATH] [--keep]

Needs the S3 server and Druid of `make services`: their variables come from the environment or,
when unset, from var/services/env.

1. Starts the app on a temporary VAR_DIR, as bench/ingest.py does (gunicorn + `manage.py qcluster`,
   SQLite), but with S3 storage and ANALYTICS_ENGINE=druid pointed at the services.
2. Per run, into a fresh datasource: `POST /api/ingest/upload` with the file (default: the shared
   real CSV, 1,000 rows). The clock starts when the 202 arrives: the upload is accepted.
3. Polls the task's status and Druid's own SQL API (`SUM(lines)` of the datasource) every 0.1 s,
   until Druid answers every row and the task has succeeded (the app switches its catalogue
   only after Druid can answer, so dashboards see the rows from then on).
4. Prints per run: accepted → queryable in Druid, accepted → task succeeded, the task's stage
   timings and the Druid task's own duration; the target is ≤ 60 s.
5. Drops the benchmark's datasources from Druid (segments marked unused, then a kill task),
   deletes their S3 objects, stops the app and removes the temporary folder (unless --keep).

Timings on a shared machine are noisy: run it twice before trusting a small difference.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
from botocore.config import Config as BotoConfig

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `bench.ingest` must import

from bench.ingest import App  # noqa: E402

TARGET_SECONDS = 60.0
POLL_SECONDS = 0.1
RUN_TIMEOUT_SECONDS = 600
SERVICES_ENV = ROOT / "var" / "services" / "env"
REAL_FILE = ROOT.parent / "shared" / "data" / "real" / "supermarket_sales.csv"
SERVICE_VARIABLES = (
    "S3_BUCKET",
    "S3_ENDPOINT_URL",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
    "S3_REGION",
    "S3_ADDRESSING_STYLE",
    "DRUID_ROUTER_URL",
)


def services_environment() -> dict[str, str]:
    """The services' variables: from the environment, else from var/services/env."""
    found = {name: os.environ[name] for name in SERVICE_VARIABLES if os.environ.get(name)}
    if "S3_BUCKET" not in found or "DRUID_ROUTER_URL" not in found:
        if not SERVICES_ENV.exists():
            raise SystemExit(
                "S3_BUCKET and DRUID_ROUTER_URL are not set and var/services/env is missing: `make services`."
            )
        for line in SERVICES_ENV.read_text().splitlines():
            name, _, value = line.partition("=")
            if name in SERVICE_VARIABLES and value:
                found.setdefault(name, value)
    return found


@dataclass
class Run:
    datasource: str
    rows: int
    upload_seconds: float  # request start → 202
    queryable_seconds: float  # 202 → Druid's SQL API answers every row
    succeeded_seconds: float  # 202 → the task succeeded (catalogue switched)
    status: dict
    druid_task_ms: int | None


def druid_lines(router: str, datasource: str) -> int | None:
    response = httpx.post(
        f"{router}/druid/v2/sql",
        json={"query": f'SELECT SUM("lines") FROM "{datasource}"', "resultFormat": "array"},  # noqa: S608
        timeout=30,
    )
    if response.status_code != 200:  # the table does not exist yet
        return None
    [[lines]] = response.json() or [[None]]
    return lines


def druid_task_duration(router: str, task_id: str) -> int | None:
    response = httpx.get(f"{router}/druid/indexer/v1/task/{task_id}/status", timeout=30)
    return response.json().get("status", {}).get("duration") if response.status_code == 200 else None


def run_once(*, app: App, token: str, router: str, path: Path, rows: int, datasource: str) -> Run:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=app.base_url, headers=headers, timeout=httpx.Timeout(60, read=600)) as client:
        with path.open("rb") as handle:
            started = time.perf_counter()
            response = client.post(
                "/api/ingest/upload", data={"datasource_name": datasource}, files={"file": (path.name, handle)}
            )
        accepted = time.perf_counter()
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
        status_url = response.json()["status_url"]
        queryable = succeeded = None
        while queryable is None or succeeded is None:
            now = time.perf_counter()
            if now - accepted > RUN_TIMEOUT_SECONDS:
                raise RuntimeError(f"not queryable after {RUN_TIMEOUT_SECONDS} s")
            if queryable is None and druid_lines(router, datasource) == rows:
                queryable = now - accepted
            if succeeded is None:
                status = client.get(status_url).json()
                if status["status"] == "succeeded":
                    succeeded = time.perf_counter() - accepted
                elif status["status"] in ("failed", "cancelled"):
                    raise RuntimeError(f"task {status['status']}: {status['message']}")
            time.sleep(POLL_SECONDS)
    return Run(
        datasource=datasource,
        rows=rows,
        upload_seconds=accepted - started,
        queryable_seconds=queryable,
        succeeded_seconds=succeeded,
        status=status,
        druid_task_ms=druid_task_duration(router, status["engine_task_id"]),
    )


def cleanup(*, router: str, services: dict[str, str], datasources: list[str]) -> None:
    s3 = boto3.resource(
        "s3",
        endpoint_url=services.get("S3_ENDPOINT_URL") or None,
        aws_access_key_id=services.get("S3_ACCESS_KEY_ID") or None,
        aws_secret_access_key=services.get("S3_SECRET_ACCESS_KEY") or None,
        region_name=services.get("S3_REGION", "us-east-1"),
        config=BotoConfig(
            s3={"addressing_style": services.get("S3_ADDRESSING_STYLE", "path")},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    bucket = s3.Bucket(services["S3_BUCKET"])
    for datasource in datasources:
        httpx.delete(f"{router}/druid/coordinator/v1/datasources/{datasource}", timeout=30)
        httpx.post(
            f"{router}/druid/indexer/v1/task",
            json={"type": "kill", "dataSource": datasource, "interval": "1000-01-01/3000-01-01"},
            timeout=30,
        )
        for prefix in ("raw", "curated", "reports"):
            bucket.objects.filter(Prefix=f"{prefix}/{datasource}/").delete()


def report(runs: list[Run]) -> bool:
    print(f"\nUpload accepted → rows queryable in Druid ({runs[0].rows:,} rows; target ≤ {TARGET_SECONDS:.0f} s)")
    print(f"{'run':>4} {'upload':>8} {'queryable':>10} {'succeeded':>10} {'druid task':>11}  stages (s)")
    for number, run in enumerate(runs, 1):
        stages = ", ".join(f"{name} {seconds:.2f}" for name, seconds in run.status.get("timings", {}).items())
        druid_task = f"{run.druid_task_ms / 1000:.2f} s" if run.druid_task_ms is not None else "?"
        print(
            f"{number:>4} {run.upload_seconds:>7.2f}s {run.queryable_seconds:>9.2f}s {run.succeeded_seconds:>9.2f}s "
            f"{druid_task:>11}  {stages}"
        )
    worst = max(max(run.queryable_seconds, run.succeeded_seconds) for run in runs)
    ok = worst <= TARGET_SECONDS
    verdict = "OK" if ok else "MISSED"
    print(f"worst accepted → queryable and published: {worst:.2f} s — {verdict} (≤ {TARGET_SECONDS:.0f} s)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", type=Path, default=REAL_FILE, help="a sales file (default: the shared real CSV)")
    parser.add_argument("--rows", type=int, default=1000, help="rows the file publishes (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and the Druid datasources")
    args = parser.parse_args()
    services = services_environment()
    router = services["DRUID_ROUTER_URL"].rstrip("/")
    workdir = Path(tempfile.mkdtemp(prefix="bench-druid-"))
    app = App(workdir)
    app.env.update(services, ANALYTICS_ENGINE="druid")
    runs: list[Run] = []
    datasources: list[str] = []
    try:
        token = app.prepare()
        app.start()
        for _ in range(args.runs):
            datasources.append(f"bench_druid_{uuid.uuid4().hex[:10]}")
            runs.append(
                run_once(
                    app=app, token=token, router=router, path=args.file, rows=args.rows, datasource=datasources[-1]
                )
            )
        ok = report(runs)
    except BaseException:
        print(app.log_tail(), file=sys.stderr)
        raise
    finally:
        app.stop()
        if not args.keep:
            cleanup(router=router, services=services, datasources=datasources)
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir} and Druid datasources {datasources}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
