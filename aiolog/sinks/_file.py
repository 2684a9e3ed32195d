"""The log-file sink: an ``O_APPEND`` file that many processes share, rotate and compress."""

from __future__ import annotations

import datetime
import fcntl
import io
import os
import stat
import time
import weakref
from typing import Final

from .._queue import Chunk
from . import _birth, _rotation, _steps
from ._lock import Lockfile

_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
# Coarse kernel clocks stamp a file up to a few ticks before time.time(): a file created just
# after a boundary must not look as if it belonged to the interval before it.
_MTIME_SLACK: Final = 0.05
_WRITE_APPEND: Final = os.O_WRONLY | os.O_APPEND
# How long a path left missing is left to whoever moved our file away to create (see _reopen).
_CREATOR_GRACE: Final = 1.0


def _is_ours(fd: int, identity: tuple[int, int]) -> bool:
    """Whether descriptor ``fd`` is still the log file we opened as ``identity``.

    Other code in the process may close it: a double close of a stale descriptor number
    (gunicorn's worker closed a socket twice at shutdown, the second time after we had reopened
    our log at that number). The number may then be someone else's file or socket, which our
    records must never go into and which we must never close: the same file and inode opened
    for appending is all we can tell apart from ours (a reader of the log is not).
    """
    try:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return False
    return ((st.st_dev, st.st_ino) == identity
            and flags & (os.O_ACCMODE | os.O_APPEND) == _WRITE_APPEND)


def _close_if_ours(fd: int, identity: tuple[int, int]) -> None:
    if _is_ours(fd, identity):
        try:
            os.close(fd)
        except OSError:  # closed by someone else meanwhile: closed either way
            pass


class FileSink:
    """An ``O_APPEND`` log file that many processes may share and rotate.

    ``write()`` follows the rollover protocol before each piece it writes: reopen if another
    process rotated (the path's inode is no longer ours); rotate under the lockfile when due,
    looking again under it. One ``write()`` per piece keeps lines from different processes whole.
    """

    def __init__(self, path: str, *, max_bytes: int = 0, when: str | None = None,
                 interval: int = 1, utc: bool = False, backup_count: int = 0,
                 compress: bool = False, lock_timeout: float = 10.0,
                 encoding: str = "utf-8", errors: str = "backslashreplace",
                 at_time: datetime.time | None = None, delay: bool = False) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0, not {max_bytes!r}")
        if isinstance(backup_count, bool) or not isinstance(backup_count, int) or backup_count < 0:
            raise ValueError(f"backup_count must be an integer >= 0, not {backup_count!r}")
        if not lock_timeout > 0:
            raise ValueError(f"lock_timeout must be > 0, not {lock_timeout!r}")
        "x".encode(encoding, errors)  # unknown names raise LookupError now, not at first write
        self.path = os.path.abspath(os.fspath(path))
        self.max_bytes = max_bytes
        self.time_policy = (_rotation.TimePolicy.parse(when, interval, utc, at_time) if when
                            else None)
        self.backup_count = backup_count
        self.compress = compress
        self.encoding = encoding
        self.errors = errors
        self.lock = Lockfile(self.path + ".lock", timeout=lock_timeout)
        self.rotations = 0
        self._file: io.FileIO | None = None
        self._closer: weakref.finalize[[int, tuple[int, int]], io.FileIO] | None = None
        self._torn = -1  # the descriptor we hold exclusively while a line of ours is torn in it
        self._identity = (0, 0)
        self._seen_at = 0.0  # when the path last named our file (a look before a write)
        self._missing_since: float | None = None  # monotonic; see _reopen
        self._next_boundary = float("inf")
        self._reported: set[tuple[str | None, int | None]] = set()
        self._regular = True
        if not delay:  # delay=True, as FileHandler: the file is created by the first write
            self.open()
            # The next opener repairs what a rotator that died left, if nobody holds the lock
            # now (a holder repairs before it rotates anyway). Never beside a device or pipe.
            if self._regular:
                self._repair_at_open()

    def _repair_at_open(self) -> None:
        try:
            if self.lock.acquire():
                try:
                    self._repair()
                finally:
                    self.lock.release()
        except OSError as exc:
            self._report([exc])

    @property
    def rotation_wait(self) -> float:
        """How long a stopping owner waits for another process's rotation lock: by then the
        lock is stale and broken, unless others keep taking it first."""
        return 2 * self.lock.timeout

    def open(self) -> io.FileIO:
        """Open (or create) the file at the path, replacing a descriptor we had."""
        opening = time.time()
        try:
            try:
                fd = os.open(self.path, _OPEN_FLAGS, 0o644)
            except FileNotFoundError:
                # The directory went away after we started (rm -rf logs/): create it again,
                # as at construction, rather than count every record from here on as failed.
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"aiolog cannot open log file {self.path!r}: directory "
                f"{os.path.dirname(self.path)!r} does not exist") from None
        except OSError as exc:
            raise type(exc)(exc.errno, f"aiolog cannot open log file {self.path!r}: "
                            f"{exc.strerror}") from None
        st = os.fstat(fd)
        # closefd=False: the descriptor is closed only by its closer, which looks first whether
        # the number is still our file (_is_ours): at close(), when the file is reopened, or when
        # a sink nobody closed is collected.
        old, old_closer = self._file, self._closer
        replaced = (st.st_dev, st.st_ino) != self._identity
        self._file = io.FileIO(fd, "ab", closefd=False)
        self._identity = (st.st_dev, st.st_ino)
        self._closer = weakref.finalize(self._file, _close_if_ours, fd, self._identity)
        # Not at interpreter exit: the exit drain may still be writing through it then, and
        # the descriptor goes with the process anyway.
        self._closer.atexit = False
        # A device or pipe (/dev/null, /dev/stdout) is never rotated, as the stdlib's handlers
        # refuse (bpo-45401): renaming it, or a lock file beside it, would be a disaster.
        self._regular = stat.S_ISREG(st.st_mode)
        if old is not None:
            self._torn = -1  # its flock goes with it
            old.close()
            old_closer()  # type: ignore[misc]  # set whenever old is
        if self.time_policy is not None:
            # The interval a file belongs to is the one of its creation, read from the file and
            # not from our clock, so that every process holding it decides alike when it is
            # due: one that opened it later must not keep it for an interval that others rotate
            # it away for. Its birth time, which no write changes: by its last write, a write in
            # the slack before the boundary moved the file on to the next interval for those
            # who opened it after that write only. (Its last write where the file system keeps
            # no birth time; an older modification time, one set back by cp -p or tar, wins.)
            # A file left over from an earlier interval is due at once. (min with now: a stamp
            # ahead of our clock, from a clock stepped back, must not put the rotation off.)
            born = _birth.birth_time(fd, st)
            made = st.st_mtime if born is None else min(born, st.st_mtime)
            self._next_boundary = self.time_policy.next_boundary(
                min(made, time.time()) + _MTIME_SLACK)
            if replaced and self._seen_at:
                # A file that took our file's place at the path was made after we last saw
                # ours there. This floor changes nothing while the file system's clock is ours;
                # one behind it (a file server, a VM's shared folder) stamps the new file before
                # the boundary just passed, and without the floor each new file would be due at
                # once: rotated again and again inside one write by its own rotator, and by one
                # process after another at every write, for as long as the clocks differ.
                self._next_boundary = max(self._next_boundary,
                                          self.time_policy.next_boundary(self._seen_at))
        self._seen_at = opening
        return self._file

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding, self.errors)

    def write(self, chunk: Chunk, *, rotate: bool = True) -> bool:
        """Write the rest of ``chunk``; False while another process holds the rotation lock, or
        may be about to create the path (see ``_reopen``).

        ``rotate=False`` writes it into the current file even when a rollover is due, and
        creates a missing path at once. Raises ``OSError`` from the disk; ``chunk.offset``
        always says how much is on disk.
        """
        view = memoryview(chunk.data)  # type: ignore[arg-type]
        while not chunk.done:
            file = self._file or self.open()
            fd = file.fileno()
            if not _is_ours(fd, self._identity):
                self._let_go(fd)
                continue
            torn = self._torn == fd
            end: int | None
            # Shared flock from the look at the path until the write returns: a compressor takes
            # it exclusively before reading a rotated file for the last time, so a chunk that
            # lands late in a just-rotated file is always in what it compresses.
            if not torn:
                _rotation.flock(fd, exclusive=False)
            try:
                if torn:  # finish the torn line where it started, whatever the path names now
                    moved, end = False, chunk.next_end()
                else:
                    moved = self._moved()
                    end = None if moved else self._piece_end(chunk) if rotate else len(chunk.data)
                if end is not None:
                    chunk.offset += file.write(view[chunk.offset : end]) or 0
            finally:
                self._hold_while_torn(fd, chunk, torn)
            if moved:
                if not self._reopen(patient=rotate):
                    return False
            elif end is None and not self._rotate_for(chunk):
                return False
        return True

    def _hold_while_torn(self, fd: int, chunk: Chunk, torn: bool) -> None:
        """Keep other processes from appending after a fragment of ours until it is finished.

        A short write (a full disk, shared by several processes) leaves part of a line at
        the end of the file. Whatever another process appends before we write the rest would
        be glued onto that fragment, tearing two records. So from a short write mid-line until
        that line is finished, we hold the file's flock exclusively: other aiolog writers wait
        for it in their shared flock (off their event loops: their owner counts as stalled),
        then append after a whole line. Writers that are not aiolog's are not held.
        """
        if not chunk.at_line_start():
            if not torn:  # shared to exclusive: waits only for writes in progress
                _rotation.flock(fd, exclusive=True)
                self._torn = fd
            return
        _rotation.flock(fd, exclusive=None)
        self._torn = -1

    def _piece_end(self, chunk: Chunk) -> int | None:
        """Where the next ``write()`` of ``chunk`` ends in this file; None: rotate first.

        Whole lines only: a piece stops at the last line that keeps the file below
        ``max_bytes`` (``RotatingFileHandler`` rotates when a record would make the file reach
        it). A line is never split between two files, and a file takes one line larger than
        ``max_bytes`` alone, as ``RotatingFileHandler`` does.
        """
        total = len(chunk.data)
        if not self._regular:
            return total
        if self._time_due() and chunk.at_line_start():
            return None
        if not self.max_bytes:
            return total
        size = os.fstat(self._file.fileno()).st_size  # type: ignore[union-attr]
        if size + total - chunk.offset < self.max_bytes:
            return total
        end = chunk.last_end_within(chunk.offset + max(self.max_bytes - 1 - size, 0))
        if end is not None:
            return end
        if size == 0 or not chunk.at_line_start():
            return chunk.next_end()
        return None

    def _rotate_for(self, chunk: Chunk) -> bool:
        """Rotate under the lockfile if still due; False while another process holds it."""
        if not self.lock.acquire():
            return False
        try:
            # First finish or undo what a rotator that died mid-way left (see _steps).
            self._repair()
            # Look again under the lock: another process may have rotated while we waited,
            # and rotating again would move its fresh file away (and, with a small
            # backup_count, delete our own last backup). Then write()'s next look reopens.
            if not self._moved() and self._piece_end(chunk) is None:
                self._rotate()
        finally:
            self.lock.release()
        return True

    def _reopen(self, *, patient: bool) -> bool:
        """Open the path anew, our file having left it; False: not yet (the owner polls).

        Whoever moved our file away creates the path an instant later: another process's
        rotation, or logrotate's ``create``, which opens it with O_EXCL and, finding a file
        there, fails and moves that file, records and all, to ``<name>-<date>.backup`` (over an
        earlier one of the same hour). So a missing path is left to them for up to
        ``_CREATOR_GRACE``; only then (an operator's rm, logrotate's ``nocreate``, a rotator
        that died) do we create it. Not ``patient`` (a caller that never waits, an owner done
        waiting): create it at once.
        """
        if patient and not os.path.lexists(self.path):
            now = time.monotonic()
            if self._missing_since is None:
                self._missing_since = now
            if now - self._missing_since < _CREATOR_GRACE:
                return False
        self._missing_since = None
        self.open()
        return True

    def reset_after_fork(self) -> None:
        """In a forked child: let go of the parent's open file, and open our own when needed.

        A flock belongs to the open file, which fork shares: writing through the parent's,
        the child's flocks would convert and release the parent's (and append after a line
        the parent holds torn). Closing our copy of the descriptor leaves the parent's intact.
        """
        self.close()

    def close(self) -> None:
        self._torn = -1
        file, self._file = self._file, None
        closer, self._closer = self._closer, None
        if file is not None:
            file.close()  # closefd=False: marks it closed; the closer closes the descriptor
        if closer is not None:
            closer()

    def _let_go(self, fd: int) -> None:
        """Our descriptor was closed by other code: forget it, never close that number again
        (it may be another file's now), and open the path anew."""
        from .._owner import report  # here: _owner imports this package

        report(f"aiolog: descriptor {fd} of {self.path} was closed by other code "
               f"(a double close elsewhere in the process?); reopening the file", None)
        self._torn = -1
        self._file = None
        if self._closer is not None:
            self._closer.detach()
            self._closer = None

    def _moved(self) -> bool:
        looking = time.time()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True  # deleted or moved away (logrotate without create, an operator's rm)
        if (st.st_dev, st.st_ino) != self._identity:
            return True
        self._seen_at = looking
        return False

    def _time_due(self) -> bool:
        return self.time_policy is not None and time.time() >= self._next_boundary

    def _pattern(self) -> str:
        """The suffixes of this file's backups, as ``_rotation._backups`` takes them."""
        if self.time_policy is None:
            return r"\d+"
        return f"(?:{self.time_policy.suffix_pattern()})(?:\\.\\d+)?"

    def _repair(self) -> None:
        """Under the lock: repair the names (two for one inode, a stale .part, a plain file
        beside its .gz). A lock broken meanwhile leaves them to its new holder."""
        backups = [name for name, _ in _rotation._backups(self.path, self._pattern())]
        try:
            self._report(_steps.repair(self.path, backups, _steps.Guard(self.lock)))
        except _steps.LockLost:
            pass

    def _rotate(self) -> None:
        # An empty file due by time is moved away too, as TimedRotatingFileHandler does: kept
        # for the new interval, it would still be due for every other process that holds it
        # open, and the first of them would rotate it, with our records of the new interval,
        # to the name of the old one.
        policy = self.time_policy
        guard = _steps.Guard(self.lock)
        failures: list[OSError] = []
        try:
            if policy is not None:
                started = self._next_boundary - 1e-6  # a moment in the interval being closed
                if time.time() < self._next_boundary:  # due by size within the interval
                    started = time.time()
                _rotation.rotate_by_time(self.path, policy.suffix(started), self.backup_count,
                                         policy.suffix_pattern(), guard, failures)
            else:
                _rotation.rotate_by_size(self.path, self.backup_count, guard, failures)
        except _steps.LockLost:
            # We were frozen past lock_timeout and another process took over: it rotates.
            # Whatever we did so far left every name valid; reopen the path and go on.
            self.open()
            return
        finally:
            self._report(failures)
        self.rotations += 1
        self.open()  # its boundary: see the floor in open()

    def _report(self, failures: list[OSError]) -> None:
        """Report each failed deletion or rename once (by name and errno), never raise it:
        a backup that cannot be deleted must not stop the writing."""
        from .._owner import report  # here: _owner imports this package

        for exc in failures:
            key = (exc.filename, exc.errno)
            if key not in self._reported:
                self._reported.add(key)
                report(f"aiolog: retention or repair of {self.path} failed; writing goes on",
                       exc)

    def compress_backups(self) -> None:
        """Gzip every plain rotated file (in a thread, outside the writer's way)."""
        _rotation.compress_backups(self.path, self._pattern(), self.lock)


