"""Batches read ahead and written behind in threads: same items, errors surface, nothing leaks."""

import threading
import time

import pytest

from ingestion.overlap import BackgroundConsumer, prefetched


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_prefetched_yields_every_item_in_order() -> None:
    assert list(prefetched(lambda: iter(range(50)))) == list(range(50))


def test_prefetched_reads_in_another_thread_one_item_ahead() -> None:
    produced: list[tuple[int, str]] = []

    def items():
        for number in range(5):
            produced.append((number, threading.current_thread().name))
            yield number

    batches = prefetched(items)
    assert next(batches) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [name for _, name in produced] == ["ingest-read", "ingest-read"]  # item 1 read while 0 is in use
    batches.close()


def test_prefetched_raises_the_readers_error_in_the_caller() -> None:
    def items():
        yield 1
        raise ValueError("row 7 cannot be split")

    batches = prefetched(items)
    assert next(batches) == 1
    with pytest.raises(ValueError, match="row 7"):
        next(batches)
    assert not _threads_named("ingest-read")


def test_closing_early_stops_the_reader_and_closes_its_source() -> None:
    closed = threading.Event()

    def items():
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    batches = prefetched(items)
    assert next(batches) == 0
    batches.close()
    assert closed.is_set()
    assert not _threads_named("ingest-read")


def test_background_consumer_consumes_everything_before_close_returns() -> None:
    seen: list[int] = []
    sink = BackgroundConsumer(lambda item: (time.sleep(0.001), seen.append(item)), name="test-write")
    for number in range(30):
        sink.put(number)
    sink.close()
    assert seen == list(range(30))


def test_background_consumer_error_surfaces_and_never_hangs() -> None:
    def consume(item: int) -> None:
        if item == 3:
            raise OSError("disk full")

    sink = BackgroundConsumer(consume, name="test-write")
    with pytest.raises(OSError, match="disk full"):
        for number in range(100):  # the consumer stopped at 3: later puts must not block forever
            sink.put(number)
    with pytest.raises(OSError, match="disk full"):
        sink.close()
    sink.close(raise_failure=False)  # the caller handling its own error is not interrupted


def test_prefetched_builds_at_most_one_item_ahead() -> None:
    # Each item is a large batch: a second one built ahead would be memory held for nothing.
    produced: list[int] = []

    def items():
        for number in range(10):
            produced.append(number)
            yield number

    batches = prefetched(items)
    assert next(batches) == 0
    time.sleep(0.3)  # ample time for a reader that does not wait to build several more
    assert produced == [0, 1]
    assert next(batches) == 1
    time.sleep(0.3)
    assert produced == [0, 1, 2]
    batches.close()


def test_prefetched_raises_when_the_source_cannot_even_start() -> None:
    def make_items():
        raise FileNotFoundError("raw file gone")

    with pytest.raises(FileNotFoundError, match="raw file gone"):
        next(prefetched(make_items))
    assert not _threads_named("ingest-read")


def test_background_consumer_closed_from_its_own_thread_neither_hangs_nor_raises() -> None:
    # A garbage-collection finalizer may run close() inside the consumer thread itself.
    done = threading.Event()
    box: list[BackgroundConsumer] = []

    def consume(item: int) -> None:
        box[0].close()
        done.set()

    sink = BackgroundConsumer(consume, name="test-write")
    box.append(sink)
    sink.put(1)
    assert done.wait(5)
    sink.close()
    assert not _threads_named("test-write")
