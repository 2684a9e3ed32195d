"""What every sink is: where the owner thread puts chunks.

A sink's methods block; only the chunk's owner calls them (``aiolog._owner``), on its own
thread, never an event loop.
"""

from __future__ import annotations

from typing import Protocol

from .._queue import Chunk


class Sink(Protocol):
    rotations: int

    def encode(self, text: str) -> bytes | str: ...
    def write(self, chunk: Chunk, *, rotate: bool = True) -> bool: ...
    def close(self) -> None: ...
