"""One writer per file per process: takes formatted lines, writes them in chunks, rotates.

Records wait in one ``deque``. The loop thread appends to it directly; other threads append and
wake the writer task with ``call_soon_threadsafe`` only when it sleeps. (An ``asyncio.Queue`` is
not thread-safe, so each foreign record would need its own callback, and callbacks still pending
when a loop closes are discarded with it: a record parked in the deque survives the loop.)

When no loop can take the work (none yet, loop closed, after shutdown, at exit, queue full with
``overflow="block"``) the caller writes synchronously, after everything queued before it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Literal

from ._sink import FileSink, Sink

if TYPE_CHECKING:
    from ._handler import AsyncHandler

Overflow = Literal["block", "drop"]
Item = tuple["AsyncHandler", str]  # the handler that formatted a line, and the line

CHUNK_RECORDS: Final = 1000
CHUNK_BYTES: Final = 64 * 1024
_RETRY_FIRST: Final = 0.05  # seconds before the first retry of a failed write
_RETRY_MAX: Final = 2.0
_LOCK_POLL: Final = 0.005  # seconds between tries of a busy rotation lock

_get_running_loop = asyncio._get_running_loop  # the C fast path; None when no loop runs here


class Chunk:
    """Records taken from the queue and their encoded lines, not yet handed to the OS."""

    __slots__ = ("count", "data", "first")

    def __init__(self, count: int, data: bytes | str, first: Item | None) -> None:
        self.count = count
        self.data = data
        self.first = first  # whose handleError() hears of a failed write


class Writer:
    """Drains one queue into one sink, on whichever event loop last logged through it."""

    def __init__(self, sink: Sink, *, max_queue: int, overflow: Overflow) -> None:
        self.sink = sink
        self.max_queue = max_queue
        self.overflow = overflow
        self.users = 0  # handlers sharing this writer
        self.options: dict[str, object] = {}  # what a file writer was opened with
        self._records: deque[Item] = deque()
        self._state_after_fork()
        _live.add(self)

    def _state_after_fork(self) -> None:
        # Everything bound to threads or loops: fresh at creation and in a forked child.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aiolog-writer")
        self._compressions: list[Future[None]] = []
        self._sync_lock = threading.RLock()
        self._bind_lock = threading.Lock()
        self._hand_lock = threading.Lock()  # guards _in_hand, _in_flight and _draining
        self._draining = 0  # write_now() calls in progress
        self._count_lock = threading.Lock()
        self._space = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_pending = False
        self._pausing: asyncio.Future[None] | None = None
        self._progress: asyncio.Event | None = None
        self._in_hand: Chunk | None = None  # taken from the queue, not yet written
        self._in_flight: Future[bool] | None = None  # the executor job writing _in_hand
        self._closing = False
        self.closed = False
        self._failing = False
        self._taken = self._settled = 0
        self.written = self.dropped = self.errors = 0
        self._unreported_drops = 0

    # -- the producer side: called by handlers' emit(), on any thread -----------------------

    def submit(self, item: Item) -> None:
        """Queue one line, never waiting for I/O on the loop thread."""
        loop = _get_running_loop()
        if loop is not None and not self.closed:
            task = self._task
            if loop is self._loop and task is not None and not task.done() or self._bind(loop):
                if len(self._records) >= self.max_queue and not self._room_on_loop():
                    return
                self._records.append(item)
                wakeup = self._wakeup
                if wakeup is not None and not wakeup.done():
                    wakeup.set_result(None)
                return
        owner = self._loop
        if owner is not None and owner is not loop and not self.closed and owner.is_running():
            self._submit_from_thread(owner, item)
            return
        self.write_now(item)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Start the writer task on ``loop`` unless a live loop in another thread owns us."""
        with self._bind_lock:  # loops in two threads may log their first record at once
            owner, task = self._loop, self._task
            if owner is loop and task is not None and not task.done():
                return True
            if owner is not None and owner is not loop and owner.is_running() and not owner.is_closed():
                return False
            if self._closing:
                return False
            self._loop = loop
            self._wakeup = None
            self._progress = None
            self._task = loop.create_task(self._run(), name=f"aiolog-writer {self.name}")
            return True

    def _room_on_loop(self) -> bool:
        """The queue is full and the loop thread logs: whether to queue the record after all."""
        if self.overflow == "drop" or self._failing:
            # A failing disk must not freeze the application: block degrades to drop there.
            self._count_drop()
            return False
        # "block": this call writes the oldest chunk itself. One chunk, not the whole queue: a
        # busy loop can starve the executor thread of the GIL, and then every call that finds
        # the queue full shares the writing instead of one call paying for max_queue records.
        with self._sync_lock, self._writing_in_hand():
            if self._records:
                self._write_blocking(self._take_chunk())
        return True

    def _submit_from_thread(self, owner: asyncio.AbstractEventLoop, item: Item) -> None:
        while len(self._records) >= self.max_queue:
            if self.overflow == "drop" or self._failing:
                self._count_drop()
                return
            self._space.clear()
            if not owner.is_running() or self._closing:  # no task will make room: write
                self.write_now(item)
                return
            self._space.wait(0.05)  # a foreign thread may wait; the loop thread never does
        self._records.append(item)
        if self._closing:
            # The task may have taken its last look at the queue before our append: drain
            # it ourselves rather than leave the record to a writer that is going away.
            self.write_now(None)
            return
        # Ordering: the writer publishes _wakeup before its last look at the deque, and we look
        # at _wakeup after our append, so one of the two sees the other.
        if self._wakeup is not None and not self._wake_pending:
            self._wake_pending = True
            try:
                owner.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed in between: the record is still queued
                self._wake_pending = False
                self.write_now(None)

    def _wake(self) -> None:
        self._wake_pending = False
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _wake_to_close(self) -> None:
        self._wake()
        pausing = self._pausing
        if pausing is not None and not pausing.done():
            pausing.set_result(None)

    def _count_drop(self) -> None:
        with self._count_lock:
            self.dropped += 1
            self._unreported_drops += 1

    # -- the writer task ---------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._records and self._in_hand is None:
                    if self._closing:
                        return
                    self._wakeup = loop.create_future()
                    if not self._records and not self._closing:
                        await self._wakeup
                    self._wakeup = None
                    continue
                with self._hand_lock:
                    chunk = None if self._draining else self._in_hand or self._take_chunk()
                    self._in_hand = chunk
                if chunk is None:  # a thread is writing synchronously: let it finish first
                    await self._pause(_LOCK_POLL)
                    continue
                await self._write_chunk(chunk)
        except asyncio.CancelledError:
            # asyncio.run() cancels every task before closing its loop: write what is queued.
            self._wakeup = None
            self.write_now(None)
            raise

    def _take_chunk(self) -> Chunk:
        records = self._records
        parts = []
        size = count = 0
        first = records[0] if records else None
        if self._unreported_drops and records:
            with self._count_lock:
                dropped, self._unreported_drops = self._unreported_drops, 0
            parts.append(self._drop_line(records[0][0], dropped))
        popleft, append = records.popleft, parts.append
        while records and count < CHUNK_RECORDS and size < CHUNK_BYTES:
            line = popleft()[1]
            append(line)
            size += len(line)
            count += 1
        with self._count_lock:
            self._taken += count
        if len(records) < self.max_queue:
            self._space.set()
        return Chunk(count, self.sink.encode("".join(parts)), first)

    async def _write_chunk(self, chunk: Chunk) -> None:
        """Write the chunk in hand, retrying, unless ``write_now()`` takes it over meanwhile.

        Every look at ``_in_hand`` is under ``_hand_lock``, so the chunk is written and counted
        exactly once whichever of the two finishes it.
        """
        delay = _RETRY_FIRST
        while True:
            with self._hand_lock:
                if self._in_hand is not chunk:
                    return  # write_now() took the chunk over and settled it
                job = self._in_flight = self._executor.submit(self._try_write, chunk.data)
            try:
                # Shielded: asyncio.run() cancels this task at exit, and a cancelled executor
                # job that had not started yet would silently drop the chunk. On cancellation
                # _in_flight stays set, so write_now() learns from the job what was written.
                written = await asyncio.shield(asyncio.wrap_future(job))
            except OSError:
                with self._hand_lock:
                    if self._in_hand is not chunk:
                        return
                    self._in_flight = None
                    given_up = self._closing  # shutdown must return while the disk refuses
                    if given_up:
                        self._in_hand = None
                self._report_failure(chunk)  # inside except: handleError() shows the error
                if given_up:
                    self._settle(chunk.count, ok=False)
                    return
                failed = True
            else:
                failed = False
                with self._hand_lock:
                    if self._in_hand is not chunk:
                        return
                    self._in_flight = None
                    if written:
                        self._in_hand = None
            if failed:
                await self._pause(delay)
                delay = min(delay * 2, _RETRY_MAX)
            elif not written:
                await self._pause(_LOCK_POLL)  # another process is rotating
            else:
                self._recovered()
                self._settle(chunk.count, ok=True)
                self._schedule_compression()
                return

    async def _pause(self, seconds: float) -> None:
        """Sleep before a retry, cut short by shutdown."""
        # Not self._wakeup: every new record sets that, which would turn a retry into a spin.
        pausing = self._pausing = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(pausing, seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            self._pausing = None

    def _try_write(self, data: bytes | str) -> bool:
        """On the executor thread: write unless another process holds the rotation lock."""
        if not self.sink.prepare(len(data)):
            return False
        self.sink.write(data)
        return True

    def _settle(self, count: int, *, ok: bool) -> None:
        with self._count_lock:
            self._settled += count
            if ok:
                self.written += count
            else:
                self.errors += count
        self._signal_progress()

    def _signal_progress(self) -> None:
        """Wake ``flush()`` callers so they look at the counters again."""
        progress, owner = self._progress, self._loop
        if progress is None or owner is None:
            return
        self._progress = None
        if _get_running_loop() is owner:
            progress.set()
        elif not owner.is_closed():
            try:
                owner.call_soon_threadsafe(progress.set)
            except RuntimeError:
                pass

    # -- synchronous path ----------------------------------------------------------------------

    def write_now(self, item: Item | None) -> None:
        """Write the chunk in hand, everything queued, then ``item``, before returning.

        The writer task may be running on its loop in another thread meanwhile: it takes no new
        chunk while ``_draining``, so the order of records holds.
        """
        with self._sync_lock, self._writing_in_hand():
            while self._records:  # one chunk at a time, so memory stays bounded
                self._write_blocking(self._take_chunk())
            if item is not None:
                with self._count_lock:
                    self._taken += 1
                self._write_blocking(Chunk(1, self.sink.encode(item[1]), item))

    @contextmanager
    def _writing_in_hand(self) -> Iterator[None]:
        """Take over the writer task's chunk in hand and write it; the task takes no new chunk
        until the block ends."""
        with self._hand_lock:
            self._draining += 1
            chunk, job = self._in_hand, self._in_flight
            self._in_hand = self._in_flight = None
        try:
            if chunk is not None:
                if job is not None and self._wrote(job):
                    self._settle(chunk.count, ok=True)
                else:
                    self._write_blocking(chunk)
            yield
        finally:
            self._draining -= 1

    @staticmethod
    def _wrote(job: Future[bool]) -> bool:
        """Wait for the task's write job; whether it wrote its chunk."""
        try:
            return job.result()
        except Exception:
            return False

    def _write_blocking(self, chunk: Chunk) -> None:
        try:
            if self._executor_usable():
                # Queued behind any write the task already handed to this thread: order holds.
                self._executor.submit(self._prepare_and_write, chunk.data).result()
            else:
                self._prepare_and_write(chunk.data)
        except OSError:
            self._report_failure(chunk)
            self._settle(chunk.count, ok=False)
            return
        self._recovered()
        self._settle(chunk.count, ok=True)
        self._schedule_compression()

    def _executor_usable(self) -> bool:
        # At interpreter exit the pool refuses work; from its own thread, waiting would deadlock.
        return (not sys.is_finalizing() and not self.closed
                and not threading.current_thread().name.startswith("aiolog-writer"))

    def _prepare_and_write(self, data: bytes | str) -> None:
        while not self.sink.prepare(len(data)):
            time.sleep(_LOCK_POLL)  # the synchronous path: its caller chose to block
        self.sink.write(data)
        if self._closing:  # once closing, nothing else would ever close the file again
            self.sink.close()

    # -- flush and close -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every record submitted before the call is written (or failed)."""
        loop = asyncio.get_running_loop()
        task = self._task
        if self._loop is not loop or task is None or task.done():
            owner = self._loop
            if owner is not None and owner is not loop and owner.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.flush(), owner))
            else:
                await loop.run_in_executor(None, self.write_now, None)
            return
        target = self._taken + len(self._records)
        while self._settled < target and not self._failing and not task.done():
            if self._progress is None:
                self._progress = asyncio.Event()
            await self._progress.wait()

    async def aclose(self) -> None:
        """Drain, stop the task, close the sink, wait for compressions."""
        if self.closed:
            return
        self._closing = True
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            self._wake_to_close()
            await asyncio.shield(task)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self.write_now, None)
        for future in list(self._compressions):
            await asyncio.wrap_future(future)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.sink.close)
        self._finish_close()

    def close(self) -> None:
        """The synchronous twin of ``aclose()``, for ``Handler.close()`` and exit."""
        if self.closed:
            return
        self._closing = True
        self.write_now(None)
        self._wake_task_to_exit()
        for future in list(self._compressions):
            try:
                future.result()
            except Exception:  # reported by the compression itself
                pass
        self.sink.close()
        self._finish_close()

    def _wake_task_to_exit(self) -> None:
        owner, task = self._loop, self._task
        if task is None or task.done() or owner is None or owner.is_closed():
            return
        if _get_running_loop() is owner:
            self._wake_to_close()
        else:
            try:
                owner.call_soon_threadsafe(self._wake_to_close)
            except RuntimeError:
                pass

    def _finish_close(self) -> None:
        self.closed = True
        self._executor.shutdown(wait=False)
        _live.discard(self)

    # -- rotation follow-up, stats, errors --------------------------------------------------------

    def _schedule_compression(self) -> None:
        sink = self.sink
        if not isinstance(sink, FileSink) or not sink.rotated:
            return
        rotated, sink.rotated = sink.rotated, []
        for target in rotated:
            future = _compressor().submit(sink.compress_rotated, target)
            self._compressions.append(future)
            future.add_done_callback(self._compression_done)

    def _compression_done(self, future: Future[None]) -> None:
        try:
            self._compressions.remove(future)
        except ValueError:
            pass
        exc = future.exception()
        if exc is not None:
            _report(f"aiolog: compressing a rotated file of {self.name} failed", exc)

    def stats(self) -> dict[str, int]:
        return {
            "written": self.written,
            "dropped": self.dropped,
            "rotations": self.sink.rotations,
            "errors": self.errors,
            "queued": len(self._records) + (self._in_hand.count if self._in_hand else 0),
        }

    @property
    def name(self) -> str:
        return getattr(self.sink, "path", None) or repr(getattr(self.sink, "stream", self.sink))

    def _report_failure(self, chunk: Chunk) -> None:
        """Called inside ``except``: tell the handler once per burst, as ``logging`` would.

        A full disk must not print a traceback for every record; until a write succeeds again
        the failures are only counted in ``stats()``.
        """
        if not self._failing:
            self._failing = True
            self._signal_progress()
            if chunk.first is not None:
                handler, line = chunk.first
                handler.handleError(logging.makeLogRecord({"msg": line.rstrip("\n")}))

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            _report(f"aiolog: writing to {self.name} works again", None)

    def _drop_line(self, handler: AsyncHandler, dropped: int) -> str:
        record = logging.LogRecord("aiolog", logging.WARNING, __file__, 0,
                                   "aiolog dropped %d records: queue full (overflow='drop')",
                                   (dropped,), None)
        return handler.line(record)

    def reset_after_fork(self) -> None:
        # The parent still owns what was queued at the fork; the child writes only its own.
        self._records.clear()
        self._state_after_fork()
        _live.add(self)


def _report(message: str, exc: BaseException | None) -> None:
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


# -- process-wide state: shared writers, exit drain, fork ------------------------------------------

_live: weakref.WeakSet[Writer] = weakref.WeakSet()
_files: dict[str, Writer] = {}
_files_lock = threading.Lock()
_compress_pool: ThreadPoolExecutor | None = None


def _compressor() -> ThreadPoolExecutor:
    global _compress_pool
    if _compress_pool is None:
        _compress_pool = ThreadPoolExecutor(1, thread_name_prefix="aiolog-compress")
    return _compress_pool


def file_writer(path: str, *, max_queue: int, overflow: Overflow, **options: object) -> Writer:
    """The writer for ``path``, shared by every handler naming the same file."""
    key = os.path.realpath(path)
    with _files_lock:
        writer = _files.get(key)
        if writer is not None and not writer.closed and not writer._closing:
            if options != writer.options:
                raise ValueError(f"{path!r} is already open in this process with other "
                                 "rotation options; give both handlers the same ones")
        else:
            writer = Writer(FileSink(path, **options),  # type: ignore[arg-type]
                            max_queue=max_queue, overflow=overflow)
            writer.options = options
            _files[key] = writer
        writer.users += 1
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
    return list(_live)


@atexit.register
def _drain_at_exit() -> None:
    # Records still queued when the program ends without shutdown(): write them now.
    for writer in list(_live):
        try:
            writer.close()
        except Exception as exc:
            _report(f"aiolog: closing {writer.name} at exit failed", exc)


def _after_fork_in_child() -> None:
    global _files_lock, _compress_pool
    _files_lock = threading.Lock()
    _compress_pool = None
    for writer in list(_live):
        writer.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
