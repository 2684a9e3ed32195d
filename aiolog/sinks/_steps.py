"""The steps of a rotation that change names, each crash-consistent and re-verified, and repair.

A rotation is a sequence of renames and unlinks. Each step here keeps every record reachable
under at least one name at every instant, and the only state a crash can leave that is not
simply "some steps done, the rest not" is repaired by ``repair()``, which the next holder of the
lock runs before rotating (and the next process to open the file, when the lock is free):

- a rename is ``renameat2(RENAME_NOREPLACE)``: atomic, and never replaces a file. Where the file
  system or kernel refuses it (EINVAL, ENOSYS), ``link()`` + ``unlink()``: a crash between the
  two leaves two names for one inode, and repair drops the extra one;
- a ``.gz`` is written to a hidden ``.part`` file, synced, then renamed to its name, and only
  then is the plain backup unlinked: a crash leaves a stale ``.part`` (repair deletes it once no
  compressor holds its flock) or a plain file beside its complete ``.gz`` (repair checks the
  ``.gz`` trailer's CRC and size against the plain file, then drops the plain one);
- a removal renames the name to a hidden ``.removing`` one first and unlinks only the file it
  meant (see ``remove``): a crash leaves that hidden name, which repair drops if the file has
  another name and otherwise puts back.

A holder may be frozen at any step (SIGSTOP, a paused VM) for longer than ``lock_timeout``,
and another process then rightly breaks its lock and rotates. So before each step that renames
or removes a name, ``Guard.verify`` checks that our token is still in the lockfile and that the
name still holds the inode we looked at; if not, ``LockLost`` abandons the rotation, and the
names are left to the new holder.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import struct
import sys
import zlib
from typing import TYPE_CHECKING, Callable, Final

if TYPE_CHECKING:
    from ._lock import Lockfile

try:
    import fcntl
except ImportError:  # Windows: no flock; a .part is then left for an operator
    fcntl = None  # type: ignore[assignment]

Identity = tuple[int, int]  # (st_dev, st_ino)

_AT_FDCWD: Final = -100
_RENAME_NOREPLACE: Final = 1
# syscall numbers of renameat2, for a libc without the wrapper (glibc < 2.28, musl < 1.2.?)
_SYS_RENAMEAT2: Final = {"x86_64": 316, "aarch64": 276, "i686": 353, "i386": 353,
                         "armv7l": 382, "ppc64le": 357, "s390x": 347, "riscv64": 276}


class LockLost(Exception):
    """Our lock was broken (we were frozen past ``lock_timeout``), or a name no longer holds
    the file we looked at: abandon the rotation and destroy nothing."""


class Guard:
    """The re-check before every step that renames or removes a name."""

    def __init__(self, lock: Lockfile | None) -> None:
        self._lock = lock

    def verify(self, name: str, expected: Identity) -> None:
        if self._lock is not None and not self._lock.held():
            raise LockLost(f"the rotation lock {self._lock.path} was broken while we held it")
        if identity(name) != expected:
            raise LockLost(f"{name} changed under a rotation")


def identity(name: str) -> Identity | None:
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


_renameat2: Callable[[str, str], int] | None = None
_renameat2_loaded = False


def _load_renameat2() -> Callable[[str, str], int] | None:
    """``renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE)`` returning 0 or an errno."""
    global _renameat2, _renameat2_loaded
    if _renameat2_loaded:
        return _renameat2
    _renameat2_loaded = True
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import platform

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint]
        call = function
    else:
        number = _SYS_RENAMEAT2.get(platform.machine())
        if number is None:
            return None
        syscall = libc.syscall
        syscall.restype = ctypes.c_long

        def call(a: int, src: bytes, b: int, dst: bytes, flags: int) -> int:
            return int(syscall(ctypes.c_long(number), ctypes.c_int(a), ctypes.c_char_p(src),
                               ctypes.c_int(b), ctypes.c_char_p(dst), ctypes.c_uint(flags)))

    def renameat2(src: str, dst: str) -> int:
        if call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE):
            return ctypes.get_errno()
        return 0

    _renameat2 = renameat2
    return renameat2


def move(src: str, dst: str, guard: Guard, expected: Identity) -> bool:
    """Rename ``src`` (which must hold ``expected``) to ``dst`` unless ``dst`` exists.

    Returns whether it moved. ``os.rename`` silently replaces its target, and a replaced log
    file is a lost log file.
    """
    guard.verify(src, expected)
    sys.audit("aiolog.rename", src, dst)
    renameat2 = _load_renameat2()
    if renameat2 is not None:
        error = renameat2(src, dst)
        if error == 0:
            return True
        if error == errno.EEXIST:
            return False
        if error not in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
            raise OSError(error, os.strerror(error), src, None, dst)
        # This file system (or kernel, or seccomp filter) has no RENAME_NOREPLACE.
    try:
        os.link(src, dst)
    except FileExistsError:
        return False
    except OSError:  # no hard links either: check, then rename (a window only such a FS has)
        if os.path.lexists(dst):
            return False
        guard.verify(src, expected)
        os.rename(src, dst)
        return True
    # Two names now: a crash here is repaired (the extra name dropped). A freeze here may
    # outlast our lock; then src may be another process's fresh file, which we must not unlink.
    remove(src, guard, expected)
    return True


def remove(name: str, guard: Guard, expected: Identity) -> None:
    """Unlink ``name`` if it still holds ``expected`` and the lock is still ours.

    Checked, then unlinked, a name could still be another's file: a holder frozen between the
    check and the unlink, whose lock was broken meanwhile, would delete a file another rotator
    put there. So the name is first renamed to a hidden one of our own (unique: nothing to
    replace), and only a file that is ``expected`` is unlinked there; anything else is put back.
    A crash in between leaves the hidden name, which ``repair`` resolves.
    """
    guard.verify(name, expected)
    if stat.S_ISDIR(os.lstat(name).st_mode):  # not a log file: an operator's, left alone
        raise IsADirectoryError(errno.EISDIR, "a directory where a backup was expected", name)
    directory, base = os.path.split(name)
    hidden = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.removing")
    os.rename(name, hidden)
    if identity(hidden) == expected:
        try:
            os.unlink(hidden)
        except FileNotFoundError:  # the next holder's repair dropped it while we were frozen
            pass
    else:
        _put_back(hidden, name)


def _put_back(hidden: str, name: str) -> None:
    """Give the file at ``hidden`` back its ``name`` (or a free name after it), then drop
    ``hidden``."""
    target, n = name, 0
    while True:
        try:
            os.link(hidden, target)
            break
        except FileNotFoundError:
            return  # the next holder's repair put it back while we were frozen
        except FileExistsError:
            n += 1
            target = f"{name}.{n}"
        except OSError:  # no hard links: rename onto a free name
            if os.path.lexists(target):
                n += 1
                target = f"{name}.{n}"
                continue
            os.rename(hidden, target)
            return
    os.unlink(hidden)


def gz_matches(gz: str, plain: str) -> bool:
    """Whether ``gz`` is a complete gzip of ``plain``: its trailer's CRC-32 and size match.

    The ``.gz`` got its name only after it was written whole and synced, so a named one is
    complete; the trailer check makes sure it is this plain file's and not another's.
    """
    try:
        with open(gz, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return False
            f.seek(-8, os.SEEK_END)
            crc, size = struct.unpack("<II", f.read(8))
        crc_plain, size_plain = 0, 0
        with open(plain, "rb") as f:
            while block := f.read(1 << 20):
                crc_plain = zlib.crc32(block, crc_plain)
                size_plain += len(block)
    except OSError:
        return False
    return (crc, size) == (crc_plain, size_plain & 0xFFFFFFFF)


def part_pattern(base: str) -> re.Pattern[str]:
    """The hidden partial files a compressor of ``base``'s backups writes."""
    return re.compile(r"\." + re.escape(base) + r"\..+\.gz\.part$")


def _rank(path: str, name: str) -> tuple[int, int, str]:
    """Which of several names of one inode a rotation meant: the highest rank is kept.

    A rotation moves the live file to a backup and a backup ``.N`` to ``.N+1``, so the live
    name ranks lowest and a higher index above a lower one; a ``.part`` is below its ``.gz``.
    """
    if name == path:
        return (0, 0, "")
    if name.endswith(".part"):
        return (1, 0, name)
    tail = name[len(path) + 1:].removesuffix(".gz").rsplit(".", 1)[-1]
    return (2, int(tail) if tail.isdigit() else 0, name)


def repair(path: str, backups: list[str], guard: Guard) -> list[OSError]:
    """Under the lock: undo what a rotator or compressor that died mid-way left.

    ``backups`` are the rotated files of ``path`` (plain and ``.gz``). Returns the failures,
    for the caller to report; raises ``LockLost`` if our lock is broken meanwhile.
    """
    failures: list[OSError] = []
    directory, base = os.path.split(path)
    listing = os.listdir(directory or ".")
    parts = [os.path.join(directory, n) for n in listing
             if fcntl is not None and part_pattern(base).match(n)]
    # A remove() cut short: a second name of a file that has its own (drop it), or the only
    # one (put it back: it may be a file that was not ours to delete).
    removing = re.compile(r"\.\.?" + re.escape(base) + r"(\..+)?\.[0-9a-f]{8}\.removing$")
    for hidden in (os.path.join(directory, n) for n in listing if removing.match(n)):
        try:
            if os.lstat(hidden).st_nlink > 1:
                os.unlink(hidden)
            else:
                original = os.path.basename(hidden)[1:].rsplit(".", 2)[0]
                _put_back(hidden, os.path.join(directory, original))
        except FileNotFoundError:
            pass
        except OSError as exc:
            failures.append(exc)
    names: dict[Identity, list[str]] = {}
    for name in [path, *backups, *parts]:
        ident = identity(name)
        if ident is not None:
            names.setdefault(ident, []).append(name)

    def drop(name: str, ident: Identity) -> None:
        try:
            remove(name, guard, ident)
        except FileNotFoundError:
            pass
        except OSError as exc:
            failures.append(exc)

    # Two names for one inode: a link() + unlink() cut short. Keep the name the rotation meant.
    for ident, group in names.items():
        group.sort(key=lambda name: _rank(path, name))
        for extra in group[:-1]:
            drop(extra, ident)
    # A .part nobody writes: its compressor holds an exclusive flock on it while it lives.
    for part in parts:
        try:
            fd = os.open(part, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live compressor's
        else:
            st = os.fstat(fd)
            if st.st_nlink:
                drop(part, (st.st_dev, st.st_ino))
        finally:
            os.close(fd)
    # A plain backup beside its .gz: the compressor died between naming the .gz and the unlink.
    present = set(backups)
    for plain in backups:
        if not plain.endswith(".gz") and plain + ".gz" in present:
            ident = identity(plain)
            if ident is not None and gz_matches(plain + ".gz", plain):
                drop(plain, ident)
    return failures
