"""A file's birth (creation) time, where the system and the file system record it.

Time rotation decides which interval a file belongs to from the file itself, so that every
process holding it agrees. Its modification time changes with every write, and a write in the
last moments of an interval reads, within the slack that coarse kernel clocks need, as one of the
next: a process that opened the file before such a write and one that opened it after disagreed
about when it is due. Its birth time never changes.

macOS and the BSDs give ``st_birthtime`` in ``os.stat``; Linux only through ``statx(2)``
(glibc 2.28+, Linux 4.11+), which Python's ``os`` does not wrap before 3.15. Where neither
answers (an older libc or kernel, a seccomp filter, NFS, ext4 with 128-byte inodes), None.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Final

_AT_EMPTY_PATH: Final = 0x1000  # statx the descriptor itself
_STATX_BTIME: Final = 0x800
_STATX_SIZE: Final = 256  # struct statx, padding included
_BTIME_OFFSET: Final = 80  # stx_btime: struct statx_timestamp {s64 tv_sec; u32 tv_nsec; ...}

_statx: Any
try:
    import ctypes  # absent from some minimal builds of Python

    _statx = ctypes.CDLL(None, use_errno=True).statx
    _statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                       ctypes.c_void_p]
    _statx.restype = ctypes.c_int
except (ImportError, AttributeError, OSError, TypeError):  # no statx in libc; no CDLL(None)
    _statx = None


def birth_time(fd: int, st: os.stat_result) -> float | None:
    """When the file open at ``fd`` (whose ``os.fstat`` is ``st``) was created, or None."""
    born = getattr(st, "st_birthtime", None)
    if born is None:
        born = _statx_birth(fd)
    # Where a file system keeps none, the BSDs say -1 or 0: taken for a birth in 1970, the
    # file, and every new one after it, would be due at once, rotated on every write.
    return float(born) if born is not None and born > 0 else None


def _statx_birth(fd: int) -> float | None:
    if _statx is None:
        return None
    buffer = ctypes.create_string_buffer(_STATX_SIZE)
    if _statx(fd, b"", _AT_EMPTY_PATH, _STATX_BTIME, buffer) != 0:
        return None
    (mask,) = struct.unpack_from("I", buffer, 0)
    if not mask & _STATX_BTIME:  # the file system keeps no birth time
        return None
    seconds, nanoseconds = struct.unpack_from("qI", buffer, _BTIME_OFFSET)
    return int(seconds) + int(nanoseconds) / 1e9
