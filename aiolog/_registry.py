"""Process-wide glue: one writer per file, the exit drain, and a fresh start after fork."""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from types import FrameType
from typing import TextIO

from ._owner import report
from ._queue import Overflow
from .sinks import FileSink, Sink, StreamSink, _lock
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
    _watch_sigterm()
    return writer


def stream_writer(stream: TextIO, *, max_queue: int, overflow: Overflow) -> Writer:
    """A writer of its own for one stream handler."""
    return sink_writer(StreamSink(stream), max_queue=max_queue, overflow=overflow)


def sink_writer(sink: Sink, *, max_queue: int, overflow: Overflow) -> Writer:
    """A writer of its own for one handler of a sink no other handler shares (a stream, a
    collector)."""
    writer = Writer(sink, max_queue=max_queue, overflow=overflow)
    writer.users = 1
    _live.add(writer)
    _watch_sigterm()
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


def _drain_at_exit() -> None:
    # Records still queued when the program ends without shutdown(): write them now. The owner
    # threads still run here (daemon threads stop only after this), so each writes its own.
    # Records logged later (other atexit functions, non-daemon threads) are written by the
    # callers themselves, synchronously, as after shutdown().
    for writer in list(_live):
        try:
            writer.close()
        except Exception as exc:
            report(f"aiolog: closing {writer.name} at exit failed", exc)


# Every way out of a process that Python offers a hook for runs the drain once (a second run
# finds every writer closed). atexit covers a normal exit. It does not run where
# multiprocessing ends a child: after the target returns (fork and forkserver children, Pool
# and ProcessPoolExecutor workers, also when recycled by maxtasksperchild) the child calls
# threading._shutdown() and then os._exit(). threading._shutdown() runs the functions
# registered with threading._register_atexit (CPython's hook for concurrent.futures, there
# since 3.9) before it joins the non-daemon threads; a normal exit runs it too, before atexit.
# Chosen over hooking multiprocessing's util._exit_function (a child-only path that also
# differs by start method) and over a non-daemon sentinel thread (one more thread in every
# process, and forked children must start their own). Where that hook is missing (another
# Python implementation), atexit alone drains.
atexit.register(_drain_at_exit)
_register_threading_atexit = getattr(threading, "_register_atexit", None)
if _register_threading_atexit is not None:
    try:
        _register_threading_atexit(_drain_at_exit)
    except RuntimeError:  # imported while the interpreter is already exiting: atexit only
        pass


_sigterm_watched = False


def _watch_sigterm() -> None:
    """Where SIGTERM would kill the process outright, drain first, then die of it.

    With the default action a SIGTERM ends the process without atexit: a container stop of a
    program with no handler, or a server that restores the default and re-raises the signal
    after its graceful shutdown (uvicorn, alone or as gunicorn's worker). Installed once, by
    the first writer, and only where it changes nothing else: on the main thread (the only
    one that may) and only while the disposition is the default one (not ignored, no handler
    of the application's or of another library, none set outside Python). A server that
    installs its own handler later and restores ours before re-raising (uvicorn's
    ``capture_signals``) reaches it. Its one cost: Python runs it between bytecodes on the main
    thread, so a main thread inside a long C call that ignores EINTR dies when it returns.
    """
    global _sigterm_watched
    if _sigterm_watched or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _drain_and_die)
    except (ValueError, OSError):  # a sub-interpreter, or no SIGTERM here
        return
    _sigterm_watched = True


def _drain_and_die(signum: int, frame: FrameType | None) -> None:
    # Runs on the main thread between bytecodes, not inside the C signal handler. close()
    # waits only for the owner threads (and the right to write, never taken from the code
    # this interrupted: see ChunkOwner.join) and gives up on a sink stuck for STUCK_DEADLINE.
    # A gzip in progress is not waited for: a process on its way out leaves it to the next.
    for writer in list(_live):
        try:
            writer.close(compressions=False)
        except Exception as exc:
            report(f"aiolog: closing {writer.name} on SIGTERM failed", exc)
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)  # the default action, as if we had never been here


def _after_fork_in_child() -> None:
    global _files_lock
    _files_lock = threading.Lock()
    _lock.reset_after_fork()
    for writer in list(_live):
        writer.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
