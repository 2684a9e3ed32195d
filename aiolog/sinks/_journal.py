"""The journald sink: one datagram per entry on journald's native socket.

Each line in a chunk is one whole native-protocol entry (``aiolog._journald`` builds it on the
caller, carried as latin-1 text so that the queue stays a queue of strings: one character per
byte, so ``encode`` gives back exactly the bytes that were built). The chunk's ``offset``
advances by whole entries only: an entry is sent whole or not at all, and a chunk resumed after
a failure starts with the first entry not yet taken by the kernel.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from typing import Final

from .._queue import Chunk

try:
    import fcntl
except ImportError:  # Windows: no journald either; importing aiolog must still work there
    fcntl = None  # type: ignore[assignment]

DEFAULT_SOCKET: Final = "/run/systemd/journal/socket"
# What journald restarting looks like: its socket is gone (ENOENT) or nobody reads it any more
# (ECONNREFUSED, on a socket still connected to the old one). The entry waits and is resent.
_WAIT_ERRNOS: Final = frozenset({errno.ENOENT, errno.ECONNREFUSED, errno.ENOTCONN,
                                 errno.ECONNRESET})
# What an entry too large for one datagram gets (sd_journal_sendv's test): then a memfd.
_TOO_LARGE_ERRNOS: Final = frozenset({errno.EMSGSIZE, errno.ENOBUFS})
_SNDBUF: Final = 8 * 1024 * 1024  # asked for, as sd-journal does; the kernel caps it (wmem_max)
# A send waits this long for room in journald's receive queue (it is busy, or frozen), then the
# owner counts itself stalled and tries again. Short, because a caller that finds the queue full
# waits for the owner until it is stalled: this bounds that wait (a blocking send without a
# timeout would make it endless while journald is frozen).
_SEND_TIMEOUT: Final = 0.02
# Under systemd a journald restart takes well under a second, and its socket (held by systemd)
# keeps what is sent meanwhile. Longer than this, journald is missing, not restarting.
_RESTART_GRACE: Final = 3.0
_SEALS: Final = (getattr(fcntl, "F_SEAL_SHRINK", 0) | getattr(fcntl, "F_SEAL_GROW", 0)
                 | getattr(fcntl, "F_SEAL_WRITE", 0) | getattr(fcntl, "F_SEAL_SEAL", 0))


class JournalSink:
    """journald's native socket (or a namespace's): one datagram per entry, large ones in a memfd."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET) -> None:
        self.path = socket_path
        self.rotations = 0
        self.memfds = 0  # entries sent in a memfd (larger than one datagram may be)
        self._socket: socket.socket | None = None
        self._waiting_since: float | None = None  # since when no entry could be sent (monotonic)

    def encode(self, text: str) -> bytes:
        return text.encode("latin-1")

    def write(self, chunk: Chunk, *, rotate: bool = True) -> bool:
        """Send the entries of ``chunk`` not sent yet; False while journald restarts or is busy.

        An absence longer than a restart (``_RESTART_GRACE``) raises instead: the owner then
        treats journald as a failing disk (one ``handleError`` report, retries with backoff,
        ``flush()`` returns early) and the entries still wait. ``rotate=False`` is the owner
        saying it cannot come back later (a stopping writer, or a caller writing itself):
        then a busy journald is waited for here, up to the same grace, and a missing one
        raises at once, so that the owner's give-up path counts and reports what is left
        rather than a shutdown waiting for journald forever.
        """
        view = memoryview(chunk.data)  # type: ignore[arg-type]
        while not chunk.done:
            end = chunk.next_end()
            try:
                self._send(view[chunk.offset : end])
            except (TimeoutError, OSError) as exc:
                # Its queue stayed full: journald is slow or frozen, but there.
                busy = isinstance(exc, (TimeoutError, BlockingIOError))
                if not busy:
                    if exc.errno not in _WAIT_ERRNOS:
                        raise
                    # A socket connected to a journald that is gone never works again: the
                    # next try connects afresh, to whichever journald listens there by then.
                    self.close()
                now = time.monotonic()
                if self._waiting_since is None:
                    self._waiting_since = now
                if now - self._waiting_since >= _RESTART_GRACE or not (rotate or busy):
                    raise
                if rotate:
                    return False
                continue  # cannot come back later, and journald is there: wait for room
            self._waiting_since = None
            chunk.offset = end
        return True

    def _send(self, entry: memoryview) -> None:
        sock = self._socket or self._connect()
        try:
            try:
                sock.send(entry)
            except BlockingIOError:
                # journald's receive queue is full: wait a little for room, then once more.
                # Polling only now costs one syscall per entry where a socket with a timeout
                # (which polls before every send) costs two.
                if not self._room(sock):
                    raise TimeoutError("journald's socket stayed full") from None
                sock.send(entry)
        except OSError as exc:
            if exc.errno not in _TOO_LARGE_ERRNOS:
                raise
            self._send_memfd(sock, entry)

    def _room(self, sock: socket.socket) -> bool:
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(_SEND_TIMEOUT * 1000))

    def _send_memfd(self, sock: socket.socket, entry: memoryview) -> None:
        """Send ``entry`` as journald takes one too large for a datagram: in a sealed memfd.

        The datagram is empty and carries only the descriptor (SCM_RIGHTS); the seals promise
        journald that the content cannot change after it was sent.
        """
        fd = os.memfd_create("aiolog-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            done = 0
            while done < len(entry):
                done += os.write(fd, entry[done:])
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            socket.send_fds(sock, [], [fd])
        finally:
            os.close(fd)
        self.memfds += 1

    def _connect(self) -> socket.socket:
        # Connected rather than sendto() each time: poll() on a connected datagram socket
        # reports room in journald's receive queue (on an unconnected one it reports at once,
        # and the send fails again), and a journald that is gone shows as ECONNREFUSED.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # close-on-exec (PEP 446)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
            except OSError:
                pass  # a smaller buffer only means more entries go by memfd
            sock.setblocking(False)  # a full journald is waited for in _room(), briefly
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        return sock

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
