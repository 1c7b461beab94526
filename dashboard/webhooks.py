"""Where alert webhooks may point.

The worker posts to a rule's webhook URL, so a URL naming an internal address would let whoever
writes a rule make the server call its own network (the database, a cloud metadata service):
only http(s) to public addresses is allowed unless ALERT_WEBHOOK_ALLOW_PRIVATE says otherwise.
It is checked when a rule is saved and again before each send, since a name may resolve
elsewhere by then.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

WEBHOOK_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookRefused(Exception):
    """A webhook URL the server must not call; the message says why, for the rule's author."""


def webhook_url_check(url: str) -> None:
    """Raise WebhookRefused unless `url` is http(s) to a host whose every address may be called."""
    parts = urlsplit(url)
    if parts.scheme not in WEBHOOK_SCHEMES:
        raise WebhookRefused(f"A webhook URL must start with http:// or https:// (got {url!r}).")
    if not parts.hostname:
        raise WebhookRefused(f"The webhook URL {url!r} names no host.")
    if settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        return
    for address in _host_addresses(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]):
        if not _address_public(address):
            raise WebhookRefused(
                f"The webhook host {parts.hostname} is at {address}, a private, loopback or link-local address; "
                "alerts are sent to public addresses only (an administrator can allow internal ones with "
                "ALERT_WEBHOOK_ALLOW_PRIVATE=true)."
            )


def webhook_url_validate(url: str) -> None:
    """Model and form validator for `webhook_url_check`."""
    if not url:
        return
    try:
        webhook_url_check(url)
    except WebhookRefused as exc:
        raise ValidationError(str(exc), code="webhook_refused") from None


def _host_addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"The webhook host {host} could not be found ({exc}); check the URL.") from None
    # The scope of an IPv6 link-local address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(sockaddr[0].split("%", 1)[0]) for *_, sockaddr in found]


def _address_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast
