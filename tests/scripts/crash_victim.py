"""A rotating process for tests/test_crash_points.py: one rotation step, on the main thread.

It drives ``FileSink`` directly (no owner thread, no event loop), so the syscalls of the step
are made by one thread in the same order every run, and ``strace --inject=...:when=N`` numbers
them the same way each time. ``stat()`` of two paths that do not exist marks where the step
begins and ends in a trace.
"""

import json
import os
import sys
import time

from aiolog._queue import Chunk
from aiolog.sinks import FileSink, _steps


def marker(name: str) -> None:
    try:
        os.stat(f"/aiolog-crash-{name}")
    except FileNotFoundError:
        pass


def main(cfg: dict) -> None:
    if cfg["rename"] == "link":  # as on a file system without RENAME_NOREPLACE
        _steps._renameat2_loaded, _steps._renameat2 = True, None
    else:
        _steps._load_renameat2()  # before the step: loading ctypes is not part of it
    max_bytes = cfg.get("max_bytes", 1000)
    options = {"size": {"max_bytes": max_bytes}, "time": {"when": "S"},
               "compress": {"max_bytes": max_bytes, "compress": True}}[cfg["mode"]]
    sink = FileSink(cfg["path"], lock_timeout=cfg["lock_timeout"], **options)
    # "V <i>" by default; tests/test_stateful.py gives its own tag and line ending.
    tag, end = cfg.get("tag", "V"), cfg.get("end", "")
    lines = [f"{tag} {i}{end}\n" for i in range(cfg["records"])]
    chunk = Chunk(lines, len(lines), None, [], lambda text: text.encode())
    marker("begin")
    if cfg["mode"] == "compress":
        sink.compress_backups()
    else:
        while not sink.write(chunk):  # the lock is another process's: wait, as the owner does
            time.sleep(0.01)
    marker("end")
    sink.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
