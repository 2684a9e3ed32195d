"""The queue of formatted lines, its bound, and the chunks the owner takes out of it.

Records wait in one ``deque``: appends and pops are atomic, so every thread (the loop's, others,
a signal handler) adds to it without a lock, and no lock here can be re-entered. An
``asyncio.Queue`` is not thread-safe, and callbacks still pending when a loop closes are
discarded with it; a record parked in the deque survives any loop.
"""

from __future__ import annotations

import itertools
import logging
from bisect import bisect_right
from collections import deque
from typing import Final, Literal, Protocol, Union

Overflow = Literal["block", "drop"]

CHUNK_RECORDS: Final = 1000
CHUNK_BYTES: Final = 64 * 1024


class Origin(Protocol):
    """The handler a line came from: told of failures, and formats the "dropped N" line."""

    def handleError(self, record: logging.LogRecord) -> None: ...  # noqa: N802 (logging's name)
    def line(self, record: logging.LogRecord) -> str: ...


class FlushMark:
    """Put in the queue by ``flush()``: done once every record queued before it is settled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


Item = Union[tuple[Origin, str], FlushMark]


class Chunk:
    """Lines taken from the queue, encoded, and how much of them is on disk already.

    Its owner advances ``offset`` by what each ``write()`` returned, so a short write resumes
    where it stopped and never repeats a byte.
    """

    __slots__ = ("lines", "data", "count", "refused", "origin", "marks", "offset", "_ends",
                 "_encode")

    def __init__(self, lines: list[str], count: int, origin: Origin | None,
                 marks: list[FlushMark], encode: _Encoder) -> None:
        self.lines = lines
        self.count = count  # records, not counting a "dropped N" line
        self.refused = 0  # records the encoding cannot hold: reported, counted, not written
        self.origin = origin  # whose handleError() hears of a failed write
        self.marks = marks
        self.offset = 0
        self._ends: list[int] | None = None
        self._encode = encode
        try:
            self.data = encode("".join(lines))
        except Exception:  # one line the encoding cannot hold (errors="strict"): find it
            self.data = self._encode_each()

    def _encode_each(self) -> bytes | str:
        """Encode line by line, leaving out (and reporting) the lines that cannot be encoded.

        Runs on the owner thread, where an exception would end the thread and lose the chunk
        with its flush marks; a record the encoding cannot hold is refused as
        ``logging.FileHandler`` refuses it in ``emit()``: reported through ``handleError``,
        not written, and counted (in ``stats()["errors"]``). Its neighbours are written.
        """
        notice = len(self.lines) - self.count  # a leading "dropped N" line is no record
        kept: list[str] = []
        parts: list[bytes | str] = []
        for i, line in enumerate(self.lines):
            try:
                parts.append(self._encode(line))
            except Exception:
                if i >= notice:
                    self.refused += 1
                if self.origin is not None:  # inside except: handleError shows the error
                    self.origin.handleError(logging.makeLogRecord({"msg": line.rstrip("\n")}))
                continue
            kept.append(line)
        self.count -= self.refused
        self.lines = kept
        return self._encode("")[:0].join(parts)  # type: ignore[arg-type]

    @property
    def done(self) -> bool:
        return self.offset >= len(self.data)

    def ends(self) -> list[int]:
        """Where each line ends in ``data``; computed only when a chunk must be split."""
        if self._ends is None:
            self._ends = list(itertools.accumulate(len(self._encode(line)) for line in self.lines))
        return self._ends

    def at_line_start(self) -> bool:
        # Asked after every write: a chunk written whole is answered without ends(), which
        # encodes every line again (on the owner, holding the GIL the event loop waits for).
        offset = self.offset
        return offset == 0 or offset == len(self.data) or offset in self.ends()

    def last_end_within(self, limit: int) -> int | None:
        """The end of the last whole line between ``offset`` and ``limit``, if any."""
        ends = self.ends()
        i = bisect_right(ends, limit)
        return ends[i - 1] if i and ends[i - 1] > self.offset else None

    def cut_after_started_line(self) -> tuple[int, int]:
        """Keep only the rest of a line a short write tore (if any); drop everything else.

        For a chunk given up after part of it was written. Returns the records whole on disk
        and the records dropped. What is kept is the torn line alone, rebased (``offset`` is
        how much of that line is on disk), so a second give-up counts nothing twice; ``count``
        keeps its record, counted once the line is finished.
        """
        ends = self.ends()
        whole = bisect_right(ends, self.offset)  # lines wholly on disk
        notice = len(self.lines) - self.count  # 1: lines[0] is a "dropped N" line, no record
        torn = not self.at_line_start()
        kept = 1 if torn and not (notice and whole == 0) else 0
        records_whole = max(whole - notice, 0)
        records_cut = self.count - records_whole - kept
        start = ends[whole - 1] if whole else 0
        end = ends[whole] if torn else start
        self.lines = self.lines[whole : whole + 1] if torn else []
        self.data = self.data[start:end]
        self.offset -= start
        self._ends = [end - start] if torn else []
        self.count = kept
        return records_whole, records_cut

    def next_end(self) -> int:
        """The end of the line that ``offset`` is in (or starts)."""
        ends = self.ends()
        return ends[bisect_right(ends, self.offset)]


class _Encoder(Protocol):
    def __call__(self, text: str) -> bytes | str: ...


class RecordQueue:
    """Formatted lines waiting for the owner, in order, with the ``max_queue`` bound."""

    def __init__(self, max_queue: int, overflow: Overflow) -> None:
        self.max_queue = max_queue
        self.overflow = overflow
        self.items: deque[Item] = deque()
        # Counted by the producers that drop, on any thread: next() on a count is atomic, where
        # ``+= 1`` on an attribute could lose an increment between two threads.
        self._drops = itertools.count()
        self._drops_reported = 0  # owner-side: how many of them a "dropped N" line has told

    def full(self) -> bool:
        return len(self.items) >= self.max_queue

    def records_waiting(self) -> int:
        """Lines in the queue, not counting flush marks (copied at once: list() of a deque
        runs in C, under the GIL)."""
        items = list(self.items)
        return len(items) - sum(type(item) is FlushMark for item in items)

    def reset_after_fork(self) -> None:
        self.items.clear()
        self._drops = itertools.count()
        self._drops_reported = 0

    def count_drop(self) -> None:
        next(self._drops)

    @property
    def dropped(self) -> int:
        # count's repr is its next value: the one read that never increments it.
        return int(repr(self._drops)[6:-1])

    def take(self, encode: _Encoder) -> Chunk | None:
        """On the owner: the next chunk (up to CHUNK_RECORDS lines or CHUNK_BYTES), or None."""
        items = self.items
        if not items:
            return None
        lines: list[str] = []
        marks: list[FlushMark] = []
        origin: Origin | None = None
        size = count = 0
        popleft = items.popleft
        while items and count < CHUNK_RECORDS and size < CHUNK_BYTES:
            item = popleft()
            if type(item) is FlushMark:
                marks.append(item)
                continue
            source, line = item  # type: ignore[misc]
            if origin is None:
                origin = source
            lines.append(line)
            size += len(line)
            count += 1
        unreported = self.dropped - self._drops_reported
        if unreported and origin is not None:
            self._drops_reported += unreported
            lines.insert(0, _drop_line(origin, unreported, self.overflow))
        return Chunk(lines, count, origin, marks, encode)


def _drop_line(origin: Origin, dropped: int, overflow: Overflow) -> str:
    why = ("queue full (overflow='drop')" if overflow == "drop" else
           "the sink stalled and the queue reached its memory bound")
    record = logging.LogRecord("aiolog", logging.WARNING, __file__, 0,
                               "aiolog dropped %d records: %s", (dropped, why), None)
    return origin.line(record)
