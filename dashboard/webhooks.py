"""Where alert webhooks may point.

The worker posts to a rule's webhook URL, so a URL naming an internal address would let whoever
writes a rule make the server call its own network (the database, a cloud metadata service):
only http(s) to public addresses is allowed unless ALERT_WEBHOOK_ALLOW_PRIVATE says otherwise.
It is checked when a rule is saved and again before each send, since a name may resolve
elsewhere by then; and the send connects to an address that check found, never to a second
look-up of the name, which a DNS server answering differently the second time ("rebinding")
could point at an internal address. The request keeps the name for its Host header, TLS
server name and certificate check.
"""

import functools
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WEBHOOK_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookRefused(Exception):
    """A webhook URL the server must not call; the message says why, for the rule's author."""


def webhook_url_check(url: str) -> None:
    """Raise WebhookRefused unless `url` is http(s) to a host whose every address may be called."""
    _webhook_target(url, resolve=not settings.ALERT_WEBHOOK_ALLOW_PRIVATE)


def webhook_post(*, url: str, payload: dict, timeout: float) -> requests.Response:
    """POST `payload` as JSON to `url`, connecting only to an address checked by this call; no redirect
    is followed (it would lead to an address nobody checked) and no proxy is used (it would resolve
    the name itself)."""
    addresses = _webhook_target(url, resolve=True)
    with requests.Session() as session:
        session.mount(f"{urlsplit(url).scheme}://", CheckedAddressAdapter(addresses))
        return session.post(url, json=payload, timeout=timeout, allow_redirects=False)


def _webhook_target(url: str, *, resolve: bool) -> tuple[IPAddress, ...]:
    """The addresses of `url`'s host, each allowed (public unless ALERT_WEBHOOK_ALLOW_PRIVATE), from one
    look-up; raise WebhookRefused otherwise. Without `resolve`, the URL's form only is checked."""
    parts = urlsplit(url)
    if parts.scheme not in WEBHOOK_SCHEMES:
        raise WebhookRefused(f"A webhook URL must start with http:// or https:// (got {url!r}).")
    if not parts.hostname:
        raise WebhookRefused(f"The webhook URL {url!r} names no host.")
    if not resolve:
        return ()
    addresses = _host_addresses(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
    for address in addresses:
        if not settings.ALERT_WEBHOOK_ALLOW_PRIVATE and not _address_public(address):
            raise WebhookRefused(
                f"The webhook host {parts.hostname} is at {address}, a private, loopback or link-local address; "
                "alerts are sent to public addresses only (an administrator can allow internal ones with "
                "ALERT_WEBHOOK_ALLOW_PRIVATE=true)."
            )
    return addresses


def webhook_url_validate(url: str) -> None:
    """Model and form validator for `webhook_url_check`."""
    if not url:
        return
    try:
        webhook_url_check(url)
    except WebhookRefused as exc:
        raise ValidationError(str(exc), code="webhook_refused") from None


def _host_addresses(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"The webhook host {host} could not be found ({exc}); check the URL.") from None
    # The scope of an IPv6 link-local address ("fe80::1%eth0") is not part of the address.
    addresses = (ipaddress.ip_address(sockaddr[0].split("%", 1)[0]) for *_, sockaddr in found)
    return tuple(dict.fromkeys(addresses))  # once each, in the resolver's order


def _address_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast


class _CheckedAddressConnection:
    """A urllib3 connection to one of `checked_addresses` instead of a fresh look-up of its host name.

    Everything else (Host header, TLS server name, certificate checked against the name) still
    comes from the URL's host.
    """

    def __init__(self, *args, checked_addresses: Sequence[IPAddress], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.checked_addresses = tuple(checked_addresses)

    def _new_conn(self) -> socket.socket:
        # As urllib3's own _new_conn, with the checked addresses (literals: no look-up) for the name.
        last_error: OSError | None = None
        for address in self.checked_addresses:
            try:
                return create_connection(
                    (str(address), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} ({address}) timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                last_error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection to {self.host}: {last_error}")


class _CheckedAddressHTTPConnection(_CheckedAddressConnection, HTTPConnection):
    pass


class _CheckedAddressHTTPSConnection(_CheckedAddressConnection, HTTPSConnection):
    pass


_CONNECTION_CLASSES = {"http": _CheckedAddressHTTPConnection, "https": _CheckedAddressHTTPSConnection}


class _CheckedAddressPoolManager(PoolManager):
    def __init__(self, *args, checked_addresses: Sequence[IPAddress], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.checked_addresses = tuple(checked_addresses)

    def _new_pool(self, scheme: str, host: str, port: int, request_context: dict | None = None) -> HTTPConnectionPool:
        # urllib3 documents _new_pool as the method to override to customise the pools it makes.
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = functools.partial(_CONNECTION_CLASSES[scheme], checked_addresses=self.checked_addresses)
        return pool


class CheckedAddressAdapter(HTTPAdapter):
    """A requests adapter whose connections go to `checked_addresses` only, and never through a proxy."""

    def __init__(self, checked_addresses: Sequence[IPAddress]) -> None:
        if not checked_addresses:
            raise ValueError("A checked-address adapter needs at least one address.")
        self.checked_addresses = tuple(checked_addresses)
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs) -> None:
        self.poolmanager = _CheckedAddressPoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            checked_addresses=self.checked_addresses,
            **pool_kwargs,
        )

    def send(self, request: requests.PreparedRequest, *args, proxies=None, **kwargs) -> requests.Response:
        # A proxy would look the name up again, wherever it points by then.
        return super().send(request, *args, proxies={}, **kwargs)
