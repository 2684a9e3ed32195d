"""Process-wide glue: one writer per file, the exit drain, and a fresh start after fork."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import TextIO

from ._owner import report
from ._queue import Overflow
from .sinks import FileSink, StreamSink, _lock
from ._writer import Writer

_live: weakref.WeakSet[Writer] = weakref.WeakSet()
_files: dict[str, Writer] = {}
_files_lock = threading.Lock()


def file_writer(path: str, *, max_queue: int, overflow: Overflow, **options: object) -> Writer:
    """The writer for ``path``, shared by every handler naming the same file."""
    key = os.path.realpath(path)
    delay = options.pop("delay", False)  # how a writer starts, not how handlers share it
    with _files_lock:
        writer = _files.get(key)
        if writer is not None and not writer.closed:
            if options != writer.options:
                raise ValueError(f"{path!r} is already open in this process with other "
                                 "rotation options; give both handlers the same ones")
        else:
            writer = Writer(FileSink(path, delay=delay, **options),  # type: ignore[arg-type]
                            max_queue=max_queue, overflow=overflow)
            writer.options = options
            _files[key] = writer
            _live.add(writer)
        writer.users += 1
        return writer


def stream_writer(stream: TextIO, *, max_queue: int, overflow: Overflow) -> Writer:
    """A writer of its own for one stream handler."""
    writer = Writer(StreamSink(stream), max_queue=max_queue, overflow=overflow)
    writer.users = 1
    _live.add(writer)
    return writer


def release_writer(writer: Writer) -> None:
    """One handler is done with ``writer``; the last one closes it."""
    with _files_lock:
        writer.users -= 1
        if writer.users > 0:
            return
        for key, shared in list(_files.items()):
            if shared is writer:
                del _files[key]
    writer.close()


def live_writers() -> list[Writer]:
    return [writer for writer in list(_live) if not writer.closed]


@atexit.register
def _drain_at_exit() -> None:
    # Records still queued when the program ends without shutdown(): write them now. The owner
    # threads still run here (daemon threads stop only after atexit), so each writes its own.
    for writer in list(_live):
        try:
            writer.close()
        except Exception as exc:
            report(f"aiolog: closing {writer.name} at exit failed", exc)


def _after_fork_in_child() -> None:
    global _files_lock
    _files_lock = threading.Lock()
    _lock.reset_after_fork()
    for writer in list(_live):
        writer.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
