"""Page benchmark (issue 6, item 8): server time per dashboard page with 10 M rows, one run.

    .venv/bin/python bench/pages.py [--rows 10000000] [--repeat 30] [--seed 1]
                                    [--var-dir DIR] [--keep] [--profile]

1. Starts Django on a temporary VAR_DIR in the embedded default shape (SQLite, local storage,
   DuckDB, file cache), as bench/query.py does, and runs `collectstatic` (pages render with the
   production static storage).
2. Loads `--rows` generated sales lines (bench/generate.py) into the default datasource through
   the real pipeline, with bench/query.py's loader: Parquet, then `manage.py ingest` (read, map,
   validate, publish, rollups). With `--var-dir` an earlier run's folder (kept with `--keep`) is
   reused and the load skipped when the datasource is already there.
3. Signs a viewer in and GETs every page with Django's test Client, round-robin over the pages,
   after `cache.clear()` before each request, so every run does the page's real work (every
   `run_query`) instead of reading cached results; then once more per page with a warm cache.
   Each response must be 200 and carry no failed panel, or the run stops: a fast error page is
   not a result.
4. Prints p50/p95 per page against the target (≤ 100 ms p50), PASS or MISS, and with --profile
   (or on a MISS) where the slowest page's time goes (cProfile).

Timings on a shared machine are noisy: look at the load average printed with the figures, and
run it twice before trusting a small difference.
"""

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `bench.*` and the project must import

from bench.query import datasource_load, django_start, percentile  # noqa: E402

TARGET_P50_MS = 100.0
WARMUP_RUNS = 2
DATASOURCE = "sales"  # the default datasource: what the pages show without ?datasource=
# (label, path, extra request headers): every page as a browser first opens it, plus the
# filter bar's HTMX swap of the Overview's panels for one branch.
PAGES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("Overview", "/", {}),
    ("Sales", "/sales", {}),
    ("Products", "/products", {}),
    ("Branches", "/branches", {}),
    ("Profitability", "/profitability", {}),
    ("Alerts", "/alerts", {}),
    ("Uploads", "/uploads", {}),
    ("Overview, branch A (HTMX)", "/?branch=A", {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "panels"}),
)
FAILED_PANEL = b'class="panel-error"'


@dataclass
class PageFigures:
    label: str
    path: str
    headers: dict[str, str]
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    size: int = 0

    @property
    def passed(self) -> bool:
        return percentile(self.cold, 50) <= TARGET_P50_MS


def viewer_client():
    """A test Client signed in as a viewer without a branch scope (sees every branch)."""
    import secrets

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(username="bench-pages-viewer")
    user.set_password(secrets.token_urlsafe(16))
    user.save()
    user.groups.add(Group.objects.get(name="viewer"))
    # HTTP_HOST: a real host name from ALLOWED_HOSTS (the Client's default "testserver" is not one).
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def datasource_present(name: str) -> int:
    """Rows already published in `name` (0 when it does not exist)."""
    from analytics.catalogue import datasource_snapshot

    snapshot = datasource_snapshot(name=name)
    return sum(segment.rows for segment in snapshot.segments) if snapshot is not None else 0


def fetch(client, page: PageFigures) -> float:
    started = time.perf_counter()
    response = client.get(page.path, **page.headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{page.label}: HTTP {response.status_code}")
    if FAILED_PANEL in response.content:
        raise SystemExit(f"{page.label}: a panel failed to load; see the log above")
    page.size = len(response.content)
    return elapsed


def pages_measure(client, repeat: int) -> list[PageFigures]:
    """Round-robin over the pages, so a burst of load on the shared machine lands on all of them."""
    from django.core.cache import cache

    figures = [PageFigures(label, path, headers) for label, path, headers in PAGES]
    for round_number in range(WARMUP_RUNS + repeat):
        for page in figures:
            cache.clear()  # the results of run_query: every run does the real work
            elapsed = fetch(client, page)
            if round_number >= WARMUP_RUNS:
                page.cold.append(elapsed)
    for _ in range(repeat):
        for page in figures:
            page.warm.append(fetch(client, page))  # served from the result cache
    return figures


def profile_report(client, page: PageFigures, repeat: int, lines: int = 30) -> str:
    from django.core.cache import cache

    profiler = cProfile.Profile()
    for _ in range(repeat):
        cache.clear()
        profiler.enable()
        client.get(page.path, **page.headers)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def report(figures: list[PageFigures], *, rows: int, repeat: int) -> tuple[list[str], bool]:
    lines = [
        "",
        f"server time per page, milliseconds: Django test Client GET as a viewer, {rows:,} rows in "
        f"'{DATASOURCE}', {repeat} runs each; cold = result cache cleared before every request",
        "",
        f"{'page':<28} {'cold p50':>9} {'cold p95':>9} {'warm p50':>9} {'KB':>6}  target p50 ≤ {TARGET_P50_MS:.0f} ms",
    ]
    for page in figures:
        lines.append(
            f"{page.label:<28} {percentile(page.cold, 50):>9.1f} {percentile(page.cold, 95):>9.1f} "
            f"{percentile(page.warm, 50):>9.1f} {page.size / 1024:>6.0f}  {'PASS' if page.passed else 'MISS'}"
        )
    passed = all(page.passed for page in figures)
    misses = [page.label for page in figures if not page.passed]
    lines += ["", "Target: " + ("PASS, every page" if passed else f"MISS: {', '.join(misses)}")]
    return lines, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--var-dir", type=Path, help="use (and keep) this VAR_DIR; reuse its data if loaded")
    parser.add_argument("--keep", action="store_true", help="keep the temporary VAR_DIR and print its path")
    parser.add_argument("--profile", action="store_true", help="cProfile the slowest page even if all pass")
    args = parser.parse_args()

    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="bench-pages-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    keep = args.keep or args.var_dir is not None
    try:
        django_start(var_dir)
        from django.core.management import call_command

        call_command("collectstatic", interactive=False, verbosity=0)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; VAR_DIR {var_dir}")
        present = datasource_present(DATASOURCE)
        if present == args.rows:
            print(f"reusing the {present:,} rows already in '{DATASOURCE}'")
        elif present:
            raise SystemExit(
                f"'{DATASOURCE}' in {var_dir} has {present:,} rows, not {args.rows:,}: use another --var-dir"
            )
        else:
            print(f"loading {args.rows:,} generated rows into '{DATASOURCE}' through `manage.py ingest` …", flush=True)
            load = datasource_load(name=DATASOURCE, rows=args.rows, seed=args.seed, workdir=var_dir)
            print(
                f"  generated {load.generate_s:.1f} s, Parquet {load.write_s:.1f} s, ingest {load.ingest_s:.1f} s",
                flush=True,
            )
        client = viewer_client()
        print(f"timing {len(PAGES)} pages × {args.repeat} runs …", flush=True)
        figures = pages_measure(client, args.repeat)
        lines, passed = report(figures, rows=args.rows, repeat=args.repeat)
        print("\n".join(lines))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        if args.profile or not passed:
            slowest = max(figures, key=lambda page: percentile(page.cold, 50))
            print(f"\ncProfile of {slowest.label} ({slowest.path}), {args.repeat} cold runs:")
            print(profile_report(client, slowest, args.repeat))
        return 0 if passed else 1
    finally:
        if keep:
            print(f"kept {var_dir}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(var_dir)


if __name__ == "__main__":
    sys.exit(main())
