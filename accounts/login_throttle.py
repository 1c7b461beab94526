"""Failed logins, counted per username and per client address in the shared cache.

Past LOGIN_THROTTLE_USER_FAILURES failures for one username, or LOGIN_THROTTLE_IP_FAILURES from
one address, within LOGIN_THROTTLE_SECONDS, further attempts are refused (right password or not)
until that window, which starts at the first failure, has passed. The address limit is higher:
an office behind one address shares it.

An attempt is counted as a failure before its password is checked, with the cache's atomic add()
and incr(), and given back if it succeeds: reading the count, checking the password, then writing
count + 1 let every attempt sent in parallel through on the same reading.
"""

import contextlib
import hashlib

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


def _user_key(username: str) -> str:
    return _key("user", username.casefold())


def _address_key(address: str) -> str:
    return _key("address", address)


def _attempt_count(key: str) -> int:
    """Count one more attempt under `key` and return the new count; atomic."""
    window = settings.LOGIN_THROTTLE_SECONDS
    for _ in range(2):
        # The first failure starts the window; add() does nothing to a window already running.
        cache.add(key, 0, timeout=window)
        try:
            count = cache.incr(key)
        except ValueError:  # the window ended between add() and incr(): start the next one
            continue
        if count == 1:
            # Redis' incr() recreates, without expiry, a key that expired just after its existence
            # check; the count that opens a window makes sure the window closes.
            cache.touch(key, window)
        return count
    raise RuntimeError("The cache lost a login-failure counter twice in a row; is CACHES a shared cache?")


def _attempt_uncount(key: str) -> None:
    with contextlib.suppress(ValueError):  # its window ended meanwhile: nothing to give back
        cache.decr(key)


def login_attempt_start(*, username: str, address: str) -> bool:
    """Count this attempt as a failure of `username` and `address` in advance; False (and nothing
    counted) when either has used up its failed attempts for now."""
    counted: list[str] = []
    for key, limit in (
        (_user_key(username), settings.LOGIN_THROTTLE_USER_FAILURES),
        (_address_key(address), settings.LOGIN_THROTTLE_IP_FAILURES),
    ):
        counted.append(key)
        if _attempt_count(key) > limit:
            # A refused attempt checks no password: it is not a failure.
            for refused_key in counted:
                _attempt_uncount(refused_key)
            return False
    return True


def login_attempt_succeeded(*, username: str, address: str) -> None:
    """A started attempt logged in: it was no failure of its address, and it forgives the username's
    failures (not the address's)."""
    _attempt_uncount(_address_key(address))
    login_failures_clear(username=username)


def login_failures_clear(*, username: str) -> None:
    """Forgive the username's failures (not an address's): a login, or a password an administrator set."""
    cache.delete(_user_key(username))
