"""One writer per file per process, as its callers see it: queue a line, flush, close.

``submit()`` only appends to the queue and wakes the owner (``_owner``), which writes on a
thread of its own: no event loop is involved, so nothing is lost or repeated when a loop stops,
closes, or is replaced, and ``asyncio.run()`` cancelling every task at exit cancels nothing of
ours. ``flush()`` puts a mark in the queue and waits until the owner has written everything
before it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Final

from ._owner import STALL_AFTER, ChunkOwner, report
from ._queue import FlushMark, Item, Overflow, RecordQueue
from .sinks import FileSink, Sink

# While the sink is stalled, records wait in memory up to this many times ``max_queue``, and
# at least STALLED_QUEUE_MIN (100,000 records by default); past that bound they are dropped,
# counted in stats()["dropped"], and a line says how many once the sink takes writes again.
STALLED_QUEUE_FACTOR: Final = 10
STALLED_QUEUE_MIN: Final = 100_000
# shutdown(), close() and the exit drain wait for a sink whose write() does not return for at
# most this many seconds, then say on stderr what they could not write; flush() returns then.
STUCK_DEADLINE: Final = 5.0
# How long close, shutdown and exit wait for a running compression (it may wait for a writer
# frozen mid-write, and gzips a whole backup): past it the backup may stay plain, and the next
# sweep, in any process, compresses it.
COMPRESSION_DEADLINE: Final = 60.0


class Writer:
    """Queues lines for one sink; its ``ChunkOwner`` writes them."""

    def __init__(self, sink: Sink, *, max_queue: int, overflow: Overflow) -> None:
        self.sink = sink
        self.queue = RecordQueue(max_queue, overflow)
        self.memory_bound = max(STALLED_QUEUE_FACTOR * max_queue, STALLED_QUEUE_MIN)
        self.owner = ChunkOwner(self.queue, sink, self.name, self._after_rotation)
        self.compressions = (Compressions(sink, self.owner)
                             if isinstance(sink, FileSink) and sink.compress else None)
        self.users = 0  # handlers sharing this writer
        self.options: dict[str, object] = {}  # what a file writer was opened with
        self.closed = False

    # -- the producer side: called by handlers' emit(), on any thread ----------------------

    def submit(self, item: Item) -> None:
        """Queue one line; wait only as ``overflow="block"`` allows (see ``_room``)."""
        queue = self.queue
        if len(queue.items) >= queue.max_queue and not self._room():
            return
        queue.items.append(item)
        owner = self.owner
        if owner._idle or owner.stopped or owner._thread is None:  # wake() has work to do
            owner.wake()

    def _room(self) -> bool:
        """The queue is full: whether to queue the record after all, once there is room."""
        queue, owner = self.queue, self.owner
        if queue.overflow == "drop":
            queue.count_drop()
            return False
        # "block": wait until the owner takes the next chunk out of the queue. Waiting also
        # hands the GIL to the owner thread, which a busy event loop would otherwise starve.
        # But never wait for something outside this process (another process holding the
        # rotation lock, a disk refusing writes, a write() that does not return: a pipe or a
        # socket nobody reads, a hung mount), nor for ourselves: then the queue grows past
        # max_queue instead, up to the memory bound. A write() in progress is judged stalled
        # only after STALL_AFTER, so the wait looks again that often.
        if not owner.is_owner_thread():
            owner.progress.wait(lambda: not queue.full() or owner.stalled or not owner.running(),
                                recheck=STALL_AFTER)
        if len(queue.items) >= self.memory_bound:
            queue.count_drop()
            return False
        return True

    # -- flush and close ---------------------------------------------------------------------

    def _mark(self) -> FlushMark:
        mark = FlushMark()
        self.queue.items.append(mark)
        self.owner.wake(always=True)
        return mark

    async def flush(self) -> None:
        """Return once every record queued before the call is written (or counted failed).

        Returns early while the disk refuses writes (``stats()["errors"]`` tells what failed),
        and once a ``write()`` has made no progress for ``STUCK_DEADLINE``.
        """
        mark, owner = self._mark(), self.owner
        await owner.progress.wait_async(lambda: mark.done or self._given_up(), recheck=0.05)

    def flush_sync(self) -> None:
        """The blocking twin of ``flush()``; safe in a signal handler (see ``_progress``)."""
        mark, owner = self._mark(), self.owner
        if not owner.is_owner_thread():  # the owner (or a caller writing) waits for no one
            owner.progress.wait(lambda: mark.done or self._given_up(), recheck=0.05)

    def _given_up(self) -> bool:
        """Whether waiting for the sink is pointless now: the disk refuses writes, or a
        ``write()`` has not returned for ``STUCK_DEADLINE``."""
        return self.owner.failing or self.owner.stuck_for() > STUCK_DEADLINE

    async def aclose(self) -> None:
        """Write everything, stop the owner, close the sink, wait for compressions."""
        if self.closed:
            return
        self.closed = True
        owner = self.owner
        owner.stop()
        await owner.progress.wait_async(
            lambda: owner.finished and not owner.writing() or owner.stuck_for() > STUCK_DEADLINE,
            recheck=0.05)
        if owner.stuck_for() > STUCK_DEADLINE:
            self._report_stuck()
            return
        owner.write_here()  # what came after the owner's last look; closes the sink
        if self.compressions is not None:
            compressions = self.compressions
            try:
                await asyncio.wait_for(owner.progress.wait_async(compressions.idle),
                                       COMPRESSION_DEADLINE)
            except asyncio.TimeoutError:
                compressions.left_running()

    def close(self, *, compressions: bool = True) -> None:
        """The synchronous twin of ``aclose()``, for ``Handler.close()`` and exit.

        ``compressions=False`` does not wait for a gzip of rotated files in progress (a
        process about to die of a signal): the next rotation's sweep does what it left.
        """
        if self.closed:
            return
        self.closed = True
        self.owner.stop()
        if not self.owner.join(give_up_after=STUCK_DEADLINE):
            self._report_stuck()
            return
        self.owner.write_here()
        if compressions and self.compressions is not None:
            self.compressions.join(COMPRESSION_DEADLINE)

    def _report_stuck(self) -> None:
        """Say on stderr what a stuck sink kept us from writing (stats()["queued"] counts it).

        The owner thread keeps the records: if the sink takes writes again before the process
        ends, they are still written, once. Said from a thread of its own: when stderr is a
        pipe nobody reads, saying it would block too, and exit must not wait for it. When
        stderr is the stuck sink itself it is not said at all: a thread blocked inside
        sys.stderr's lock makes the interpreter abort at exit instead of ending.
        """
        if _same_file(self.sink, 2):
            return
        message = (f"aiolog: {self.name} has not taken a write for {STUCK_DEADLINE:g} s; "
                   f"{self.owner.queued} records not written")
        thread = threading.Thread(target=report, args=(message, None), daemon=True,
                                  name="aiolog-report")
        try:
            thread.start()
        except RuntimeError:  # interpreter exit refuses threads: say it here
            report(message, None)
            return
        thread.join(0.5)

    # -- rotation follow-up, stats -------------------------------------------------------------

    def _after_rotation(self) -> None:
        if self.compressions is not None:
            self.compressions.request()

    def stats(self) -> dict[str, int]:
        counts = {
            "written": self.owner.written,
            "dropped": self.queue.dropped,
            "rotations": self.sink.rotations,
            "errors": self.owner.errors,
            "queued": self.owner.queued,
        }
        # A sink may count more (a network sink: connected, reconnects). Its "errors" are
        # records it took, so the owner counted them written, that it knows were not delivered
        # (a collector refused them).
        sink_stats = getattr(self.sink, "stats", None)
        if sink_stats is not None:
            for key, value in sink_stats().items():
                if key == "errors":
                    counts["errors"] += value
                    counts["written"] -= value
                else:
                    counts[key] = value
        return counts

    @property
    def name(self) -> str:
        return getattr(self.sink, "path", None) or repr(getattr(self.sink, "stream", self.sink))

    def reset_after_fork(self) -> None:
        reset_sink = getattr(self.sink, "reset_after_fork", None)
        if reset_sink is not None:  # a file, or a connection to a collector, is the parent's
            reset_sink()
        self.owner.reset_after_fork(closed=self.closed)
        if self.compressions is not None:
            self.compressions.reset_after_fork()


def _same_file(sink: Sink, fd: int) -> bool:
    """Whether ``sink`` writes to the file (or pipe) that descriptor ``fd`` is open on."""
    own = getattr(sink, "fd", None)
    if own is None:
        return False
    try:
        a, b = os.fstat(own), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Compressions:
    """Gzips a file's rotated backups on one thread at a time, outside the owner's way."""

    def __init__(self, sink: FileSink, owner: ChunkOwner) -> None:
        self._sink = sink
        self._owner = owner
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._again = False  # a rotation happened since the running sweep looked
        self._thread: threading.Thread | None = None
        self._failing = False  # reported already: once until a sweep succeeds again

    def request(self) -> None:
        with self._lock:
            self._again = True
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"aiolog-compress {self._sink.path}")
            try:
                self._thread.start()
                return
            except RuntimeError:  # interpreter exit: no new threads; compress right here
                self._thread = None
        self._sweep()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._again:
                    self._thread = None
                    break
                self._again = False
            self._sweep()
        self._owner.progress.notify()

    def _sweep(self) -> None:
        try:
            self._sink.compress_backups()
        except Exception as exc:  # reported once, never raised into shutdown()
            if not self._failing:
                self._failing = True
                report(f"aiolog: compressing a rotated file of {self._sink.path} failed", exc)
        else:
            self._failing = False

    def idle(self) -> bool:
        return self._thread is None

    def join(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                self.left_running()

    def left_running(self) -> None:
        report(f"aiolog: a compression of {self._sink.path} still runs after "
               f"{COMPRESSION_DEADLINE:.0f} s; not waiting for it (the next sweep finishes it)",
               None)
