"""The stream sink: a text stream such as ``sys.stderr`` or a container's stdout."""

from __future__ import annotations

import io
import os
import select
from typing import TextIO

from .._queue import Chunk


class StreamSink:
    """A text stream such as ``sys.stderr``; its blocking writes run off the loop.

    A standard text stream on a descriptor (``sys.stderr``, ``sys.stdout``, an opened file) is
    written with ``os.write()`` on its descriptor, after flushing what the stream buffers, and
    encoded as the stream would (its ``encoding`` and ``errors``). Why not ``stream.write()``:
    a pipe nobody reads would block it inside the stream's buffer lock; the interpreter then
    cannot flush the stream at exit and aborts ("could not acquire lock ... at interpreter
    shutdown"), and a torn write could not say how much went. ``os.write()`` holds no lock and
    returns what it wrote, so a short write resumes like a file's. Any other stream object
    (``io.StringIO``, a wrapper of the application's) gets ``write()`` and ``flush()``.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.rotations = 0
        self.fd = _descriptor(stream)
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._errors = getattr(stream, "errors", None) or "strict"

    def encode(self, text: str) -> bytes | str:
        if self.fd is None:
            return text
        return text.encode(self._encoding, self._errors)

    def write(self, chunk: Chunk, *, rotate: bool = True) -> bool:
        """Write the rest of ``chunk``; returns only once it is all written (or raises).

        A pipe nobody reads keeps it here: the owner counts the sink as stalled after
        ``STALL_AFTER`` (``aiolog._owner``), whatever the sink.
        """
        if self.fd is None:
            self.stream.write(chunk.data[chunk.offset :])  # type: ignore[arg-type]
            chunk.offset = len(chunk.data)  # a text stream does not say how much of a failed one went
            self._flush()
            return True
        if self.stream.closed:  # its descriptor number may belong to another file by now
            raise ValueError(f"I/O operation on closed stream {self.stream!r}")
        self._flush()  # what the application printed to the stream before, first
        view = memoryview(chunk.data)  # type: ignore[arg-type]
        while not chunk.done:
            try:
                chunk.offset += os.write(self.fd, view[chunk.offset :])
            except BlockingIOError:  # made non-blocking by someone: wait as a blocking write would
                _wait_writable(self.fd)
        return True

    def _flush(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        if not getattr(self.stream, "closed", False):
            self._flush()


def _descriptor(stream: TextIO) -> int | None:
    """The descriptor under a standard text stream, or None to use its ``write()``."""
    if type(stream) is not io.TextIOWrapper:  # a subclass (pytest's capture) may write elsewhere
        return None
    try:
        return stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _wait_writable(fd: int) -> None:
    if hasattr(select, "poll"):  # select() refuses descriptors past 1024
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        poll.poll()
    else:
        select.select([], [fd], [])
