"""The rotation lockfile: ``O_EXCL`` create, holder identity, stale detection and safe breaking.

The file holds one line, ``PID STARTTIME HOST``, so other tools and versions can read it.
STARTTIME is field 22 of ``/proc/PID/stat`` (``0`` where unknown): together with the pid it names
one process, so a reused pid is not mistaken for the holder.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Final

_HOST: Final = socket.gethostname()
_CREATE_FLAGS: Final = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)

# Locks this process image holds. A lock naming our own pid and start time that is not in here
# was taken before an os.execv (which keeps both) and is therefore stale.
_held: set[str] = set()


def process_start_time(pid: int) -> int:
    """Return field 22 of ``/proc/PID/stat``, or 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return 0
    # The command name (field 2) may contain spaces and parentheses: count from its last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


_identity: tuple[int, str] | None = None


def _own_identity() -> str:
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # recomputed after fork
        _identity = (pid, f"{pid} {process_start_time(pid)} {_HOST}\n")
    return _identity[1]


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def _holder_is_dead(content: str, path: str) -> bool:
    try:
        pid_text, start_text, host = content.split()
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return False  # not ours to judge; the age rule still applies
    if host != _HOST:
        return False
    if pid == os.getpid():
        return path not in _held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    return start != 0 and start != process_start_time(pid)


class Lockfile:
    """One ``<file>.lock``. ``acquire()`` never blocks: callers wait in their own way."""

    def __init__(self, path: str, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._ours: tuple[int, int] | None = None

    def acquire(self) -> bool:
        """Take the lock if it is free or stale; return whether we hold it."""
        for _ in range(2):
            try:
                fd = os.open(self.path, _CREATE_FLAGS, 0o644)
            except FileExistsError:
                if not self._break_if_stale():
                    return False
                continue
            # Marked held before the identity is written: another thread of ours reading
            # our pid in the file must not take it for a lock left by a pre-exec image.
            _held.add(self.path)
            try:
                os.write(fd, _own_identity().encode())
                st = os.fstat(fd)
            finally:
                os.close(fd)
            self._ours = (st.st_dev, st.st_ino)
            return True
        return False

    def release(self) -> None:
        """Remove the lock, but only while it is still the file we created.

        If ours was judged stale (we took longer than ``timeout``) and broken, the file at the
        path is a successor's, and deleting it would let a third process in beside it.
        """
        ours, self._ours = self._ours, None
        _held.discard(self.path)
        if ours is None:
            return
        try:
            st = os.stat(self.path)
            # The inode alone is not enough: a freed inode number is handed out again at once.
            if (st.st_dev, st.st_ino) == ours and _read(self.path) == _own_identity():
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _break_if_stale(self) -> bool:
        """Unlink a stale lock; return whether the path may be free now."""
        try:
            st = os.stat(self.path)
            content = _read(self.path)
        except FileNotFoundError:
            return True
        aged = time.time() - st.st_mtime > self.timeout
        # An empty file is a holder between its create and its write: only age makes it stale.
        if not aged and not (content and _holder_is_dead(content, self.path)):
            return False
        # Two processes may judge the same lock stale. Without care, the slower one would unlink
        # the lock the faster one took in the meantime. Breaking is therefore serialized by a
        # second O_EXCL file, and under it the lock must still be the very file judged stale.
        guard = self.path + ".break"
        try:
            fd = os.open(guard, _CREATE_FLAGS, 0o644)
        except FileExistsError:
            self._clear_abandoned_guard(guard)
            return False
        os.close(fd)
        try:
            now = os.stat(self.path)
            same = (now.st_dev, now.st_ino, now.st_mtime) == (st.st_dev, st.st_ino, st.st_mtime)
            if same and _read(self.path) == content:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.unlink(guard)
        return True

    def _clear_abandoned_guard(self, guard: str) -> None:
        # A breaker killed between creating and removing its guard would block breaking forever.
        try:
            if time.time() - os.stat(guard).st_mtime > self.timeout:
                os.unlink(guard)
        except FileNotFoundError:
            pass
