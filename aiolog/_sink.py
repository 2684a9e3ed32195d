"""Where formatted chunks go: a log file (with the rollover protocol) or a stream.

A sink's methods block; the writer runs them on its own executor thread, or calls them directly
when there is no event loop to hand the work to.
"""

from __future__ import annotations

import io
import os
import time
from typing import Final, Protocol, TextIO

from . import _rotation
from ._lock import Lockfile

_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
# Coarse kernel clocks stamp a write up to a few ticks before time.time(): a file written just
# after a boundary must not look as if it belonged to the interval before it.
_MTIME_SLACK: Final = 0.05


class Sink(Protocol):
    rotations: int

    def encode(self, text: str) -> bytes | str: ...
    def prepare(self, incoming: int) -> bool: ...
    def write(self, data: bytes | str) -> None: ...
    def close(self) -> None: ...


class StreamSink:
    """A text stream such as ``sys.stderr``; its blocking writes run off the loop."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.rotations = 0

    def encode(self, text: str) -> str:
        return text

    def prepare(self, incoming: int) -> bool:
        return True

    def write(self, data: bytes | str) -> None:
        self.stream.write(data)  # type: ignore[arg-type]
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if flush is not None and not getattr(self.stream, "closed", False):
            flush()


class FileSink:
    """An ``O_APPEND`` log file that many processes may share and rotate.

    Before each chunk, ``prepare()`` notices another process's rotation (the path's inode is no
    longer ours) and reopens; when a rollover is due it takes the lockfile, checks again under
    it, and rotates. One ``write()`` per chunk keeps lines from different processes whole.
    """

    def __init__(self, path: str, *, max_bytes: int = 0, when: str | None = None,
                 interval: int = 1, utc: bool = False, backup_count: int = 0,
                 compress: bool = False, lock_timeout: float = 10.0,
                 encoding: str = "utf-8", errors: str = "backslashreplace") -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0, not {max_bytes!r}")
        if isinstance(backup_count, bool) or not isinstance(backup_count, int) or backup_count < 0:
            raise ValueError(f"backup_count must be an integer >= 0, not {backup_count!r}")
        if not lock_timeout > 0:
            raise ValueError(f"lock_timeout must be > 0, not {lock_timeout!r}")
        "x".encode(encoding, errors)  # unknown names raise LookupError now, not at first write
        self.path = os.path.abspath(os.fspath(path))
        self.max_bytes = max_bytes
        self.time_policy = _rotation.TimePolicy.parse(when, interval, utc) if when else None
        self.backup_count = backup_count
        self.compress = compress
        self.encoding = encoding
        self.errors = errors
        self.lock = Lockfile(self.path + ".lock", timeout=lock_timeout)
        self.rotations = 0
        self.rotated: list[str] = []  # rotated away and waiting to be compressed
        self._file: io.FileIO | None = None
        self._identity = (0, 0)
        self._next_boundary = float("inf")
        self.open()

    def open(self) -> None:
        """Open (or create) the file at the path, replacing a descriptor we had."""
        try:
            fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"aiolog cannot open log file {self.path!r}: directory "
                f"{os.path.dirname(self.path)!r} does not exist") from None
        except OSError as exc:
            raise type(exc)(exc.errno, f"aiolog cannot open log file {self.path!r}: "
                            f"{exc.strerror}") from None
        old, self._file = self._file, io.FileIO(fd, "ab", closefd=True)
        st = os.fstat(fd)
        self._identity = (st.st_dev, st.st_ino)
        if old is not None:
            old.close()
        if self.time_policy is not None:
            # A file left over from an earlier interval is due at once.
            now = time.time()
            written = st.st_mtime + _MTIME_SLACK if st.st_size else now
            self._next_boundary = self.time_policy.next_boundary(min(written, now))

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding, self.errors)

    def prepare(self, incoming: int) -> bool:
        """Make the file ready for ``incoming`` more bytes; False while another process rotates."""
        if self._file is None:
            self.open()
        elif self._moved():
            self.open()
        if not self._due(incoming):
            return True
        if not self.lock.acquire():
            return False
        try:
            if self._moved():  # another process rotated while we waited
                self.open()
            if self._due(incoming):
                self._rotate()
        finally:
            self.lock.release()
        return True

    def write(self, data: bytes | str) -> None:
        """Write all of ``data``, completing partial writes."""
        if self._file is None:
            self.open()
        view = memoryview(data)  # type: ignore[arg-type]
        while view:
            written = self._file.write(view)  # type: ignore[union-attr]
            view = view[written or 0 :]

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _moved(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True  # deleted or moved away (logrotate without create, an operator's rm)
        return (st.st_dev, st.st_ino) != self._identity

    def _due(self, incoming: int) -> bool:
        if self.time_policy is not None and time.time() >= self._next_boundary:
            return True
        if not self.max_bytes:
            return False
        size = os.fstat(self._file.fileno()).st_size  # type: ignore[union-attr]
        return size > 0 and size + incoming > self.max_bytes

    def _rotate(self) -> None:
        st = os.fstat(self._file.fileno())  # type: ignore[union-attr]
        policy = self.time_policy
        if st.st_size == 0:  # nothing to move away; start the new interval in place
            self.open()
            return
        if policy is not None:
            started = self._next_boundary - 1e-6  # a moment in the interval being closed
            if time.time() < self._next_boundary:  # due by size within the interval
                started = time.time()
            target = _rotation.rotate_by_time(self.path, policy.suffix(started),
                                              self.backup_count, policy.suffix_pattern())
        else:
            target = _rotation.rotate_by_size(self.path, self.backup_count)
        self.rotations += 1
        if self.compress:
            self.rotated.append(target)
        self.open()
        if policy is not None:
            self._next_boundary = policy.next_boundary(time.time())

    def compress_rotated(self, target: str) -> None:
        """Gzip one rotated file (outside the lock), then name it under the lock."""
        result = _rotation.compress(target)
        if result is None:
            return
        partial, inode = result
        while not self.lock.acquire():
            time.sleep(0.01)  # a compression thread, never the event loop
        try:
            pattern = (f"(?:{self.time_policy.suffix_pattern()})(?:\\.\\d+)?" if self.time_policy
                       else r"\d+")
            _rotation.place_compressed(self.path, partial, inode, target, pattern)
        finally:
            self.lock.release()
