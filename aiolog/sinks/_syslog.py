"""The syslog sink: each line of a chunk is one syslog message, framed and sent to a collector.

The handler builds every message on the caller (``aiolog._syslog_format``); a chunk's lines are
whole messages, without terminators, and ``encode()`` leaves them as text so that the chunk's
``offset`` counts characters of whole messages. This sink moves ``offset`` only to the end of a
message that is sent whole (for RELP: acknowledged), so a chunk kept after a failure resumes at
a message boundary and a message is never cut in two on the wire by a reconnection.

Framing per transport: UDP and unix datagram sockets carry one message per datagram; TCP, TLS
and unix stream sockets use RFC 6587 octet counting (``LEN SP MSG``), which keeps a multi-line
traceback one message where LF framing would split it; RELP (``_relp``) one frame per message.

The collector being down is no error: ``write()`` returns False ("not yet", the owner tries
again later) after at most ``_WRITE_BOUND``, and reconnects with capped, jittered backoff. Only
where the owner cannot wait (``rotate=False``: shutdown, exit, a caller writing itself after
close) does ``write()`` keep trying, up to ``delivery_timeout`` in all, then raise: the owner
counts what was not delivered in ``errors`` and reports it.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from bisect import bisect_right
from itertools import accumulate
from typing import Final

from .._queue import Chunk
from . import _net
from ._net import Address, Backoff

TRANSPORTS: Final = ("udp", "tcp", "tls", "relp", "unix")
_WRITE_BOUND: Final = 0.2  # seconds one patient write() may wait for the collector
_CONNECT_TIMEOUT: Final = 2.0  # seconds for a TCP connect plus TLS and RELP handshakes
DEFAULT_MAX_SIZE: Final = 8192  # rsyslog's default $MaxMessageSize


class Undelivered(OSError):
    """What ``write()`` raises when the owner cannot wait and ``delivery_timeout`` passed."""


class SyslogSink:
    """Sends syslog messages over UDP, TCP, TLS or a unix socket (RELP: ``RelpSink``)."""

    rotations = 0  # nothing rotates here; the owner reads it from every sink

    def __init__(self, address: Address, transport: str, *,
                 ssl_context: ssl.SSLContext | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 delivery_timeout: float = 10.0) -> None:
        self.address = address
        self.transport = transport
        self.ssl_context = ssl_context
        self.max_size = max_size
        self.delivery_timeout = delivery_timeout
        self.url = (f"unix:{address}" if isinstance(address, str)
                    else f"{transport}://{address[0]}:{address[1]}")
        self.reconnects = 0
        self.truncated = 0
        self._sock: socket.socket | None = None
        self._connections = 0
        self._backoff = Backoff()
        self._give_up_at: float | None = None  # while the owner cannot wait: when to stop
        self._stream = transport in ("tcp", "tls", "relp")  # "unix" decides at connect
        self._chunk: Chunk | None = None  # the chunk ``_messages`` holds, encoded
        self._encoded: list[bytes] = []
        self._out: memoryview | None = None  # stream: framed bytes not yet all sent
        self._out_ends: list[int] = []
        self._out_first = 0  # the message _out starts with
        self._out_sent = 0

    def __repr__(self) -> str:
        return self.url

    # -- what the owner calls ------------------------------------------------------------------

    def encode(self, text: str) -> str:
        return text  # messages are encoded one by one in _messages(), where they are cut

    def stats(self) -> dict[str, int]:
        return {"connected": self._sock is not None, "reconnects": self.reconnects,
                "truncated": self.truncated}

    def write(self, chunk: Chunk, *, rotate: bool = True) -> bool:
        """Send the chunk's messages from ``offset`` on; True once all are delivered."""
        if not chunk.lines:
            return True
        if rotate:  # the owner can wait: never hold it long
            deadline, impatient = time.monotonic() + _WRITE_BOUND, False
        else:
            if self._give_up_at is None:
                self._give_up_at = time.monotonic() + self.delivery_timeout
            deadline, impatient = self._give_up_at, True
        while True:
            if self._sock is None and not self._connect(deadline, impatient):
                if impatient and time.monotonic() < deadline:
                    continue
                break
            try:
                self._send(chunk, deadline)
            except OSError as exc:
                if not _net.is_down(exc):
                    raise
                self._lost_connection()
                continue  # replace a dead connection at once
            if chunk.done:
                self._give_up_at = None
                self._backoff.succeeded()
                return True
            if time.monotonic() >= deadline:
                break
        if impatient:
            raise Undelivered(self._undelivered(chunk))
        return False

    def close(self) -> None:
        _net.close_quietly(self._sock)
        self._sock = None

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's connection is the parent's; open our own."""
        _net.close_after_fork(self._sock)
        self._sock = None
        self._chunk = None
        self._out = None
        self._give_up_at = None
        self._connections = self.reconnects = self.truncated = 0

    # -- connecting ----------------------------------------------------------------------------

    def _connect(self, deadline: float, impatient: bool) -> bool:
        """Open a connection unless backing off; False (and back off further) on failure."""
        if not self._backoff.due():
            if not impatient:
                return False
            time.sleep(max(0.0, min(self._backoff.next_try, deadline) - time.monotonic()))
            if not self._backoff.due():
                return False
        try:
            self._sock = self._open(min(_CONNECT_TIMEOUT, max(deadline - time.monotonic(), 0.05)))
        except OSError as exc:
            if not _net.is_down(exc):
                raise
            self._sock = None
            self._backoff.failed()
            return False
        self._connections += 1
        self.reconnects = self._connections - 1
        return True

    def _open(self, timeout: float) -> socket.socket:
        host = None if isinstance(self.address, str) else self.address[0]
        if self.transport in ("tcp", "tls"):
            return _net.open_stream(self.address, ssl_context=self.ssl_context,
                                    server_hostname=host, timeout=timeout)
        if self.transport == "udp":
            return _net.open_datagram(self.address)
        try:  # "unix": a datagram socket like /dev/log, or else a stream one (as SysLogHandler)
            sock = _net.open_datagram(self.address)
            self._stream = False
            return sock
        except OSError as exc:
            if exc.errno != errno.EPROTOTYPE:
                raise
        self._stream = True
        return _net.open_stream(self.address, ssl_context=None, server_hostname=None,
                                timeout=timeout)

    def _lost_connection(self) -> None:
        self._backoff.failed()
        _net.close_quietly(self._sock)
        self._sock = None
        self._out = None  # a frame half sent died with the connection: resend it whole

    # -- sending -------------------------------------------------------------------------------

    def _messages(self, chunk: Chunk) -> list[bytes]:
        """The chunk's messages as bytes, cut to ``max_size`` (each counted once)."""
        if chunk is not self._chunk:
            self._chunk = chunk
            self._encoded = [self._encode(line) for line in chunk.lines]
            self._out = None
        return self._encoded

    def _encode(self, line: str) -> bytes:
        data = line.encode("utf-8", "backslashreplace")
        if len(data) <= self.max_size:
            return data
        self.truncated += 1
        return _cut(data, self.max_size)

    def _send(self, chunk: Chunk, deadline: float) -> None:
        """Send what is left of the chunk, advancing ``offset`` over every message sent."""
        sock = self._sock
        assert sock is not None
        messages = self._messages(chunk)
        ends = chunk.ends()
        first = bisect_right(ends, chunk.offset)
        if not self._stream:
            for index in range(first, len(messages)):
                while True:
                    try:
                        sock.send(messages[index])
                        break
                    except (BlockingIOError, InterruptedError):
                        if not _net.wait(sock, _net.WRITABLE, deadline):
                            return
                    except OSError as exc:
                        # A unix datagram socket takes no more than its send buffer in one
                        # datagram, which may be less than max_size: sending it whole would
                        # fail forever and hold up every record behind it. Cut it to fit.
                        if exc.errno != errno.EMSGSIZE or len(messages[index]) < 2:
                            raise
                        if len(messages[index]) == len(chunk.lines[index].encode(
                                "utf-8", "backslashreplace")):
                            self.truncated += 1  # not cut to max_size already: count it once
                        messages[index] = _cut(messages[index], len(messages[index]) // 2)
                chunk.offset = ends[index]
            return
        if self._out is None:
            if _net.peer_closed(sock):  # the collector went away while we were idle
                raise ConnectionResetError(errno.ECONNRESET, "collector closed the connection")
            frames = [b"%d %s" % (len(m), m) for m in messages[first:]]
            self._out = memoryview(b"".join(frames))
            self._out_ends = list(accumulate(map(len, frames)))
            self._out_first, self._out_sent = first, 0
        self._out_sent += _net.send_some(sock, self._out[self._out_sent :], deadline)
        whole = bisect_right(self._out_ends, self._out_sent)
        if whole:
            chunk.offset = ends[self._out_first + whole - 1]
        if chunk.done:
            self._out = None

    def _undelivered(self, chunk: Chunk) -> str:
        left = len(chunk.lines) - bisect_right(chunk.ends(), chunk.offset)
        return (f"{left} syslog messages could not be delivered to {self.url} within "
                f"delivery_timeout={self.delivery_timeout}s")


def _cut(data: bytes, size: int) -> bytes:
    """``data`` cut to at most ``size`` bytes, never inside a UTF-8 sequence."""
    while size and data[size] & 0xC0 == 0x80:
        size -= 1
    return data[:size]
