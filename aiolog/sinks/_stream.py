"""The stream sink: a text stream such as ``sys.stderr`` or a container's stdout."""

from __future__ import annotations

from typing import TextIO

from .._queue import Chunk


class StreamSink:
    """A text stream such as ``sys.stderr``; its blocking writes run off the loop."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.rotations = 0

    def encode(self, text: str) -> str:
        return text

    def write(self, chunk: Chunk, *, rotate: bool = True) -> bool:
        self.stream.write(chunk.data[chunk.offset :])  # type: ignore[arg-type]
        chunk.offset = len(chunk.data)  # a text stream does not say how much of a failed one went
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()
        return True

    def close(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if flush is not None and not getattr(self.stream, "closed", False):
            flush()
