"""The owner's side of the record queue: ``RecordQueue.take`` cuts the queue into chunks.

Hypothesis interleaves records of any size, flush marks and takes: every line must come out
once, in order, in chunks within the limits, with each flush mark released no earlier than the
records before it.
"""

from __future__ import annotations

import logging
from typing import Union

from hypothesis import given, settings
from hypothesis import strategies as st

from aiolog._queue import CHUNK_BYTES, CHUNK_RECORDS, Chunk, FlushMark, RecordQueue


class _Source:
    def __init__(self, name: str) -> None:
        self.name = name

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        raise AssertionError("no failure expected")

    def line(self, record: logging.LogRecord) -> str:
        return f"{self.name}: {record.getMessage()}\n"


SOURCES = [_Source("a"), _Source("b")]
Step = Union[tuple[str, int, int], tuple[str]]
steps = st.lists(st.one_of(
    # a burst of records: how many, and each one's length (a few reach CHUNK_BYTES alone)
    st.tuples(st.just("records"), st.integers(1, 1500), st.sampled_from([1, 60, 200])),
    st.tuples(st.just("records"), st.integers(1, 30), st.sampled_from([5000, CHUNK_BYTES + 1])),
    st.tuples(st.just("mark")),
    st.tuples(st.just("take"))), max_size=30)


def _encode(text: str) -> bytes:
    return text.encode()


@settings(max_examples=150, deadline=None)
@given(steps)
def test_take_hands_out_every_line_once_in_order_and_marks_after_their_records(
        plan: list[Step]) -> None:
    queue = RecordQueue(max_queue=10**9, overflow="block")
    queued: list[tuple[_Source, str]] = []
    marks: list[tuple[FlushMark, int]] = []  # each mark, with how many records went before it
    out: list[str] = []

    def take() -> Chunk | None:
        chunk = queue.take(_encode)
        if chunk is None:
            return None
        lines, sizes = chunk.lines, [len(line) for line in chunk.lines]
        assert chunk.count == len(lines) <= CHUNK_RECORDS
        assert sum(sizes[:-1]) < CHUNK_BYTES  # only the line that reaches the limit is over it
        if lines:
            assert chunk.origin is queued[len(out)][0]
        out.extend(lines)
        for mark in chunk.marks:
            assert not mark.done
            mark.done = True
        return chunk

    for step in plan:
        if step[0] == "records":
            _, count, size = step
            for i in range(count):
                source = SOURCES[(len(queued) // 7) % 2]
                line = f"{len(queued)}:".ljust(size, "x")[:max(size, 1)]
                queued.append((source, line))
                queue.items.append((source, line))
        elif step[0] == "mark":
            mark = FlushMark()
            marks.append((mark, len(queued)))
            queue.items.append(mark)
        else:
            take()
        for mark, before in marks:  # a mark is released only once what preceded it is out
            assert not mark.done or len(out) >= before
    while True:
        marks_waiting = any(not mark.done for mark, _ in marks)
        chunk = take()
        if chunk is None:
            break
        # Without flush marks among them, a chunk stops only at a limit or at the queue's end.
        if not marks_waiting and len(out) < len(queued):
            assert chunk.count == CHUNK_RECORDS or sum(map(len, chunk.lines)) >= CHUNK_BYTES
    assert out == [line for _, line in queued]
    assert all(mark.done for mark, _ in marks)
    assert not queue.items


def test_the_dropped_line_leads_the_chunk_and_counts_no_record() -> None:
    queue = RecordQueue(max_queue=10, overflow="drop")
    queue.items.extend((SOURCES[0], f"{i}\n") for i in range(3))
    queue.count_drop()
    queue.count_drop()
    chunk = queue.take(_encode)
    assert chunk is not None
    assert chunk.count == 3 and len(chunk.lines) == 4
    assert "aiolog dropped 2 records" in chunk.lines[0]
    assert chunk.lines[1:] == ["0\n", "1\n", "2\n"]
