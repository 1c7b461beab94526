"""The embedded shape's file cache: add() and incr() lose nothing when processes and threads race."""

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from sales_analytics.file_cache import AtomicFileBasedCache

WORKERS = 6
INCREMENTS_EACH = 40


def _cache(folder: Path) -> AtomicFileBasedCache:
    return AtomicFileBasedCache(str(folder), {})


def _count_up(folder: str, start) -> None:
    cache = _cache(Path(folder))  # one per worker, as each web process and thread has its own
    start.wait()
    for _ in range(INCREMENTS_EACH):
        cache.incr("counter")


def _add_once(folder: str, start, wins) -> None:
    cache = _cache(Path(folder))
    start.wait()
    if cache.add("window", "opened", timeout=60):
        wins.put(1)


def test_it_is_the_default_cache_of_the_embedded_shape() -> None:
    if not settings.REDIS_URL:
        assert settings.CACHES["default"]["BACKEND"] == "sales_analytics.file_cache.AtomicFileBasedCache"


def test_parallel_threads_lose_no_increment(tmp_path: Path) -> None:
    _cache(tmp_path).set("counter", 0, timeout=60)
    start = threading.Barrier(WORKERS)
    threads = [threading.Thread(target=_count_up, args=(str(tmp_path), start)) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _cache(tmp_path).get("counter") == WORKERS * INCREMENTS_EACH


def test_parallel_processes_lose_no_increment(tmp_path: Path) -> None:
    _cache(tmp_path).set("counter", 0, timeout=60)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(WORKERS)
    processes = [context.Process(target=_count_up, args=(str(tmp_path), start)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * WORKERS
    assert _cache(tmp_path).get("counter") == WORKERS * INCREMENTS_EACH


def test_only_one_of_parallel_adds_wins(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    start, wins = context.Barrier(WORKERS), context.Queue()
    processes = [context.Process(target=_add_once, args=(str(tmp_path), start, wins)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    won = 0
    while not wins.empty():
        won += wins.get()
    assert won == 1


def test_incr_keeps_the_entrys_expiry(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.add("window", 0, timeout=1)
    assert cache.incr("window") == 1
    assert cache.incr("window", 2) == 3
    time.sleep(1.1)
    assert cache.get("window") is None


@pytest.mark.parametrize("timeout", [None, 0.01])
def test_incr_of_a_missing_or_expired_entry_is_a_value_error(tmp_path: Path, timeout: float | None) -> None:
    cache = _cache(tmp_path)
    if timeout is not None:
        cache.set("counter", 5, timeout=timeout)
        time.sleep(0.05)
    with pytest.raises(ValueError, match="not found"):
        cache.incr("counter")
