from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

import aiolog
from aiolog._queue import Chunk

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
except ImportError:  # Windows
    pass
else:
    LOOPS["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs once on the default asyncio loop and once on uvloop."""
    return LOOPS


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Give each test a clean root logger and close whatever aiolog handlers it left."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    aiolog.flush_sync()
    for handler in list(logging._handlerList):  # type: ignore[attr-defined]
        h = handler()
        if isinstance(h, aiolog.AsyncHandler):
            h.close()
    aiolog._config._installed.clear()
    root.setLevel(level)


def lines(path: Path) -> list[str]:
    """The lines of a log file, decoded strictly so that a torn byte fails the test."""
    return path.read_bytes().decode("utf-8").splitlines()


def run_script(tmp_path: Path, source: str, *args: str, timeout: float = 120,
               check: bool = True, env: Mapping[str, str] = {}
               ) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a fresh Python process (the way services start) and return it;
    ``env`` is added to this process's environment."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def chunk(texts: list[str]) -> Chunk:
    """A chunk of one line per text, as the queue hands a sink."""
    return Chunk([f"{text}\n" for text in texts], len(texts), None, [], str.encode)


def size_set(directory: Path) -> list[Path]:
    """app.log and its size-rotated backups, oldest first."""
    def age(p: Path) -> int:
        suffix = p.name[len("app.log"):].lstrip(".")
        return -int(suffix) if suffix else 0
    return sorted((p for p in directory.glob("app.log*") if not p.name.endswith(".lock")), key=age)


def numbers(path: Path, marker: str) -> list[int]:
    """The numbers ending the lines that contain ``marker``, in file order."""
    return [int(line.rsplit(" ", 1)[1]) for line in lines(path) if marker in line]


@contextlib.contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """Local time is ``zone`` (a TZ value) within the block, as it was after it."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
