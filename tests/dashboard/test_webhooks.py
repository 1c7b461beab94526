"""An alert webhook is sent to the address its check found, not to a second look-up of its name."""

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from dashboard.models import AlertEvent, AlertRule, Notification
from dashboard.notifications import notification_send

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.215.14"
PRIVATE = "10.0.0.5"
UNROUTABLE = "192.0.2.1"  # TEST-NET-1: nothing answers there

_real_getaddrinfo = socket.getaddrinfo


def rebinding_resolver(monkeypatch, host: str, answers: list[str]) -> list[str]:
    """Make `host` resolve to answers[0], then answers[1] for every later look-up (a DNS server
    rebinding the name between the check and the connection); returns the look-ups made."""
    lookups: list[str] = []

    def getaddrinfo(name, port, *args, **kwargs):
        if name != host:
            return _real_getaddrinfo(name, port, *args, **kwargs)
        lookups.append(name)
        address = answers[min(len(lookups), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def webhook_notification(url: str) -> Notification:
    rule = AlertRule.objects.create(name="Spike watch", kind=AlertRule.Kind.ANOMALY, webhook_url=url)
    event = AlertEvent.objects.create(rule=rule, key="branch=A", message="Revenue 3000 vs 1000 expected")
    return Notification.objects.create(event=event, channel=Notification.Channel.WEBHOOK, target=url)


def test_a_name_rebound_to_a_private_address_after_the_check_is_never_connected_to(monkeypatch) -> None:
    rebinding_resolver(monkeypatch, "hooks.example.com", [PUBLIC, PRIVATE])
    connections: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        if address[1] != 443:  # anything else this process needs (a database server) connects as usual
            return real_connect(sock, address)
        connections.append(address[:2])
        raise ConnectionRefusedError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", connect)

    notification = notification_send(notification=webhook_notification("https://hooks.example.com/alert"))

    assert connections == [(PUBLIC, 443)]
    assert notification.status == Notification.Status.FAILED
    assert "hooks.example.com" in notification.last_error


def test_a_name_that_resolves_to_a_private_address_too_is_refused_before_any_connection(monkeypatch) -> None:
    def getaddrinfo(name, port, *args, **kwargs):
        if name != "hooks.example.com":
            return _real_getaddrinfo(name, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
            for address in (PUBLIC, PRIVATE)
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    notification = notification_send(notification=webhook_notification("https://hooks.example.com/alert"))
    assert notification.status == Notification.Status.FAILED
    assert f"is at {PRIVATE}, a private, loopback or link-local address" in notification.last_error


# --- The request still speaks to the name: Host header, TLS server name, certificate ----------------


class _Receiver(BaseHTTPRequestHandler):
    hosts: list[str] = []
    payloads: list[dict] = []

    def do_POST(self) -> None:
        type(self).hosts.append(self.headers["Host"])
        type(self).payloads.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def _self_signed_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    certificate, key = folder / f"{name}.pem", folder / f"{name}.key"
    subject = ["-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"]
    files = ["-keyout", str(key), "-out", str(certificate)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
    )
    return certificate, key


@pytest.fixture
def tls_receiver(tmp_path: Path, settings) -> Iterator[tuple[int, Path, list[str | None]]]:
    """An HTTPS server on loopback presenting a certificate for hooks.example.test; yields its port,
    that certificate and the TLS server names clients asked for."""
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on loopback
    settings.ALERT_WEBHOOK_TIMEOUT_SECONDS = 2
    certificate, key = _self_signed_certificate(tmp_path, "hooks.example.test")
    server_names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)
    _Receiver.hosts, _Receiver.payloads = [], []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, certificate, server_names
    server.shutdown()


def test_the_request_keeps_the_name_for_host_server_name_and_certificate(tls_receiver, monkeypatch) -> None:
    port, certificate, server_names = tls_receiver
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    lookups = rebinding_resolver(monkeypatch, "hooks.example.test", ["127.0.0.1", UNROUTABLE])

    notification = notification_send(notification=webhook_notification(f"https://hooks.example.test:{port}/alert"))

    assert notification.status == Notification.Status.SENT, notification.last_error
    assert lookups == ["hooks.example.test"]
    assert server_names == ["hooks.example.test"]
    assert _Receiver.hosts == [f"hooks.example.test:{port}"]
    assert _Receiver.payloads[0]["alert"]["rule"] == "Spike watch"


def test_the_certificate_is_checked_against_the_name(tls_receiver, monkeypatch, tmp_path: Path) -> None:
    port, _, _ = tls_receiver
    # Trusted, but for another name: the connection to the checked address must still fail.
    other_certificate, _ = _self_signed_certificate(tmp_path, "other.example.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_certificate))
    rebinding_resolver(monkeypatch, "hooks.example.test", ["127.0.0.1"])

    notification = notification_send(notification=webhook_notification(f"https://hooks.example.test:{port}/alert"))

    assert notification.status == Notification.Status.FAILED
    assert "SSLError" in notification.last_error
    assert _Receiver.payloads == []
