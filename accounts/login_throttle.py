"""Failed logins, counted per username and per client address in the shared cache.

Past LOGIN_THROTTLE_USER_FAILURES failures for one username, or LOGIN_THROTTLE_IP_FAILURES from
one address, within LOGIN_THROTTLE_SECONDS, further attempts are refused (right password or not)
until that window, which starts at the first failure, has passed. The address limit is higher:
an office behind one address shares it.
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

_KEY_PREFIX = "login-failures"


def client_address(request: HttpRequest | None) -> str:
    """The caller's address: the connection's, or behind TRUSTED_PROXY_COUNT proxies that each append
    to X-Forwarded-For, the entry the outermost one appended (earlier entries are the client's to
    forge). Without that setting the header is not trusted at all: anyone reaching the server
    directly could write any address into it."""
    if request is None:
        return ""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [entry.strip() for entry in request.headers.get("X-Forwarded-For", "").split(",")]
    if proxies > 0 and len(forwarded) >= proxies and forwarded[-proxies]:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def _key(kind: str, value: str) -> str:
    # Hashed: usernames and addresses are caller-supplied text, not every cache accepts any key.
    return f"{_KEY_PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


def _keys_and_limits(*, username: str, address: str) -> list[tuple[str, int]]:
    return [
        (_key("user", username.casefold()), settings.LOGIN_THROTTLE_USER_FAILURES),
        (_key("address", address), settings.LOGIN_THROTTLE_IP_FAILURES),
    ]


def _failures(key: str, now: float) -> tuple[int, float]:
    """(failures, end of their window); the window's end is kept with the count because not every
    cache backend's incr() keeps an entry's expiry (the file cache's sets it anew)."""
    count, window_end = cache.get(key, (0, 0.0))
    return (count, window_end) if window_end > now else (0, now + settings.LOGIN_THROTTLE_SECONDS)


def login_throttled(*, username: str, address: str) -> bool:
    """Whether this username or address has used up its failed attempts for now."""
    now = time.time()
    return any(_failures(key, now)[0] >= limit for key, limit in _keys_and_limits(username=username, address=address))


def login_failure_record(*, username: str, address: str) -> None:
    now = time.time()
    for key, _ in _keys_and_limits(username=username, address=address):
        count, window_end = _failures(key, now)
        cache.set(key, (count + 1, window_end), timeout=math.ceil(window_end - now))


def login_failures_clear(*, username: str) -> None:
    """A successful login forgives the username's failures (not the address's)."""
    cache.delete(_key("user", username.casefold()))
