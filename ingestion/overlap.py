"""Overlap reading, transforming and writing of batches on separate threads.

Polars and PyArrow release the GIL while they parse, compute and encode, so reading batch n+1
and writing batch n-1 in threads while batch n is transformed keeps both cores busy. Each queue
holds one item: memory grows by at most one batch per stage, and a failure in any thread is
raised in the caller's thread.
"""

import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")

_DONE = object()
_POLL_SECONDS = 0.1


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(make_items: Callable[[], Iterator[Item]]) -> Iterator[Item]:
    """The items of `make_items()`, produced one ahead in a thread (in the caller's context, so
    context variables such as the shared Excel sheets are seen there too).

    Closing the returned generator early stops the thread and closes the source iterator there.
    """
    handoff: queue.Queue = queue.Queue(maxsize=1)
    # One item may exist ahead of the caller's: the next one is only read once the caller took
    # this one (a queue alone would let a third be built while the second waits to be taken).
    ahead = threading.Semaphore(1)
    stop = threading.Event()
    context = contextvars.copy_context()

    def produce() -> None:
        items: Iterator[Item] | None = None
        try:
            items = make_items()
            while _acquire(ahead, stop):
                item = next(items, _DONE)
                if not _put(handoff, item, stop) or item is _DONE:
                    return
        except BaseException as error:  # handed to the consumer, who re-raises it
            _put(handoff, _Failure(error), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=context.run, args=(produce,), name="ingest-read", daemon=True)
    thread.start()
    try:
        while True:
            item = _take(handoff, thread)
            ahead.release()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _take(handoff: queue.Queue, thread: threading.Thread) -> object:
    """The next item; a producer that ended without handing one over (which it never should)
    raises here instead of leaving the caller waiting forever."""
    while True:
        try:
            return handoff.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if not thread.is_alive() and handoff.empty():
                raise RuntimeError("the reading thread ended without a result") from None


def _acquire(slot: threading.Semaphore, stop: threading.Event) -> bool:
    """Take `slot` unless the consumer stopped; False when it did."""
    while not stop.is_set():
        if slot.acquire(timeout=_POLL_SECONDS):
            return True
    return False


def _put(handoff: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Hand `item` over unless the consumer stopped; False when it did."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


class BackgroundConsumer(Generic[Item]):
    """Feeds items to `consume` in a thread, one behind the caller.

    `put` and `close` raise the consumer's error, if any; `close` waits for the last item.
    """

    def __init__(self, consume: Callable[[Item], None], *, name: str) -> None:
        self._consume = consume
        self._handoff: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        self._raise_failure()
        self._offer(item)
        self._raise_failure()

    def close(self, *, raise_failure: bool = True) -> None:
        """Wait until every item put has been consumed, then raise the consumer's error if one
        failed (unless the caller is already handling an error of its own)."""
        if threading.current_thread() is self._thread:
            # Called from the consumer itself (a finalizer run by garbage collection there):
            # it cannot wait for itself, so it only asks to stop after the queued items.
            with contextlib.suppress(queue.Full):
                self._handoff.put_nowait(_DONE)
            return
        self._offer(_DONE)
        self._thread.join()
        if raise_failure:
            self._raise_failure()

    def _offer(self, item: object) -> None:
        # A consumer that failed stops taking items: waiting on a full queue would then hang.
        while self._thread.is_alive():
            try:
                self._handoff.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while True:
            item = self._handoff.get()
            if item is _DONE:
                return
            try:
                self._consume(item)
            except BaseException as error:  # re-raised in the caller's thread
                self._error = error
                return

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
