"""A worker process for the multi-process tests: log N numbered records, then shut down.

Each line carries the time the record was created. With ``trace`` set, the worker also records
when each write and each rotation happened and on which inode, so the tests can tell how late a
write reached a file already rotated away.
"""

import asyncio
import json
import logging
import sys
import time

import aiolog
from aiolog.sinks import FileSink

LINE_FORMAT = "%(created).6f %(message)s"


def trace_writes_and_rotations(events: list[str]) -> None:
    """Observe FileSink without changing what it does: note each write's look and each rotation.

    A write is noted at its look (the stat of the path that ``FileSink.write()`` makes, under
    its flock, right before writing a piece), stamped before the look: a look stamped after a
    rotation of that inode was noted cannot have found it current. The rotation is stamped
    once the rename is done, and only if the path names another file then (a rotation that
    found its lock broken abandons its renames to the next holder).
    """
    moved, rotate = FileSink._moved, FileSink._rotate

    def traced_moved(self: FileSink) -> bool:
        at = time.time()
        result = moved(self)
        if not result:
            events.append(f"write {at:.6f} {self._identity[1]}")
        return result

    def traced_rotate(self: FileSink) -> None:
        inode = self._identity[1]
        rotate(self)
        if self._identity[1] != inode:
            events.append(f"rotated {time.time():.6f} {inode}")

    FileSink._moved = traced_moved  # type: ignore[method-assign]
    FileSink._rotate = traced_rotate  # type: ignore[method-assign]


async def main(cfg: dict) -> None:
    await aiolog.configure(cfg["path"], format=LINE_FORMAT, **cfg.get("options", {}))
    log = logging.getLogger("w")
    for i in range(cfg["n"]):
        log.info("%s %d", cfg["tag"], i)
        if i % cfg.get("every", 50) == 0:
            await asyncio.sleep(cfg.get("pause", 0))
    await aiolog.shutdown()


def save_trace(events: list[str], path: str) -> None:
    with open(path, "w") as out:
        out.write("".join(event + "\n" for event in events))


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    events: list[str] = []
    trace_writes_and_rotations(events)
    asyncio.run(main(config))
    save_trace(events, config["trace"])
