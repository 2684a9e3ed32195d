"""Audit of one rotating file shared by several processes: what was lost, doubled, torn, misplaced.

Which file a record *should* be in is judged from outside, the same way for every contender: a
watcher polls the log path's inode, so the moment each file was rotated away is known (to within
one poll). A record whose own creation time is later than that moment was written into a file
that was already rotated away: a log reader following the path never sees it where it belongs.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

POLL = 0.0005  # seconds between looks at the path's inode
LINE = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bench: w(\d+) seq (\d+) at (\d+\.\d+)")
NOT_LOGS = (".lock", ".break", ".part")


class InodeWatcher(threading.Thread):
    """Notes when the file at ``path`` is replaced by another (a rotation)."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.left: dict[int, float] = {}  # inode -> when it stopped being the path's file
        self._stop_event = threading.Event()

    def run(self) -> None:
        current = None
        while not self._stop_event.is_set():
            try:
                inode: int | None = os.stat(self.path).st_ino
            except FileNotFoundError:
                inode = None
            if inode != current:
                if current is not None:
                    self.left[current] = time.time()  # the latest it can have happened
                self.left.pop(inode, None)  # a reused inode starts a new life
                current = inode
            time.sleep(POLL)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def audit(directory: Path, sent: list[int], left: dict[int, float]) -> dict[str, Any]:
    """Count each worker's records across every file the run left behind.

    Args:
        directory: holds the log file and everything its rotations made, nothing else.
        sent: how many records each worker logged (worker ``w`` numbered them ``0..sent[w]-1``).
        left: inode -> when that file stopped being the log path's file (``InodeWatcher.left``).
    """
    seen: Counter[tuple[int, int]] = Counter()
    torn = late = 0
    latest = 0.0
    for path in directory.iterdir():
        if path.name.endswith(NOT_LOGS) or not path.is_file():
            continue
        rotated_at = left.get(path.stat().st_ino, float("inf"))
        for line in path.read_bytes().splitlines():
            match = LINE.fullmatch(line)
            if match is None:
                torn += 1
                continue
            seen[int(match[1]), int(match[2])] += 1
            created = float(match[3])
            if created > rotated_at:
                late += 1
                latest = max(latest, created - rotated_at)
    expected = {(w, i) for w, count in enumerate(sent) for i in range(count)}
    return {
        "records": len(expected),
        "lost": len(expected - seen.keys()),
        "duplicated": sum(n - 1 for key, n in seen.items() if n > 1),
        "torn": torn,
        "misplaced": late,
        "misplaced_latest_s": latest,
        "files": sum(1 for p in directory.iterdir() if not p.name.endswith(NOT_LOGS)),
    }
