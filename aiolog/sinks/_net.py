"""Connections to a collector for the syslog sinks: open with a deadline, send without blocking.

Every call here returns by a deadline: a collector that is down, slow or gone never holds the
owner thread longer than the bound its caller gave. Sockets are non-blocking once open; waits
are ``poll()`` calls with what is left of the deadline.
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import ssl
import time
from typing import Final, Union

Address = Union[tuple[str, int], str]
READABLE: Final = getattr(select, "POLLIN", 1)  # what wait() waits for (Windows has no poll)
WRITABLE: Final = getattr(select, "POLLOUT", 4)

_BACKOFF_FIRST: Final = 0.05  # seconds before the first reconnection attempt after a failure
_BACKOFF_MAX: Final = 2.0  # the cap: a collector back up is found within about this long
# Errors that mean "the collector is not there (now)": wait and try again, never drop.
DOWN_ERRNOS: Final = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ENOENT,
    errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
    errno.ENETDOWN, errno.ESHUTDOWN, errno.EADDRNOTAVAIL})


class Backoff:
    """Capped exponential backoff with full jitter, so restarted clients do not come in step."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.next_try = 0.0

    def failed(self) -> None:
        """The first failure after a success retries at once (a dead socket is replaced at
        once); each further one waits twice as long as the last, up to the cap."""
        self.next_try = time.monotonic() + self.delay * random.uniform(0.5, 1.0)
        self.delay = min(max(self.delay * 2, _BACKOFF_FIRST), _BACKOFF_MAX)

    def succeeded(self) -> None:
        self.delay = 0.0
        self.next_try = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_try


def wait(sock: socket.socket, events: int, deadline: float) -> bool:
    """Wait until ``sock`` is ready for ``events`` (``READABLE``/``WRITABLE``) or the
    deadline passes; True when ready (an error or hang-up counts as ready: the next call says)."""
    if not hasattr(select, "poll"):  # Windows
        left = max(deadline - time.monotonic(), 0.0)
        reading = [sock] if events & READABLE else []
        writing = [sock] if events & WRITABLE else []
        return any(select.select(reading, writing, [sock], left))
    poller = select.poll()
    poller.register(sock.fileno(), events)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            return bool(poller.poll(left * 1000))
        except InterruptedError:
            continue


def open_stream(address: Address, *, ssl_context: ssl.SSLContext | None,
                server_hostname: str | None, timeout: float) -> socket.socket:
    """A connected TCP (or unix stream) socket, TLS-wrapped when ``ssl_context`` is given,
    handshake done; non-blocking on return. Raises ``OSError`` after at most ``timeout``."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    else:
        # create_connection resolves the name on this (owner) thread; a blocking resolver is
        # the one wait here that the timeout does not bound.
        sock = socket.create_connection(address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if ssl_context is not None:
        try:
            sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname)  # handshakes
        except BaseException:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


def open_datagram(address: Address) -> socket.socket:
    """A connected UDP (or unix datagram) socket: a connected one hears ICMP "port
    unreachable" as ``ECONNREFUSED`` on a later send, so a stopped collector is noticed."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        target: object = address
    else:
        family, kind, proto, _, target = socket.getaddrinfo(
            address[0], address[1], type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.connect(target)  # type: ignore[arg-type]
    except BaseException:
        sock.close()
        raise
    return sock


def peer_closed(sock: socket.socket) -> bool:
    """Whether the collector closed a stream connection we only send on, as rsyslog's omfwd
    checks before each send (``recv(MSG_PEEK|MSG_DONTWAIT)``; ``nsd_ptcp.c``, CheckConnection).

    For TLS the raw bytes are peeked under the TLS layer: nothing at all, or an end of file,
    says it all; a TLS record (a session ticket, a close_notify) is then read through TLS.
    """
    try:
        # The socket is non-blocking already; MSG_DONTWAIT (not on Windows) says it again.
        peeked = socket.socket.recv(sock, 1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    if not peeked:
        return True
    if isinstance(sock, ssl.SSLSocket):
        try:
            return sock.recv(4096) == b""
        except ssl.SSLWantReadError:
            return False  # a post-handshake record only: still open
        except (ssl.SSLError, OSError):
            return True
    return False  # a plain syslog collector sends nothing: data is odd, not fatal


def send_some(sock: socket.socket, data: memoryview, deadline: float) -> int:
    """Send from ``data`` until all of it is sent or the deadline passes; how much was sent.

    TLS must retry a write with the same bytes after "want write": the slices are cut the
    same way every time, so a retry is always the same bytes.
    """
    sent = 0
    step = 16384
    while sent < len(data):
        try:
            sent += sock.send(data[sent : sent + step])
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            if not wait(sock, WRITABLE, deadline):
                break
    return sent


def is_down(exc: BaseException) -> bool:
    """Whether an error means the collector is unreachable (wait quietly), not a mistake to
    report (a certificate that does not verify is reported: waiting would not fix it)."""
    if isinstance(exc, ssl.SSLCertVerificationError) or _is_tls_alert(exc):
        return False
    if isinstance(exc, (ssl.SSLError, socket.timeout, ConnectionError, EOFError)):
        return True
    return isinstance(exc, OSError) and exc.errno in DOWN_ERRNOS


def _is_tls_alert(exc: BaseException) -> bool:
    """Whether the server refused our TLS session with an alert (it wants a client
    certificate, or does not accept ours): a mistake in the configuration, not an outage.
    Under TLS 1.3 such an alert comes after our side of the handshake is done, on the first
    read (OpenSSL's reasons: ``TLSV13_ALERT_CERTIFICATE_REQUIRED``, ``SSLV3_ALERT_BAD_...``)."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return isinstance(reason, str) and "_ALERT_" in reason


def close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def close_after_fork(sock: socket.socket | None) -> None:
    """Drop a socket inherited from the parent without touching the parent's session (no TLS
    close_notify, no shutdown: the parent's connection stays as it was)."""
    if sock is not None:
        try:
            os.close(sock.detach())
        except OSError:
            pass
