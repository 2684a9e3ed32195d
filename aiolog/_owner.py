"""The chunk owner: the one party that takes chunks out of the queue and writes them.

Exactly once, by construction: a chunk is taken from the queue only by the holder of the right
to write (``_right``), is kept in ``_chunk`` from before its first byte is written until it is
all on disk or counted as failed, and its ``offset`` says how much is written (a short write
resumes, never repeats). Nobody else touches it.

The holder is the owner thread, for its whole life. Every other path (``flush()``, exit, a
full queue) hands work to it and waits. Only where no owner thread can run (it was stopped by
``close()``, or could not be started because the interpreter is exiting) does a caller become
the holder, by taking ``_right`` without waiting; if it is taken, its holder writes what the
caller queued, because a holder looks at the queue again after letting go.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import Final

from ._progress import Progress
from ._queue import Chunk, RecordQueue
from .sinks import Sink

_RETRY_FIRST: Final = 0.05  # seconds before the first retry of a failed write
_RETRY_MAX: Final = 2.0
_LOCK_POLL: Final = 0.005  # seconds between tries of a rotation lock another process holds
_LINGER: Final = 0.0005  # seconds a woken owner lets a burst gather before taking it
_LINGER_RECORDS: Final = 100  # ... unless this many records wait already
_ATTEMPTS_WHEN_IMPATIENT: Final = 3  # a stopped writer's caller, or shutdown, gives up after these
# The stalled-sink rule, for every sink: a write() that has not returned after this long counts
# as stalled, like a held rotation lock or a failing disk. Producers stop waiting for room then
# (see Writer._room), so the event loop never waits longer for a pipe, a socket or a hung mount.
STALL_AFTER: Final = 0.005
_JOIN_POLL: Final = 0.05  # seconds between looks at a stuck sink while waiting to close


class ChunkOwner:
    """Writes one queue into one sink, on its own thread."""

    def __init__(self, queue: RecordQueue, sink: Sink, name: str,
                 after_rotation: Callable[[], None]) -> None:
        self.queue = queue
        self.sink = sink
        self.name = name
        self.progress = Progress()
        self._after_rotation = after_rotation
        self._reset()
        self._start()

    def _reset(self) -> None:
        # Everything bound to threads, and the counts: fresh at creation and in a forked child.
        self.written = self.errors = 0
        self._right = threading.Lock()
        self._holder = 0  # the thread holding _right, so it never waits for itself
        self._writing_here = threading.local()
        self._chunk: Chunk | None = None
        self._thread: threading.Thread | None = None  # set once it runs
        self._thread_ident = -1
        self._wake = _WakePipe()
        self._idle = False  # the thread sleeps until woken: a producer must write to the pipe
        self.stopping = False
        self.stopped = False  # no owner thread will run again: callers write themselves
        self.finished = False  # ... and it has let go of everything
        self._stalled = False  # the last try could not write (lock held elsewhere, disk failing)
        self._write_since = 0.0  # monotonic start of the sink.write() in progress; 0: none
        self._progress: tuple[int, int, int] = (0, 0, 0)  # what stuck_for() saw last ...
        self._progress_at = 0.0  # ... and when it changed
        self._lock_wait_since: float | None = None  # a stopping owner waits for the lock since
        self.failing = False

    # -- the producer side -----------------------------------------------------------------

    def wake(self, *, always: bool = False) -> None:
        """Called after queueing: make sure someone writes it. Takes no lock, so a signal
        handler may call it whatever the code it interrupted was doing.

        Only the first producer to find the thread idle writes to the pipe. One that is going
        to wait (``always``: a flush) writes anyway: a signal handler may have interrupted
        that first producer between clearing the flag and writing its byte.
        """
        if self._idle or always and self.running():
            self._idle = False
            self._wake.set()
        elif self._thread is None or self.stopped:
            # No owner thread (yet: a signal handler interrupting its start; or any more):
            # this caller writes, after what is queued before it.
            self.write_here()

    def is_owner_thread(self) -> bool:
        """Whether this thread holds (or is taking) the right to write: it must not wait."""
        return self._holder == threading.get_ident() or getattr(self._writing_here, "depth", 0) > 0

    def running(self) -> bool:
        return self._thread is not None and not self.stopped

    def _start(self) -> None:
        """Start the owner thread: at creation and in a forked child, never on a log call."""
        thread = threading.Thread(target=self._run, name=f"aiolog-writer {self.name}",
                                  daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            self.stopped = self.finished = True
            return
        self._thread = thread

    # -- the owner thread ------------------------------------------------------------------

    def _run(self) -> None:
        self._right.acquire()
        self._holder = self._thread_ident = threading.get_ident()
        try:
            while True:
                try:
                    gave_up = self._write_all(patient=not self.stopping)
                except Exception as exc:
                    # Nothing a record, a handler or a sink does may end this thread: its
                    # records would wait for nobody and flush() would never return.
                    self._fail_chunk_in_hand(exc)
                    continue
                # After a give-up the chunk in hand may still hold the rest of a started line
                # (see _give_up): stopping must not wait for a disk that refuses it.
                if self.stopping and (self._chunk is None or gave_up) and not self.queue.items:
                    return
                self._sleep_until_woken()
        finally:
            # Also when the thread dies of an unexpected error: a producer that still found
            # it idle would only write to the pipe, and its record would wait for nobody.
            self._idle = False
            self._holder = 0
            self._right.release()
            self.stopped = True  # from here on, callers write themselves
            try:
                self.write_here()  # what was queued after our last look
            except Exception as exc:  # a sink failing to close: flush() and close() still return
                report(f"aiolog: closing {self.name} failed", exc)
            self.finished = True
            self.progress.notify()

    def _sleep_until_woken(self) -> None:
        self._idle = True
        # Looked at after announcing idleness: a producer that queued before saw us busy.
        if self.queue.items or self.stopping:
            self._idle = False
            return
        self._pause(None)
        self._idle = False
        if len(self.queue.items) < _LINGER_RECORDS and not self.stopping:
            # Woken by the first record of a burst: let the burst gather for a moment, so it
            # is written in one chunk, not in many small ones (each costs the same syscalls,
            # and with several processes on few cores the small ones added up to a fifth of
            # the throughput). A flush waits at most this long more.
            time.sleep(_LINGER)

    def _pause(self, seconds: float | None) -> None:
        """Sleep until woken through the pipe (stop, or a record while idle) or ``seconds``."""
        if self._holder != self._thread_ident:
            time.sleep(seconds or 0)  # a caller writing itself: nobody wakes it
            return
        self._wake.wait(seconds)

    def stop(self) -> None:
        """Ask the thread to write everything and end; returns at once."""
        self.stopping = True
        if self._thread is None:  # it could not start: callers write already
            self.stopped = self.finished = True
        else:
            self._wake.set()

    def join(self, give_up_after: float) -> bool:
        """Wait until the owner thread has ended and no caller is writing; False if a sink
        ``write()`` stays in progress for ``give_up_after`` seconds first (a stuck sink)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            while thread.is_alive():
                if self.stuck_for() > give_up_after:
                    return False
                thread.join(_JOIN_POLL)
        if not self.is_owner_thread():
            # A caller may still be writing a record it logged during the close: a close()
            # followed by os.execv must find it whole on disk.
            while not self._right.acquire(timeout=_JOIN_POLL):
                if self.stuck_for() > give_up_after:
                    return False
            self._right.release()
        return True

    @property
    def stalled(self) -> bool:
        """Whether the sink takes nothing now: a lock held elsewhere, a failing disk, or a
        ``write()`` in progress for longer than ``STALL_AFTER``. Waiting for room stops then."""
        return self._stalled or self.stuck_for() > STALL_AFTER

    def stuck_for(self) -> float:
        """Seconds the ``write()`` in progress has gone without progress; 0 when none is.

        Progress is judged from outside, by whoever asks (the sink is inside a blocking call):
        the chunk's offset or the sink's rotations changed since the last look. One write()
        may rotate many times (a chunk of small records and a tiny max_bytes), and that is
        a slow sink, not a stuck one. A look after a change resets the clock; only a late
        look can make it shorter, never longer.
        """
        since = self._write_since
        if not since:
            return 0.0
        now = time.monotonic()
        chunk = self._chunk
        progress = (id(chunk), chunk.offset if chunk is not None else 0, self.sink.rotations)
        if progress != self._progress:
            self._progress, self._progress_at = progress, now
        return now - max(since, self._progress_at)

    def writing(self) -> bool:
        """Whether anyone (the thread, or a caller) holds the right to write now."""
        return self._right.locked()

    # -- writing: only ever by the holder of _right ----------------------------------------

    def write_here(self) -> None:
        """Where no owner thread runs: this caller writes what is queued, unless one is at it."""
        # Marked before taking _right: a signal handler running on this thread between the
        # acquire and the assignment of _holder must still see that we hold it, or it would
        # wait for a write that cannot go on until it returns.
        here = self._writing_here
        here.depth = getattr(here, "depth", 0) + 1  # a count: signal handlers nest
        try:
            while self._right.acquire(blocking=False):
                self._holder = threading.get_ident()
                try:
                    self._write_all(patient=False)
                    if self.stopped:  # after close() nobody else would close the file again
                        self.sink.close()
                finally:
                    self._holder = 0
                    self._right.release()
                self.progress.notify()
                # Records queued while we held it, by callers who found _right taken: ours.
                if not self.queue.items:
                    return
        finally:
            here.depth -= 1

    def _write_all(self, *, patient: bool) -> bool:
        """Write the chunk in hand, then every queued chunk, until the queue is empty.

        Impatient (a stopping writer, or a caller writing itself) gives up a chunk after a few
        tries that failed since it became impatient, and counts it, and what is queued behind
        it, as errors; returns True then.
        """
        delay = _RETRY_FIRST
        failures = 0  # tries failed since we became impatient
        rotate = True
        while True:
            chunk = self._chunk
            if chunk is None:
                chunk = self._chunk = self._take()
                if chunk is None:
                    return False
                self.progress.notify()  # room in the queue
            rotations = self.sink.rotations
            # Looked at before the try: only tries begun impatient count toward giving up. A
            # try the patient owner began on a full disk may fail just as space comes back and
            # close() asks it to stop; counting it with the patient failures before it gave up
            # at once what the disk would now take (the stateful machine lost records so).
            impatient = not patient or self.stopping
            self._write_since = time.monotonic()
            try:
                complete = self.sink.write(chunk, rotate=rotate)
            except Exception:
                self._write_since = 0.0
                self._report_failure(chunk)  # inside except: handleError() shows the error
                if impatient:
                    failures += 1
                    if failures >= _ATTEMPTS_WHEN_IMPATIENT:
                        self._give_up()
                        return True
                    if failures == 1:  # a stopping owner's tries come as soon as a caller's
                        delay = _RETRY_FIRST
                self._pause(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            self._write_since = 0.0
            if self.sink.rotations != rotations:
                self._after_rotation()
            if not complete:  # another process holds the rotation lock
                if (not patient or self.stopping) and self._stop_waiting_for_lock():
                    # This chunk goes into the current file, unrotated; a later writer rotates.
                    rotate = False
                    continue
                if not self._stalled:
                    self._stalled = True
                    self.progress.notify()
                self._pause(_LOCK_POLL)
                continue
            self._chunk = None
            self._lock_wait_since = None
            self._settle(chunk, ok=True)
            delay = _RETRY_FIRST
            failures = 0
            rotate = True

    def _take(self) -> Chunk | None:
        chunk = self.queue.take(self.sink.encode)
        if chunk is not None:
            self.errors += chunk.refused  # records the encoding could not hold (reported)
        return chunk

    def _stop_waiting_for_lock(self) -> bool:
        """A stopping owner thread, or a caller writing itself, finds the lock held elsewhere:
        whether to write unrotated now (see "max_bytes" in the README).

        A caller writing itself (the event loop, after shutdown) never waits for another
        process. The owner thread, stopping for ``shutdown()``, ``close()`` or exit, waits up to
        the sink's ``rotation_wait``: a rotation takes milliseconds, and a lock older than
        ``lock_timeout`` is broken, so it only gives up if others keep taking the lock first.
        Writing its whole queue unrotated instead passed ``max_bytes`` by megabytes.
        """
        if self._holder != self._thread_ident:
            return True
        now = time.monotonic()
        if self._lock_wait_since is None:
            self._lock_wait_since = now
        return now - self._lock_wait_since > getattr(self.sink, "rotation_wait", 0.0)

    def _settle(self, chunk: Chunk, *, ok: bool) -> None:
        if ok:
            self.written += chunk.count
            if self.failing:
                self.failing = False
                report(f"aiolog: writing to {self.name} works again", None)
        else:
            self.errors += chunk.count
        self._stalled = False
        for mark in chunk.marks:
            mark.done = True
        self.progress.notify()

    def _give_up(self) -> None:
        """Count the chunk in hand and everything queued as failed: shutdown must return.

        Except what a short write already put on disk: its whole lines count as written, and
        the rest of a line it tore stays in hand, so that the next write to the file (once
        there is space again) finishes that line before anything else. Dropping it would
        glue the next record onto the fragment and tear a record that was written fine.
        """
        errors_before = self.errors
        chunk: Chunk | None = self._chunk
        if chunk is not None and chunk.offset:
            whole, cut = chunk.cut_after_started_line()
            self.written += whole
            self.errors += cut
            if not chunk.done:  # a torn line stays in hand; nobody waits for it to finish
                for mark in chunk.marks:
                    mark.done = True
                chunk.marks.clear()
                chunk = self._take()
        while chunk is not None:
            if chunk is self._chunk:
                self._chunk = None
            self._settle(chunk, ok=False)
            chunk = self._take()
        self.progress.notify()
        # The failure's own report (once per burst, maybe long before) names the chunk in
        # hand at most: say how many records this gives up in all.
        if self.errors > errors_before:
            report(f"aiolog: gave up on {self.errors - errors_before} records for {self.name}: "
                   f"not written, counted in stats()['errors']", None)

    def _fail_chunk_in_hand(self, exc: Exception) -> None:
        """An unexpected error (a raising ``handleError``, a sink's bug): count the chunk in
        hand as failed, release its flush marks, and go on with the next."""
        report(f"aiolog: writing to {self.name} failed unexpectedly; its chunk is counted failed",
               exc)
        self._write_since = 0.0
        chunk, self._chunk = self._chunk, None
        if chunk is not None:
            self._settle(chunk, ok=False)
        self.progress.notify()

    def _report_failure(self, chunk: Chunk) -> None:
        """Tell the handler once per burst, as ``logging`` would; count the rest in stats()."""
        self._stalled = True
        if self.failing:
            return
        self.failing = True
        self.progress.notify()  # flush() returns while the disk refuses writes
        if chunk.origin is not None:
            chunk.origin.handleError(logging.makeLogRecord({"msg": chunk.lines[0].rstrip("\n")}))

    @property
    def queued(self) -> int:
        chunk = self._chunk
        return self.queue.records_waiting() + (chunk.count if chunk is not None else 0)

    def reset_after_fork(self, *, closed: bool) -> None:
        # The parent still owns what was queued at the fork, and its counts; the child writes
        # and counts only its own. A writer closed before the fork stays without a thread.
        self.queue.reset_after_fork()
        self._wake.close()
        self._reset()
        if closed:
            self.stopping = self.stopped = self.finished = True
        else:
            self._start()


class _WakePipe:
    """The owner thread sleeps on this pipe; ``set()`` (safe in a signal handler) wakes it.

    Waits with ``poll()``, not ``select()``: ``select()`` refuses descriptors past FD_SETSIZE
    (1024), which a busy server's new pipe easily gets, and the owner thread died of it.
    The descriptors are closed only when the pipe can no longer be reached (its owner is
    garbage): a close at stop could race a producer's ``set()`` and write a byte into whatever
    file reused the number. Before, they were never closed: two leaked per writer.
    """

    __slots__ = ("_read", "_write", "_poll")

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self._poll = None
        if hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(self._read, select.POLLIN)

    def set(self) -> None:
        try:
            os.write(self._write, b"\0")
        except OSError:
            pass  # full of wake-ups already (BlockingIOError), or closed

    def wait(self, seconds: float | None) -> None:
        """Sleep until ``set()`` or ``seconds``, and take the wake-ups."""
        try:
            if self._poll is not None:
                self._poll.poll(None if seconds is None else seconds * 1000)
            else:
                select.select([self._read], [], [], seconds)
            os.read(self._read, 4096)
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        fds, self._read, self._write = (self._read, self._write), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def report(message: str, exc: BaseException | None) -> None:
    """Tell stderr what went wrong in the background, without ever raising."""
    stream = sys.stderr
    if stream is None or not logging.raiseExceptions:
        return
    try:
        text = f"--- {message} ---\n"
        if exc is not None:
            text += f"{type(exc).__name__}: {exc}\n"
        stream.write(text)
        stream.flush()
    except Exception:
        pass
