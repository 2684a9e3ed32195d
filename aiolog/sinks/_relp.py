"""RELP, the Reliable Event Logging Protocol, from librelp's ``doc/relp.md``.

A frame is ``TXNR SP COMMAND SP DATALEN [SP DATA] LF``. The client opens a session with
``open`` (offers ``relp_version=0``, ``relp_software``, ``commands=syslog``), sends each
message as a ``syslog`` command, and the server answers every command with ``rsp`` carrying the
same TXNR: ``200`` is the acknowledgement. At most ``WINDOW`` commands wait for their answer.

A message counts as delivered only at its ``200``; until then the chunk keeps it (its
``offset`` stops before the first unacknowledged message). A session that ends (the connection
breaks, the server hints ``serverclose``) takes its outstanding commands with it: on the next
session every unacknowledged message is sent again, in order, with new TXNRs, and counted in
``resent`` (the server may have had it: a possible duplicate). A live session never resends:
librelp drops a session that repeats a TXNR.

TXNRs never wrap within a session. The spec wraps 999,999,999 to 1, but librelp's server
(``relpframe.c``) wants each command's TXNR to be the session's next, starting at 1, and after
999,999,999 its next is 1,000,000,000 (``relpEngineNextTXNR`` in ``relp.h``), a tenth digit its
frame parser refuses: a session wrapping either way would be dropped. So once every command
up to ``_TXNR_MAX - 1`` is answered, the session is closed politely (``close`` takes
``_TXNR_MAX``) and the next one starts at 1, resending nothing.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from bisect import bisect_right
from typing import Final

from .._queue import Chunk
from . import _net
from ._syslog import SyslogSink

WINDOW: Final = 128  # librelp's default window of unacknowledged commands
_TXNR_MAX: Final = 999_999_999  # the last TXNR of a session (tests make it small)
_CLOSE_WAIT: Final = 1.0  # seconds close() waits for the answer to "close"
_HEADER: Final = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})[ \n]")
_HEADER_MAX: Final = 64  # a buffer this long without a header is not RELP
_OFFERS: Final = (b"relp_version=0\nrelp_software=aiolog,0.1,https://pypi.org/project/aiolog-safe/"
                  b"\ncommands=syslog")


class RelpError(ConnectionError):
    """The server broke the protocol or ended the session: drop it and start over."""


class RelpRefused(OSError):
    """The server answered ``open`` with an error, or without the ``syslog`` command: its
    configuration, not an outage. Not a ``ConnectionError``, so it is reported through
    ``handleError`` at once (as a certificate that does not verify) instead of waited for."""


class RelpSink(SyslogSink):
    """Sends syslog messages as RELP commands and counts them delivered at their ``200``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.resent = 0
        self.rejected = 0  # answered with an error code: the server will not take them
        self._txnr = 0
        self._rbuf = bytearray()
        self._inflight: dict[int, int] = {}  # TXNR -> index of the message in the chunk
        self._acked: list[bool] = []
        self._next: int | None = None  # the next message this session sends; None: new session
        self._high = 0  # messages below this index were sent at least once
        self._pending: memoryview | None = None  # frames written in part
        self.unacked = 0

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "unacked": self.unacked, "resent": self.resent,
                "errors": self.rejected}

    # -- the session ---------------------------------------------------------------------------

    def _open(self, timeout: float) -> socket.socket:
        host = None if isinstance(self.address, str) else self.address[0]
        sock = _net.open_stream(self.address, ssl_context=self.ssl_context,
                                server_hostname=host, timeout=timeout)
        try:
            self._rbuf.clear()
            deadline = time.monotonic() + timeout
            frame = b"1 open %d %s\n" % (len(_OFFERS), _OFFERS)
            if _net.send_some(sock, memoryview(frame), deadline) < len(frame):
                raise TimeoutError(f"RELP open to {self.url} timed out")
            while True:
                if not _net.wait(sock, _net.READABLE, deadline):
                    raise TimeoutError(f"RELP open to {self.url} got no answer")
                self._receive(sock)
                answers = self._frames()
                if answers:
                    break
            txnr, command, data = answers[0]
            if txnr != 1 or command != b"rsp" or not data.startswith(b"200"):
                raise RelpRefused(f"{self.url} refused the RELP session: {data[:200]!r}")
            offers = dict(line.partition(b"=")[::2] for line in data.split(b"\n")[1:])
            if b"syslog" not in offers.get(b"commands", b"").split(b","):
                raise RelpRefused(f"{self.url} does not offer the RELP syslog command: "
                                  f"{data[:200]!r}")
        except BaseException:
            _net.close_quietly(sock)
            raise
        self._txnr = 1
        self._next = None  # every unacknowledged message goes again, on this new session
        return sock

    def _lost_connection(self) -> None:
        super()._lost_connection()
        self._inflight.clear()  # their answers will never come: they go again
        self._pending = None
        self._rbuf.clear()
        self._next = None

    def close(self) -> None:
        """End the session politely (``close``, and its answer for a moment), then the socket."""
        sock = self._sock
        if sock is not None and self._pending is None:
            try:
                txnr = self._new_txnr()
                deadline = time.monotonic() + _CLOSE_WAIT
                _net.send_some(sock, memoryview(b"%d close 0\n" % txnr), deadline)
                _net.wait(sock, _net.READABLE, deadline)
            except OSError:
                pass
        super().close()

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        self._lost_connection()
        self._backoff.succeeded()
        self.resent = self.rejected = self.unacked = 0

    def _new_txnr(self) -> int:
        self._txnr += 1  # at most _TXNR_MAX: the session is renewed before (see the top)
        return self._txnr

    # -- sending -------------------------------------------------------------------------------

    def _messages(self, chunk: Chunk) -> list[bytes]:
        if chunk is not self._chunk:
            if self._pending is not None or self._inflight:
                # A chunk given up (shutdown) with commands still out: their answers would
                # be taken for the new chunk's, and a frame half written cannot be taken back.
                self._lost_connection()
            self._acked = [False] * len(chunk.lines)
            self._high = 0
            self._next = None
        return super()._messages(chunk)

    def _send(self, chunk: Chunk, deadline: float) -> None:
        sock = self._sock
        assert sock is not None
        messages = self._messages(chunk)
        ends = chunk.ends()
        acked = self._acked
        count = len(messages)
        while True:
            self._receive(sock)
            self._settle(self._frames())
            first = bisect_right(ends, chunk.offset)
            while first < count and acked[first]:
                first += 1
            if first:
                chunk.offset = ends[first - 1]
            if self._next is None:
                self._next = first
            self.unacked = self._high - first - sum(acked[first : self._high])
            if chunk.done:
                return
            if self._pending is None and not self._inflight and self._txnr >= _TXNR_MAX - 1:
                self.close()  # all answered, TXNRs used up: the next session starts at 1
                return
            if self._pending is None:
                self._pending = self._frames_to_send(messages)
            if self._pending is not None:
                sent = _net.send_some(sock, self._pending, deadline)
                self._pending = self._pending[sent:] if sent < len(self._pending) else None
            elif not _net.wait(sock, _net.READABLE, deadline):
                return  # window full or all sent: the answers are late
            if time.monotonic() >= deadline:
                return

    def _frames_to_send(self, messages: list[bytes]) -> memoryview | None:
        """The next messages that fit in the window, framed; None when none may go now."""
        frames = []
        index = self._next
        assert index is not None
        inflight, acked = self._inflight, self._acked
        while index < len(messages) and len(inflight) < WINDOW and self._txnr < _TXNR_MAX - 1:
            if not acked[index]:
                txnr = self._new_txnr()
                inflight[txnr] = index
                if index < self._high:
                    self.resent += 1  # sent on a session that ended before its answer came
                message = messages[index]
                frames.append(b"%d syslog %d %s\n" % (txnr, len(message), message))
            index += 1
        self._next = index
        self._high = max(self._high, index)
        return memoryview(b"".join(frames)) if frames else None

    def _receive(self, sock: socket.socket) -> None:
        """Take whatever the server sent; an end of file raises once the rest is read."""
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except ssl.SSLWantWriteError:
                return
            if not data:
                self._settle(self._frames())
                raise RelpError(f"{self.url} closed the RELP session")
            self._rbuf += data

    def _frames(self) -> list[tuple[int, bytes, bytes]]:
        """The whole frames in the receive buffer, taken out of it."""
        buf = self._rbuf
        frames = []
        start = 0
        while True:
            match = _HEADER.match(buf, start)
            if match is None:
                rest = buf[start : start + _HEADER_MAX]
                if len(rest) >= _HEADER_MAX or (rest and not rest[:1].isdigit()):
                    raise RelpError(f"{self.url} sent a frame that is not RELP: "
                                    f"{bytes(buf[start:start + 80])!r}")
                break
            length = int(match[3])
            data_start = match.end() if length else match.end() - 1
            trailer = data_start + length
            if len(buf) <= trailer:
                break
            if length and buf[match.end() - 1] != 0x20 or buf[trailer] != 0x0A:
                raise RelpError(f"{self.url} sent a frame with bad framing")
            frames.append((int(match[1]), bytes(match[2]), bytes(buf[data_start:trailer])))
            start = trailer + 1
        del buf[:start]
        return frames

    def _settle(self, frames: list[tuple[int, bytes, bytes]]) -> None:
        """Mark the answered messages; a ``serverclose`` hint ends the session."""
        closing = False
        for txnr, command, data in frames:
            if command == b"rsp":
                index = self._inflight.pop(txnr, None)
                if index is None:
                    continue  # the answer to an earlier chunk's command, given up
                if not data.startswith(b"200"):
                    self.rejected += 1  # delivered it is not, but sending it again won't help
                    _report_refusal(self.url, data)
                self._acked[index] = True
            elif command == b"serverclose":
                closing = True
        if closing:
            raise RelpError(f"{self.url} closed the RELP session (serverclose)")

    def _undelivered(self, chunk: Chunk) -> str:
        left = len(chunk.lines) - bisect_right(chunk.ends(), chunk.offset)
        return (f"{left} syslog messages sent to {self.url} were not acknowledged within "
                f"delivery_timeout={self.delivery_timeout}s")


def _report_refusal(url: str, data: bytes) -> None:
    from .._owner import report  # the owner imports the sinks: import it when needed

    report(f"aiolog: {url} refused a syslog message: {data[:200]!r}", None)
