"""Size and time rollover policies and the rename sequence.

Everything here is plain blocking file-system work on paths; it knows nothing of queues, tasks or
event loops, and must only be called with the rotation lock held (compression excepted).
"""

from __future__ import annotations

import datetime
import errno
import gzip
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import _steps
from ._steps import Guard, LockLost, identity, move, remove

if TYPE_CHECKING:
    from ._lock import Lockfile

_SECONDS: Final = {"S": 1, "M": 60, "H": 3600, "D": 86400}
# Suffixes as logging.handlers.TimedRotatingFileHandler names them.
_SUFFIX: Final = {
    "S": ("%Y-%m-%d_%H-%M-%S", r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"),
    "M": ("%Y-%m-%d_%H-%M", r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}"),
    "H": ("%Y-%m-%d_%H", r"\d{4}-\d{2}-\d{2}_\d{2}"),
    "D": ("%Y-%m-%d", r"\d{4}-\d{2}-\d{2}"),
}
_EPOCH_MONDAY_OFFSET: Final = 3  # 1970-01-01 was a Thursday


@dataclass(frozen=True)
class TimePolicy:
    """Interval boundaries computed from the wall clock alone, so every process agrees on them.

    ``at`` is the time of day (seconds) of the daily and weekly boundaries: ``86400`` for
    ``W0``..``W6`` without ``atTime``, because ``TimedRotatingFileHandler`` then rolls over at
    the midnight that *ends* the named weekday (``W0``: Monday 24:00, Tuesday 00:00); with
    ``atTime`` it rolls over on the named weekday at that time.
    """

    when: str
    interval: int = 1
    utc: bool = False
    at: int = 0

    @classmethod
    def parse(cls, when: str, interval: int, utc: bool,
              at_time: datetime.time | None = None) -> TimePolicy:
        """Validate ``when``/``interval``/``atTime`` as ``TimedRotatingFileHandler`` takes them."""
        key = when.upper()
        if not (key in _SECONDS or key == "MIDNIGHT" or re.fullmatch(r"W[0-6]", key)):
            raise ValueError(f"Cannot parse rotation from when={when!r}: expected one of "
                             "'S', 'M', 'H', 'D', 'midnight', 'W0'..'W6'")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be a positive integer, not {interval!r}")
        weekly = key.startswith("W")
        if at_time is None:
            at = 86400 if weekly else 0
        elif key == "MIDNIGHT" or weekly:
            if not isinstance(at_time, datetime.time):
                raise TypeError(f"atTime must be a datetime.time (as TimedRotatingFileHandler "
                                f"takes it), not {at_time!r}")
            at = (at_time.hour * 60 + at_time.minute) * 60 + at_time.second
        else:
            # TimedRotatingFileHandler ignores atTime here; a setting with no effect is refused.
            raise ValueError(f"atTime applies to when='midnight' and 'W0'..'W6' only, not "
                             f"when={when!r}: remove it, or use when='midnight'")
        return cls(key, interval, utc, at)

    def _offset(self, t: float) -> int:
        return 0 if self.utc else time.localtime(t).tm_gmtoff

    def interval_start(self, t: float) -> float:
        """The start of the interval holding wall-clock time ``t``."""
        offset = self._offset(t)
        local = t + offset
        if self.when in _SECONDS:
            period = _SECONDS[self.when] * self.interval
            return self._to_utc(local - local % period, offset)
        # Days "start" at self.at: shift the clock back by it, count whole days, shift forward.
        days = int((local - self.at) // 86400)
        if self.when == "MIDNIGHT":
            days -= days % self.interval
        else:
            days -= (days + _EPOCH_MONDAY_OFFSET - int(self.when[1])) % 7
            # Weeks counted from the first such weekday after the epoch: every process agrees.
            weeks = (days - (int(self.when[1]) - _EPOCH_MONDAY_OFFSET) % 7) // 7
            days -= (weeks % self.interval) * 7
        return self._to_utc(days * 86400 + self.at, offset)

    def _to_utc(self, local: float, offset: int) -> float:
        """The moment a local clock time names, taking the UTC offset in force *then*.

        ``offset`` is the one at ``t``; on a daylight-saving day the interval's start (local
        midnight) has the other one, and with ``t``'s the start was an hour off: the backup of
        a spring-forward day was named after the day before.
        """
        start = local - offset
        then = self._offset(start)
        return start if then == offset else local - then

    def next_boundary(self, t: float) -> float:
        """The first boundary after ``t``."""
        start = self.interval_start(t)
        if self.when in _SECONDS and self.when != "D":
            period = _SECONDS[self.when] * self.interval
            if start + period > t:
                return start + period
            # The clock was set back (daylight saving ended) inside this interval of the local
            # clock, which lasts longer by as much: it ends when the local clock reaches its
            # end. One period after its start was behind t: every new file was due at once,
            # rotated again and again with nothing written, until the local clock got there.
            offset = self._offset(t)
            local = t + offset
            return local - local % period + period - offset
        days = 7 * self.interval if self.when.startswith("W") else self.interval
        # A local day lasts 23 or 25 hours across a daylight-saving change: land two hours
        # into the next interval and take its start.
        return self.interval_start(start + days * 86400 + 7200)

    def suffix(self, t: float) -> str:
        key = self.when if self.when in _SUFFIX else "D"
        convert = time.gmtime if self.utc else time.localtime
        return time.strftime(_SUFFIX[key][0], convert(self.interval_start(t)))

    def suffix_pattern(self) -> str:
        return _SUFFIX[self.when if self.when in _SUFFIX else "D"][1]


def _backups(path: str, pattern: str) -> list[tuple[str, re.Match[str]]]:
    """The rotated files of ``path`` whose suffix matches ``pattern``, by listing the directory.

    One listing per rotation: the cost follows the files that exist, not ``backup_count``.
    """
    directory, base = os.path.split(path)
    matcher = re.compile(re.escape(base) + r"\." + pattern + r"(?:\.gz)?$")
    found = []
    for name in os.listdir(directory or "."):
        match = matcher.match(name)
        if match:
            found.append((os.path.join(directory, name), match))
    return found


def _move_live(path: str, target: str, guard: Guard) -> str:
    """Move the live file to ``target``, or to a free name after it if that is taken."""
    live = identity(path)
    if live is None:
        raise FileNotFoundError(errno.ENOENT, "the log file vanished under the lock", path)
    if not move(path, target, guard, live):
        target = _free_name(target)
        if not move(path, target, guard, live):
            raise FileExistsError(errno.EEXIST, "no free name to rotate to", target)
    return target


def rotate_by_size(path: str, backup_count: int, guard: Guard | None = None,
                   failures: list[OSError] | None = None) -> str:
    """Shift ``path.N`` up by one (newest is ``.1``), move ``path`` to ``.1``, apply retention.

    Returns the name the current file now has. A backup that cannot be shifted or deleted
    (retention) goes into ``failures`` (raised after the rotation if None) and is skipped:
    it must never stop the rotation, or the writing behind it.
    """
    guard = guard or Guard(None)
    problems: list[OSError] = [] if failures is None else failures
    indexed = sorted(((int(m.group(1)), p) for p, m in _backups(path, r"(\d+)")), reverse=True)
    for index, old in indexed:
        gz = ".gz" if old.endswith(".gz") else ""
        ident = identity(old)
        if ident is None:
            continue
        try:
            if backup_count and index >= backup_count:
                remove(old, guard, ident)  # retention: the only deletion of a log file we make
            else:
                # Highest first, so the target was already moved up; a stray file there is kept.
                move(old, f"{path}.{index + 1}{gz}", guard, ident)
        except FileNotFoundError:
            pass  # gone meanwhile (an operator's rm): nothing to shift
        except OSError as exc:
            problems.append(exc)
    target = _move_live(path, f"{path}.1", guard)
    if failures is None and problems:
        raise problems[0]
    return target


def rotate_by_time(path: str, suffix: str, backup_count: int, pattern: str,
                   guard: Guard | None = None, failures: list[OSError] | None = None) -> str:
    """Move ``path`` to ``path.<suffix>`` (or ``.<suffix>.N`` past the highest N), apply retention."""
    guard = guard or Guard(None)
    problems: list[OSError] = [] if failures is None else failures
    # Retention takes ``.<suffix>`` as the oldest of its interval and a higher N as newer, so a
    # new name must sort after every existing one: the first free name would reuse one that
    # retention deleted and make the newest file the oldest, deleted by this very rotation.
    target = _move_live(path, _name_after(f"{path}.{suffix}"), guard)
    if backup_count:
        found = _backups(path, f"({pattern})(?:\\.(\\d+))?")
        found.sort(key=lambda item: (item[1].group(1), int(item[1].group(2) or 0)))
        for old, _ in found[: max(0, len(found) - backup_count)]:
            ident = identity(old)
            try:
                if ident is not None:
                    remove(old, guard, ident)
            except FileNotFoundError:
                pass
            except OSError as exc:
                problems.append(exc)
    if failures is None and problems:
        raise problems[0]
    return target


def _name_after(name: str) -> str:
    """``name`` if neither it nor any ``name.N`` exists (plain or .gz), else ``name.<highest N + 1>``."""
    directory, base = os.path.split(name)
    matcher = re.compile(re.escape(base) + r"(?:\.(\d+))?(?:\.gz)?$")
    numbers = [int(match.group(1) or 0) for match in map(matcher.match, os.listdir(directory or "."))
               if match]
    return f"{name}.{max(numbers) + 1}" if numbers else name


def _free_name(taken: str) -> str:
    n = 1
    while os.path.lexists(f"{taken}.{n}") or os.path.lexists(f"{taken}.{n}.gz"):
        n += 1
    return f"{taken}.{n}"


def compress_backups(path: str, pattern: str, lock: Lockfile) -> None:
    """Gzip every plain rotated file of ``path`` whose suffix matches ``pattern``.

    Every plain backup, not only the one just rotated: a compressor that never ran (a crash, a
    process that exited first) leaves work that the next one picks up.

    One backup that cannot be compressed (its ``.gz`` does not fit: ENOSPC, ``RLIMIT_FSIZE``)
    stays plain, but must not stop the sweep: every later sweep lists it again, in the same
    directory order, and would stop at it again, leaving every backup behind it plain for good.
    So the sweep goes on and raises the first failure at its end, for the caller to report.
    """
    failure: OSError | None = None
    for source, _ in _backups(path, pattern):
        if not source.endswith(".gz"):
            try:
                _compress_one(path, source, pattern, lock)
            except FileNotFoundError:
                pass  # deleted by retention, or compressed by another process meanwhile
            except LockLost:
                pass  # we were frozen past lock_timeout: the plain file stays for the next sweep
            except OSError as exc:
                failure = failure or exc
    if failure is not None:
        raise failure


def _compress_one(path: str, source: str, pattern: str, lock: Lockfile) -> None:
    """Gzip ``source`` into a hidden partial file, then give it the source's name under the lock.

    A crash before the last step leaves the plain file and a ``.part`` file, never a torn
    ``.gz``; a crash after it leaves the plain file beside its whole ``.gz``: the next holder
    of the lock repairs both (``_steps.repair``).
    """
    with _Held(source, os.O_RDONLY) as fd:
        # A writer holds a shared flock from its look at the path until its write returns. Our
        # exclusive one therefore waits for a late chunk still being written into this
        # just-rotated file. Once we hold it and the path no longer names this file, no writer
        # will write into it again: any later one looks at the path under its flock, finds it
        # moved, and writes elsewhere. Another compressor waits here too. (A writer frozen
        # mid-write keeps us waiting until it thaws; shutdown and exit wait for us only up to
        # a deadline, see _writer.Compressions.)
        flock(fd, exclusive=True)
        st = os.fstat(fd)
        if st.st_nlink == 0:
            return  # another compressor finished it while we waited
        if identity(path) == (st.st_dev, st.st_ino):
            # A rotation half done in another process (linked to its backup name, the path
            # not unlinked yet): writers may still look and write here. Leave it to the sweep
            # that rotator makes once it is done, or to the repair after its death.
            return
        # Keep only a shared flock while we read, gzip and wait for the rotation lock: a writer
        # whose descriptor is still on this file takes its shared flock at once, finds the
        # path moved and writes elsewhere, instead of waiting seconds for a big gzip (its
        # queue would fill meanwhile, and with overflow="block" hold up its event loop).
        # Another compressor still waits for our shared one with its exclusive request.
        flock(fd, exclusive=False)
        directory, base = os.path.split(source)
        partial = os.path.join(directory, f".{base}.{st.st_ino}.{os.getpid()}."
                                          f"{secrets.token_hex(4)}.gz.part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            with _Held(partial, flags) as out:
                # Exclusive while we live: repair deletes only a .part nobody holds this on.
                flock(out, exclusive=True)
                with open(out, "wb", closefd=False) as raw, open(fd, "rb", closefd=False) as plain:
                    with gzip.GzipFile(fileobj=raw, mode="wb", filename=base) as gz:
                        shutil.copyfileobj(plain, gz, 1 << 20)
                # Synced before it gets its name: a named .gz is whole, even after power loss,
                # and the plain file may then go.
                os.fsync(out)
                if not _acquire_within(lock, lock.timeout * 2):
                    return
                try:
                    _place_compressed(path, partial, (st.st_dev, st.st_ino), pattern,
                                      Guard(lock))
                finally:
                    lock.release()
        finally:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass


def _place_compressed(path: str, partial: str, source: tuple[int, int], pattern: str,
                      guard: Guard) -> None:
    """Under the lock: name ``partial`` as its source is named now, plus ``.gz``; drop the source.

    A size rotation may have shifted the source to another name since, so it is found again by
    its inode.
    """
    done = identity(partial)
    for candidate, _ in _backups(path, pattern):
        if candidate.endswith(".gz") or identity(candidate) != source or done is None:
            continue
        gz = candidate + ".gz"
        try:
            if not move(partial, gz, guard, done):
                if _steps.gz_matches(gz, candidate):  # another compressor's, of this very file
                    remove(candidate, guard, source)
                return  # else another .gz of that name exists already: keep the plain file
            remove(candidate, guard, source)
        except LockLost:
            if identity(gz) == done and identity(candidate) != source and any(
                    identity(name) == source for name, _ in _backups(path, pattern)):
                # Frozen past lock_timeout just before naming the .gz: other processes rotated
                # meanwhile, so it got the name of a newer backup, beside another file. The
                # plain one is still named and whole (nobody compresses it while we hold its
                # flock): drop our misplaced copy, verified as ours; the next sweep redoes it.
                remove(gz, Guard(None), done)
            raise
        return


_open_here: set[int] = set()  # compressor descriptors: a forked child must not keep their flocks


class _Held:
    """A descriptor a compressor holds a flock on: unlocked explicitly before it is closed, and
    replaced by ``/dev/null`` in a forked child.

    A flock belongs to the open file, not to the process: a child forked while we hold one
    shares it, and holds it for its whole life (it never closes a descriptor of a thread it
    does not have). Its own compressor then waited for that flock forever, and so did its
    exit. ``LOCK_UN`` releases it for every sharer, and the child's copy is made harmless by
    ``_after_fork_in_child``.
    """

    def __init__(self, name: str, flags: int) -> None:
        self.fd = os.open(name, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        _open_here.add(self.fd)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        _open_here.discard(self.fd)
        try:
            flock(self.fd, exclusive=None)
        finally:
            os.close(self.fd)


def _after_fork_in_child() -> None:
    if not _open_here:
        return
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in _open_here:
            try:
                os.dup2(null, fd)  # the child's reference to the parent's open file is gone
            except OSError:
                pass
    finally:
        os.close(null)
    # Those numbers now stay open on /dev/null: the thread that would close them is gone.
    _open_here.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _acquire_within(lock: Lockfile, seconds: float) -> bool:
    """Take the rotation lock, polling: a compression thread, never the event loop, waits."""
    deadline = time.monotonic() + seconds
    while not lock.acquire():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


try:
    import fcntl
except ImportError:  # Windows: no flock, so compression cannot wait for a late chunk
    fcntl = None  # type: ignore[assignment]


def flock(fd: int, *, exclusive: bool | None) -> None:
    """Take a shared (False) or exclusive (True) flock on ``fd``, or drop it (None)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN if exclusive is None
                    else fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
