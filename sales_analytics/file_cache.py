"""The embedded shape's cache: Django's file cache, with add() and incr() atomic on one machine.

Django's file cache does both as a read followed by a write, so two processes (or threads)
counting at once both read 4 and both write 5, and its incr() gives the entry the default
timeout instead of keeping its own. Counters that must not lose a count (the login throttle)
rely on add() and incr() being atomic, as Redis' are in the scaled shape.
"""

import os
import pickle
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.files import locks

# Not a *.djcache file: clear() and culling leave it alone.
_LOCK_FILE_NAME = "atomic-operations.lock"


class AtomicFileBasedCache(FileBasedCache):
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Holds a lock every process and thread using this folder takes for add() and incr()."""
        self._createdir()
        # Each call opens its own file description, so the lock also excludes other threads.
        with open(os.path.join(self._dir, _LOCK_FILE_NAME), "ab") as lock_file:
            locks.lock(lock_file, locks.LOCK_EX)
            try:
                yield
            finally:
                locks.unlock(lock_file)

    def add(self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        with self._exclusive():
            return super().add(key, value, timeout, version)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        """Add `delta` to the value, keeping the entry's expiry; ValueError if there is no live entry."""
        with self._exclusive():
            expiry, value = self._read_entry(key, version)
            new_value = value + delta
            remaining = None if expiry is None else expiry - time.time()
            if remaining is not None and remaining <= 0:
                raise ValueError(f"Key '{key}' not found")
            self.set(key, new_value, timeout=remaining, version=version)
            return new_value

    def _read_entry(self, key: str, version: int | None) -> tuple[float | None, Any]:
        """(expiry as a time.time() value or None for never, value) of a live entry.

        Read as FileBasedCache.get() reads it (the expiry, then the compressed value), the expiry kept.
        """
        try:
            with open(self._key_to_file(key, version), "rb") as entry:
                expiry = pickle.load(entry)  # noqa: S301 (this cache's own file, as FileBasedCache reads it)
                if expiry is not None and expiry < time.time():
                    raise ValueError(f"Key '{key}' not found")
                return expiry, pickle.loads(zlib.decompress(entry.read()))  # noqa: S301 (likewise)
        except (FileNotFoundError, EOFError):
            raise ValueError(f"Key '{key}' not found") from None
