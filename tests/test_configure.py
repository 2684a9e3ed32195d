"""configure() and the constructors: bad options leave nothing behind; swaps lose no record."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import aiolog
from aiolog._registry import live_writers

from .conftest import lines, run_script


def _aiolog_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, aiolog.AsyncHandler)]


class TestHalfBuiltHandlers:
    def test_a_constructor_that_raises_leaves_nothing_for_exit(self, tmp_path: Path) -> None:
        """A handler constructor that raises leaves no half-built handler for logging's exit
        flush to trip over (no 'Exception ignored in atexit callback')."""
        (tmp_path / "afile").write_text("")
        proc = run_script(tmp_path, """
            import logging, sys, aiolog
            kept = []  # the exceptions keep their tracebacks (and any half-built handler) alive
            for kwargs in [dict(max_bytes=-1), dict(when="Q"), dict(max_queue=0),
                           dict(level="bogus"), dict(encoding="no-such-codec")]:
                try:
                    aiolog.AsyncFileHandler("app.log", **kwargs)
                except Exception as exc:
                    kept.append(exc)
            try:
                aiolog.AsyncFileHandler("afile/app.log")  # a file where a directory must be
            except OSError as exc:
                kept.append(exc)
            try:
                aiolog.AsyncStreamHandler(object())
            except TypeError as exc:
                kept.append(exc)
            class Broken(aiolog.AsyncHandler):  # a subclass failing after Handler.__init__
                def __init__(self):
                    super().__init__()
                    raise RuntimeError("no writer")
            try:
                Broken()
            except RuntimeError as exc:
                kept.append(exc)
            print(len(kept))
        """)
        assert proc.stdout.strip() == "8"
        assert "Exception ignored" not in proc.stderr and "Error" not in proc.stderr, proc.stderr

    def test_a_refused_constructor_registers_no_handler(self, tmp_path: Path) -> None:
        """A constructor that raises adds nothing to logging's list of handlers."""
        before = len(logging._handlerList)  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="max_bytes") as caught:
            aiolog.AsyncFileHandler(tmp_path / "app.log", max_bytes=-1)
        assert len(logging._handlerList) == before, caught  # type: ignore[attr-defined]
        assert not (tmp_path / "app.log").exists()


BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"level": "bogus"}, ValueError, "unknown level 'bogus'"),
    ({"level": None}, TypeError, "level must be"),
    ({"level": -5}, ValueError, "level must be >= 0"),
    ({"utc": "yes"}, TypeError, "utc must be True or False"),
    ({"compress": 1}, TypeError, "compress must be True or False"),
    ({"max_bytes": "10"}, ValueError, "max_bytes must be an integer"),
    ({"max_bytes": 1.5}, ValueError, "max_bytes must be an integer"),
    ({"max_bytes": -1}, ValueError, "max_bytes must be an integer"),
    ({"backup_count": True}, ValueError, "backup_count must be an integer"),
    ({"interval": 0}, ValueError, "interval must be a positive integer"),
    ({"when": "Q"}, ValueError, "Cannot parse rotation from when='Q'"),
    ({"when": 5}, TypeError, "when must be a str"),
    ({"lock_timeout": 0}, ValueError, "lock_timeout must be a number > 0"),
    ({"lock_timeout": "1"}, ValueError, "lock_timeout must be a number > 0"),
    ({"max_queue": 0}, ValueError, "max_queue must be a positive integer"),
    ({"overflow": "maybe"}, ValueError, "overflow must be 'block' or 'drop'"),
    ({"format": 5}, TypeError, "format must be a str"),
    ({"format": "%(message"}, ValueError, "format"),
    ({"datefmt": 5}, TypeError, "datefmt must be a str"),
    ({"style": "x"}, ValueError, "style must be one of"),
    ({"capture": "uvicorn.access"}, TypeError, "capture must be a list"),
    ({"capture": [None]}, TypeError, "capture must be logger names"),
    ({"handlers": [object()]}, TypeError, "handlers must be logging.Handler"),
    ({"filename": 5}, TypeError, "filename must be a str or os.PathLike"),
]


class TestConfigureValidates:
    @pytest.mark.parametrize(("options", "error", "message"), BAD_OPTIONS,
                             ids=[f"{k}={v!r}" for (o, _, _) in BAD_OPTIONS for k, v in o.items()])
    async def test_a_bad_option_raises_before_anything_is_built(
            self, tmp_path: Path, options: dict[str, Any], error: type[Exception],
            message: str) -> None:
        """Every option is checked, values and types, before configure() builds or changes
        anything: the error names the option, and no file, writer or handler is left."""
        logs = tmp_path / "logs"
        root = logging.getLogger()
        handlers, level, writers = root.handlers[:], root.level, set(live_writers())
        kwargs = options if "handlers" in options else {"filename": logs / "app.log", **options}
        with pytest.raises(error, match=re.escape(message)):
            await aiolog.configure(**kwargs)
        assert root.handlers == handlers and root.level == level
        assert set(live_writers()) == writers
        assert not logs.exists()

    async def test_configure_after_a_refused_one_opens_the_same_file(self, tmp_path: Path) -> None:
        """A refused configure() leaves nothing open, so a corrected one on the same file works."""
        path = tmp_path / "app.log"
        with pytest.raises(ValueError):
            await aiolog.configure(path, level="bogus", max_bytes=0)
        await aiolog.configure(path, max_bytes=1000, format="%(message)s")
        logging.getLogger("a").info("corrected")
        await aiolog.flush()
        assert lines(path) == ["corrected"]


class TestConfigureSwaps:
    async def test_same_file_with_other_options_is_replaced(self, tmp_path: Path) -> None:
        """A second configure() on the same file with other rotation options replaces the first
        and its options take effect."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        logging.getLogger("a").info("first")
        [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=200,
                                           backup_count=0)
        for i in range(40):
            logging.getLogger("a").info("second %02d", i)
            await asyncio.sleep(0)
        await aiolog.flush()
        assert handler.stats()["rotations"] > 0  # type: ignore[attr-defined]
        got = [line for f in sorted(tmp_path.iterdir()) if f.name.startswith("app.log")
               for line in lines(f)]
        assert sorted(got) == sorted(["first"] + [f"second {i:02d}" for i in range(40)])
        assert len(_aiolog_handlers()) == 1

    async def test_no_record_is_lost_or_doubled_while_configure_swaps(self, tmp_path: Path) -> None:
        """Records logged from a thread and from a task while configure() swaps handlers (same
        file with other options, another file, back) are each written exactly once, in order
        within each file."""
        a, b = tmp_path / "a.log", tmp_path / "b.log"
        await aiolog.configure(a, format="%(message)s")
        stop = threading.Event()
        counts = {"thread": 0, "task": 0}

        def from_thread() -> None:
            log = logging.getLogger("thread")
            while not stop.is_set() and counts["thread"] < 100_000:
                log.info("thread %d", counts["thread"])
                counts["thread"] += 1
                if counts["thread"] % 50 == 0:
                    time.sleep(0.001)  # a steady stream that lasts through every swap

        async def from_task() -> None:
            log = logging.getLogger("task")
            while not stop.is_set() and counts["task"] < 5_000:
                log.info("task %d", counts["task"])
                counts["task"] += 1
                await asyncio.sleep(0)

        thread = threading.Thread(target=from_thread)
        thread.start()
        task = asyncio.create_task(from_task())
        try:
            for options in [dict(filename=a, max_bytes=20_000), dict(filename=b),
                            dict(filename=a, max_bytes=50_000, backup_count=0),
                            dict(filename=a), dict(filename=b, max_bytes=30_000)]:
                await asyncio.sleep(0.05)
                await aiolog.configure(format="%(message)s", **options)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=60)
            await asyncio.wait_for(task, timeout=60)
        assert not thread.is_alive()
        assert counts["thread"] < 100_000, "the thread stopped before the swaps ended"
        await aiolog.shutdown()

        seen: Counter[str] = Counter()
        for f in tmp_path.iterdir():
            per_source: dict[str, int] = {}
            for line in lines(f):
                source, n = line.split()
                assert int(n) > per_source.get(source, -1), f"out of order in {f.name}: {line}"
                per_source[source] = int(n)
                seen[line] += 1
        for source, count in counts.items():
            assert count > 0
            expected = {f"{source} {i}" for i in range(count)}
            missing = expected - set(seen)
            assert not missing, f"{len(missing)} {source} records lost, e.g. {sorted(missing)[:3]}"
        doubled = [line for line, k in seen.items() if k > 1]
        assert not doubled, f"{len(doubled)} records written twice, e.g. {doubled[:3]}"
        assert len(_aiolog_handlers()) == 1

    async def test_shutdown_leaves_the_handlers_writing_synchronously(self, tmp_path: Path) -> None:
        """After shutdown() a record logged through the root logger (a server's last line) is
        still written, synchronously."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        logging.getLogger("a").info("before")
        await aiolog.shutdown()
        logging.getLogger("uvicorn.error").info("Finished server process")
        assert lines(path) == ["before", "Finished server process"]
        assert live_writers() == []

    async def test_capture_routes_a_logger_with_its_own_handlers(self, tmp_path: Path) -> None:
        """configure(capture=[name]) removes a logger's own handlers and lets it propagate, as
        gunicorn's uvicorn worker needs for 'uvicorn.access'."""
        path = tmp_path / "app.log"
        access = logging.getLogger("test.access")
        own = logging.NullHandler()
        access.addHandler(own)
        access.propagate = False
        try:
            await aiolog.configure(path, format="%(name)s %(message)s", capture=["test.access"])
            access.info("GET / 200")
            await aiolog.flush()
            assert lines(path) == ["test.access GET / 200"]
            assert access.handlers == [] and access.propagate
        finally:
            access.handlers, access.propagate = [], True


class TestDirectories:
    async def test_missing_parent_directories_are_created(self, tmp_path: Path) -> None:
        """A log file in directories that do not exist yet is opened after creating them."""
        path = tmp_path / "logs" / "deep" / "app.log"
        await aiolog.configure(path, format="%(message)s")
        logging.getLogger("a").info("ready")
        await aiolog.flush()
        assert lines(path) == ["ready"]

    async def test_a_directory_that_cannot_be_made_is_a_clear_error(self, tmp_path: Path) -> None:
        """When a file stands where a directory must be, configure() raises naming it."""
        (tmp_path / "afile").write_text("")
        with pytest.raises(OSError, match="cannot create log directory"):
            await aiolog.configure(tmp_path / "afile" / "logs" / "app.log")
        assert os.listdir(tmp_path) == ["afile"]
