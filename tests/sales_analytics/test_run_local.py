"""`make run` (bin/run-local) stops when a supervisor stops its process group, as systemd does.

The whole group got SIGTERM, the django-q2 cluster's worker processes with it; the cluster then
waited for them forever and `make run` never exited. It also gives its address only once it
answers there, and stops everything it started when it is killed outright.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 120
STOP_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every process started from `pid`, by parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = set(), [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _make_run_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "S3_", "REDIS_", "DRUID_"))},
        "VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
        "SECRET_KEY": "run-local-test",
        "WEB_WORKERS": "1",
        "Q_WORKERS": "1",
    }


@contextlib.contextmanager
def _make_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, set[int]]]:
    """bin/run-local started in a process group of its own, answering; with every process it started."""
    port = _free_port()
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            ["bin/run-local"],
            cwd=ROOT,
            env=_make_run_env(tmp_path, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started: set[int] = set()
        try:
            deadline = time.monotonic() + START_SECONDS
            while f"running on http://127.0.0.1:{port}/" not in log_path.read_text():
                if time.monotonic() > deadline or run.poll() is not None:
                    pytest.fail(f"make run gave no address within {START_SECONDS} s: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            # The address was given before gunicorn had bound the port.
            assert requests.get(f"http://127.0.0.1:{port}/api/health", timeout=10).status_code < 500
            time.sleep(3)  # the cluster's workers are up
            started = _descendants(run.pid)
            assert any("qcluster" in _cmdline(pid) for pid in started)
            yield run, started
        finally:
            for pid in _descendants(run.pid) | started | {run.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _left_running(started: set[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [pid for pid in started if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.slow
def test_make_run_stops_when_its_process_group_is_told_to(tmp_path: Path) -> None:
    with _make_run(tmp_path) as (run, started):
        os.killpg(run.pid, signal.SIGTERM)  # what a supervisor does: the whole group

        run.wait(timeout=STOP_SECONDS)
        assert not _left_running(started, within=2), "still running after make run stopped"


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [True, False], ids=["its-process-group", "it-alone"])
def test_everything_stops_when_make_run_is_killed_outright(tmp_path: Path, whole_group: bool) -> None:
    # A supervisor that gives up waiting kills the group: the cluster, in a session of its own,
    # went on running, orphaned. Killed alone, gunicorn went on serving the port too, and the next
    # `make run` failed with "Address already in use".
    with _make_run(tmp_path) as (run, started):
        if whole_group:
            os.killpg(run.pid, signal.SIGKILL)
        else:
            os.kill(run.pid, signal.SIGKILL)

        run.wait(timeout=STOP_SECONDS)
        assert not _left_running(started, within=STOP_SECONDS), [_cmdline(pid) for pid in started if _alive(pid)]


def test_a_port_in_use_is_refused_at_once_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run(
            ["bin/run-local"],
            cwd=ROOT,
            env=_make_run_env(tmp_path, port),
            capture_output=True,
            text=True,
            timeout=START_SECONDS,
            check=False,
        )
    assert completed.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in completed.stderr
    assert f"choose another port: PORT={port + 1} make run" in completed.stderr
    assert "running on" not in completed.stdout
