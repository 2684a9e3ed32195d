"""The rotation lockfile: ``O_EXCL`` create, holder identity, fail-closed staleness, safe breaking.

The file holds one line, ``PID STARTTIME HOST PIDNS TOKEN``, so other tools and versions can read
it. STARTTIME is field 22 of ``/proc/PID/stat`` and PIDNS the inode of ``/proc/self/ns/pid``
(``0`` and ``-`` where unknown): with the host they name one process. TOKEN is random for each
acquisition, so a holder recognises its own lock even when the inode number is reused at once
(ext4 hands a freed inode number out again immediately).

Staleness fails closed, as filelock does: a lock is broken only when its holder is proven dead
(same host and pid namespace, and the pid is gone or now names another process), or when it is
older than ``timeout``. Anything that cannot be read counts as alive.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Final

_HOST: Final = socket.gethostname()
_CREATE_FLAGS: Final = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)


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


def pid_namespace() -> str:
    """The inode of this process's pid namespace, or ``-`` where it cannot be read."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return "-"
    return link[link.find("[") + 1 : -1] or "-"


@dataclass(frozen=True)
class Holder:
    """Who wrote a lockfile."""

    pid: int
    start: int
    host: str
    namespace: str
    token: str

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder a lockfile names, or None (empty: its creator has not written it yet)."""
        try:
            pid, start, host, namespace, token = text.split()
            return cls(int(pid), int(start), host, namespace, token)
        except ValueError:
            return None

    def line(self) -> str:
        return f"{self.pid} {self.start} {self.host} {self.namespace} {self.token}\n"


def _me(token: str) -> Holder:
    pid = os.getpid()
    return Holder(pid, process_start_time(pid), _HOST, pid_namespace(), token)


class _Ownership:
    """This process's claim on one lock path, shared by every ``Lockfile`` naming it.

    The writer thread and the compression thread each have a ``Lockfile`` on the same path. The
    thread lock makes them take turns inside the process, so neither ever sees the other's lock
    as one left behind by a dead process; ``token`` is set while this process holds the file.
    """

    turn: threading.Lock
    token: str | None
    inode: tuple[int, int]

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Hold nothing: at creation, and in a forked child whatever a parent's thread held."""
        self.turn = threading.Lock()
        self.token = None
        self.inode = (0, 0)


_ownerships: dict[str, _Ownership] = {}
_ownerships_lock = threading.Lock()


def _ownership(path: str) -> _Ownership:
    # By real path: two spellings of one lock (a symlinked directory) are one lock here too.
    with _ownerships_lock:
        return _ownerships.setdefault(os.path.realpath(path), _Ownership())


def reset_after_fork() -> None:
    """In a forked child: nothing is held (a parent's thread may have held a turn at the fork)."""
    global _ownerships_lock
    _ownerships_lock = threading.Lock()
    for ownership in _ownerships.values():
        ownership.forget()


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


class Lockfile:
    """One ``<file>.lock``. ``acquire()`` never blocks: callers wait in their own way."""

    def __init__(self, path: str, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._ownership = _ownership(path)

    def acquire(self) -> bool:
        """Take the lock if it is free or stale; return whether we hold it."""
        ownership = self._ownership
        if not ownership.turn.acquire(blocking=False):
            return False  # another thread of this process holds it
        try:
            if self._create() or (self._break_if_stale() and self._create()):
                return True
        except BaseException:
            ownership.turn.release()
            raise
        ownership.turn.release()
        return False

    def release(self) -> None:
        """Remove the lock, but only while it is still the file we created.

        If ours was judged stale (we held it longer than ``timeout``) and broken, the file at the
        path is a successor's, and deleting it would let a third process in beside it. Our
        claim is dropped only after the unlink, so no thread of ours sees the file meanwhile.
        """
        ownership = self._ownership
        try:
            if self.held():
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            ownership.token = None
            ownership.turn.release()

    def held(self) -> bool:
        """Whether the lockfile is still the one we created: not broken while we were frozen."""
        ownership = self._ownership
        if ownership.token is None:
            return False
        try:
            st = os.stat(self.path)
            holder = Holder.parse(_read(self.path))
        except FileNotFoundError:
            return False
        return ((st.st_dev, st.st_ino) == ownership.inode and holder is not None
                and holder.token == ownership.token)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, _CREATE_FLAGS, 0o644)
        except FileExistsError:
            return False
        token = secrets.token_hex(8)
        try:
            try:
                line = _me(token).line().encode()
                if os.write(fd, line) != len(line):
                    raise OSError(f"short write to {self.path}")
                st = os.fstat(fd)
            except OSError:
                # An empty or partial lock names nobody: everyone, its creator too, would wait
                # lock_timeout for it. Remove it while it is surely still ours (fd is open).
                created = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                    if (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino):
                        os.unlink(self.path)
                except FileNotFoundError:
                    pass
                raise
        finally:
            os.close(fd)
        self._ownership.token = token
        self._ownership.inode = (st.st_dev, st.st_ino)
        return True

    def _break_if_stale(self) -> bool:
        """Unlink a stale lock; return whether the path may be free now."""
        try:
            st = os.stat(self.path)
            content = _read(self.path)
        except FileNotFoundError:
            return True
        aged = time.time() - st.st_mtime > self.timeout
        holder = Holder.parse(content)
        if not aged and not (holder is not None and self._proven_dead(holder)):
            return False
        # Two processes may judge the same lock stale. Without care, the slower one would unlink
        # the lock the faster one took in the meantime. Breaking is therefore serialized by a
        # second O_EXCL file, and under it the lock must still be the very file judged stale
        # (same inode and same content: the token makes content unique to one acquisition).
        guard = self.path + ".break"
        try:
            fd = os.open(guard, _CREATE_FLAGS, 0o644)
        except FileExistsError:
            self._clear_abandoned_guard(guard)
            return False
        os.close(fd)
        try:
            now = os.stat(self.path)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) and _read(self.path) == content:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.unlink(guard)
        return True

    def _proven_dead(self, holder: Holder) -> bool:
        """Whether the process that wrote the lock is certainly gone. Unknown means alive."""
        me = _me("")
        if holder.host != me.host or me.namespace == "-" or holder.namespace != me.namespace:
            return False  # its pids are not ours to look up
        if holder.pid == me.pid:
            # We have our turn, so no thread of ours holds the file: it was left by this pid
            # before an os.execv (which keeps pid and start time), or by an earlier process.
            return True
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        start = process_start_time(holder.pid)
        # 0 on either side: unreadable (hidepid, no /proc), so it proves nothing.
        return start != 0 and holder.start != 0 and start != holder.start

    def _clear_abandoned_guard(self, guard: str) -> None:
        # A breaker killed between creating and removing its guard would block breaking forever.
        try:
            if time.time() - os.stat(guard).st_mtime > self.timeout:
                os.unlink(guard)
        except FileNotFoundError:
            pass
