"""One writer per file per process, as its callers see it: queue a line, flush, close.

``submit()`` only appends to the queue and wakes the owner (``_owner``), which writes on a
thread of its own: no event loop is involved, so nothing is lost or repeated when a loop stops,
closes, or is replaced, and ``asyncio.run()`` cancelling every task at exit cancels nothing of
ours. ``flush()`` puts a mark in the queue and waits until the owner has written everything
before it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Final

from ._owner import ChunkOwner, report
from ._queue import FlushMark, Item, Overflow, RecordQueue
from .sinks import FileSink, Sink

# How long close, shutdown and exit wait for a running compression (it may wait for a writer
# frozen mid-write, and gzips a whole backup): past it the backup may stay plain, and the next
# sweep, in any process, compresses it.
COMPRESSION_DEADLINE: Final = 60.0


class Writer:
    """Queues lines for one sink; its ``ChunkOwner`` writes them."""

    def __init__(self, sink: Sink, *, max_queue: int, overflow: Overflow) -> None:
        self.sink = sink
        self.queue = RecordQueue(max_queue, overflow)
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
        self.owner.wake()

    def _room(self) -> bool:
        """The queue is full: whether to queue the record after all, once there is room."""
        queue, owner = self.queue, self.owner
        if queue.overflow == "drop":
            queue.count_drop()
            return False
        # "block": wait until the owner takes the next chunk out of the queue. Waiting also
        # hands the GIL to the owner thread, which a busy event loop would otherwise starve.
        # But never wait for something outside this process (another process holding the
        # rotation lock, a disk refusing writes), nor for ourselves: then the queue grows past
        # max_queue instead, and nothing is lost.
        if not owner.is_owner_thread():
            owner.progress.wait(lambda: not queue.full() or owner.stalled or not owner.running())
        return True

    # -- flush and close ---------------------------------------------------------------------

    def _mark(self) -> FlushMark:
        mark = FlushMark()
        self.queue.items.append(mark)
        self.owner.wake(always=True)
        return mark

    async def flush(self) -> None:
        """Return once every record queued before the call is written (or counted failed).

        Returns early while the disk refuses writes; ``stats()["errors"]`` tells what failed.
        """
        mark, owner = self._mark(), self.owner
        await owner.progress.wait_async(lambda: mark.done or owner.failing)

    def flush_sync(self) -> None:
        """The blocking twin of ``flush()``; safe in a signal handler (see ``_progress``)."""
        mark, owner = self._mark(), self.owner
        if not owner.is_owner_thread():  # the owner (or a caller writing) waits for no one
            owner.progress.wait(lambda: mark.done or owner.failing)

    async def aclose(self) -> None:
        """Write everything, stop the owner, close the sink, wait for compressions."""
        if self.closed:
            return
        self.closed = True
        owner = self.owner
        owner.stop()
        await owner.progress.wait_async(lambda: owner.finished and not owner.writing())
        owner.write_here()  # what came after the owner's last look; closes the sink
        if self.compressions is not None:
            compressions = self.compressions
            try:
                await asyncio.wait_for(owner.progress.wait_async(compressions.idle),
                                       COMPRESSION_DEADLINE)
            except asyncio.TimeoutError:
                compressions.left_running()

    def close(self) -> None:
        """The synchronous twin of ``aclose()``, for ``Handler.close()`` and exit."""
        if self.closed:
            return
        self.closed = True
        self.owner.stop()
        self.owner.join()
        self.owner.write_here()
        if self.compressions is not None:
            self.compressions.join(COMPRESSION_DEADLINE)

    # -- rotation follow-up, stats -------------------------------------------------------------

    def _after_rotation(self) -> None:
        if self.compressions is not None:
            self.compressions.request()

    def stats(self) -> dict[str, int]:
        return {
            "written": self.owner.written,
            "dropped": self.queue.dropped,
            "rotations": self.sink.rotations,
            "errors": self.owner.errors,
            "queued": self.owner.queued,
        }

    @property
    def name(self) -> str:
        return getattr(self.sink, "path", None) or repr(getattr(self.sink, "stream", self.sink))

    def reset_after_fork(self) -> None:
        self.owner.reset_after_fork(closed=self.closed)
        if self.compressions is not None:
            self.compressions.reset_after_fork()


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
