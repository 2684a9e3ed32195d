"""The record path: emit never blocks, every record arrives once, whole and in order."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import aiolog
from aiolog._format import FastFormatter, fast_equivalent
from aiolog.sinks._lock import pid_namespace, process_start_time
from aiolog._queue import CHUNK_RECORDS

from .conftest import lines, numbers, run_script, size_set


class StuckStream(io.StringIO):
    """A stream whose write() waits until released: a sink that stopped taking data."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(60)
        return super().write(text)


class TestDelivery:
    async def test_loop_and_threads_each_record_exactly_once_in_order(self, tmp_path: Path) -> None:
        """Records from the loop and from 4 threads all arrive once, whole, per logger in order."""
        path = tmp_path / "app.log"
        [handler] = await aiolog.configure(path, format="%(name)s %(message)s")
        per_source = 5000

        def from_thread(n: int) -> None:
            log = logging.getLogger(f"thread{n}")
            for i in range(per_source):
                log.info("record %d", i)

        loop = asyncio.get_running_loop()
        threads = [loop.run_in_executor(None, from_thread, n) for n in range(4)]
        log = logging.getLogger("loop")
        for i in range(per_source):
            log.info("record %d", i)
            if i % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*threads)
        await asyncio.wait_for(aiolog.flush(), timeout=60)  # a miscounted write would hang it

        for source in ["loop", "thread0", "thread1", "thread2", "thread3"]:
            assert numbers(path, source + " ") == list(range(per_source)), source
        assert len(lines(path)) == 5 * per_source
        assert handler.stats()["written"] == 5 * per_source

    async def test_flush_means_written(self, tmp_path: Path) -> None:
        """After ``await flush()`` the file holds every record logged before it."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        for i in range(3000):
            logging.getLogger("a").warning("n %d", i)
        await aiolog.flush()
        assert numbers(path, "n ") == list(range(3000))

    async def test_stats_count_what_happened(self, tmp_path: Path) -> None:
        """stats() reports written, dropped, rotations, errors and queued."""
        [handler] = await aiolog.configure(tmp_path / "app.log")
        for i in range(10):
            logging.getLogger("a").info("n %d", i)
        await aiolog.flush()
        assert handler.stats() == {"written": 10, "dropped": 0, "rotations": 0, "errors": 0,
                                   "queued": 0}

    async def test_emit_does_not_wait_for_a_stalled_sink(self) -> None:
        """While the sink's write is stuck, logging returns and other tasks keep running."""
        stream = StuckStream()
        await aiolog.configure(handlers=[aiolog.AsyncStreamHandler(stream)])
        # Only this watchdog would free the sink; had a log call waited for the sink, the
        # watchdog would have fired first and the assertion below would fail.
        watchdog = threading.Timer(60, stream.release.set)
        watchdog.start()
        logging.getLogger("a").warning("first")
        assert await asyncio.to_thread(stream.entered.wait, 60)
        for i in range(200):  # the sink is stuck during all of these
            logging.getLogger("a").warning("more %d", i)
            await asyncio.sleep(0)
        assert not stream.release.is_set(), "a log call waited for the stuck sink"
        watchdog.cancel()
        stream.release.set()
        await aiolog.flush()
        assert stream.getvalue().count("more") == 200

    async def test_two_handlers_on_one_path_share_one_writer(self, tmp_path: Path) -> None:
        """Two handlers naming the same file (by different spellings) share one writer."""
        a = aiolog.AsyncFileHandler(tmp_path / "app.log")
        b = aiolog.AsyncFileHandler(os.path.join(str(tmp_path), ".", "app.log"))
        try:
            assert a._writer is b._writer
            with pytest.raises(ValueError, match="other rotation options"):
                aiolog.AsyncFileHandler(tmp_path / "app.log", max_bytes=10)
        finally:
            a.close()
            b.close()


class TestSnapshot:
    async def test_mutating_args_after_the_call_changes_nothing(self, tmp_path: Path) -> None:
        """The message is merged with its args at the call, not when it is written."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        payload = {"state": "before"}
        logging.getLogger("a").info("payload %s", payload)
        payload["state"] = "after"
        await aiolog.flush()
        assert lines(path) == ["payload {'state': 'before'}"]

    async def test_exception_text_is_rendered_at_the_call(self, tmp_path: Path) -> None:
        """The traceback is logged as it was, and the original record keeps its exc_info."""
        path = tmp_path / "app.log"
        seen: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record)

        await aiolog.configure(path, format="%(message)s")
        logging.getLogger().addHandler(keep := Keep())
        try:
            raise KeyError("boom")
        except KeyError:
            logging.getLogger("a").exception("failed")
        finally:
            logging.getLogger().removeHandler(keep)
        await aiolog.flush()
        text = path.read_text()
        assert text.startswith("failed\nTraceback (most recent call last):")
        assert "KeyError: 'boom'" in text
        assert seen[0].exc_info is not None and seen[0].args == ()


class TestFormatter:
    @pytest.mark.parametrize("fmt,datefmt,options", [
        ("%(asctime)s %(levelname)s %(name)s: %(message)s", None, {}),
        ("%(asctime)s|%(msecs)03d|%(message)s", "%H:%M:%S", {}),
        ("{asctime} {levelname:<8} {message}", None, {"style": "{"}),
        ("%(asctime)s %(tenant)s %(message)s", None, {"defaults": {"tenant": "-"}}),
        ("%(message)s", None, {}),
        ("%(asctime)s %(message)s", None, {"gmtime": True}),
    ])
    def test_output_is_byte_identical_to_logging_formatter(
            self, fmt: str, datefmt: str | None, options: dict[str, Any]) -> None:
        """FastFormatter, made directly or swapped in for a configured logging.Formatter, writes
        exactly what logging.Formatter writes: across seconds, with exceptions and stacks."""
        gmtime = options.pop("gmtime", False)
        theirs = logging.Formatter(fmt, datefmt, **options)
        if gmtime:
            theirs.converter = time.gmtime  # type: ignore[method-assign]
        direct = FastFormatter(fmt, datefmt, **options)
        direct.converter = theirs.converter  # type: ignore[method-assign]
        swapped = fast_equivalent(theirs)
        try:
            raise ValueError("boom")
        except ValueError:
            failure = sys.exc_info()
        start = time.time()
        for i in range(3000):
            record = logging.makeLogRecord({"msg": "m %d", "args": (i,), "levelno": 20,
                                            "levelname": "INFO", "name": "x"})
            record.created = start + i * 0.00037
            record.msecs = (record.created - int(record.created)) * 1000
            if i % 500 == 7:
                record.exc_info = failure
            if i % 500 == 9:
                record.stack_info = "Stack (most recent call last):"
            expected = theirs.format(record)
            record.exc_text = None
            assert direct.format(record) == expected
            record.exc_text = None
            assert swapped.format(record) == expected

    async def test_plain_formatters_are_swapped_for_the_fast_one(self, tmp_path: Path) -> None:
        """A handler given a logging.Formatter uses FastFormatter with the same settings."""
        handler = aiolog.AsyncFileHandler(tmp_path / "app.log")
        handler.setFormatter(logging.Formatter("%(message)s!", "%H"))
        try:
            assert type(handler.formatter) is FastFormatter
            assert handler.formatter._fmt == "%(message)s!" and handler.formatter.datefmt == "%H"
        finally:
            handler.close()

    def test_a_subclass_overriding_format_or_line_is_honoured(self, tmp_path: Path) -> None:
        """emit() formats inline only for aiolog's own format() and line(); overrides run."""

        class Upper(aiolog.AsyncFileHandler):
            def format(self, record: logging.LogRecord) -> str:
                return super().format(record).upper()

        class Framed(aiolog.AsyncStreamHandler):
            def line(self, record: logging.LogRecord) -> str:
                return f"[{record.getMessage()}]\n"

        stream = io.StringIO()
        upper, framed = Upper(tmp_path / "app.log"), Framed(stream)
        upper.setFormatter(logging.Formatter("%(message)s"))
        record = logging.makeLogRecord({"msg": "hello %s", "args": ("you",)})
        try:
            upper.handle(record)
            framed.handle(record)
        finally:
            upper.close()
            framed.close()
        assert lines(tmp_path / "app.log") == ["HELLO YOU"]
        assert stream.getvalue() == "[hello you]\n"


class TestConfigure:
    async def test_configure_again_replaces_the_earlier_handlers(self, tmp_path: Path) -> None:
        """A second configure() writes the first file out and replaces its handler."""
        first, second = tmp_path / "1.log", tmp_path / "2.log"
        await aiolog.configure(first, format="%(message)s")
        logging.getLogger("a").info("one")
        await aiolog.configure(second, format="%(message)s")
        logging.getLogger("a").info("two")
        await aiolog.flush()
        assert lines(first) == ["one"] and lines(second) == ["two"]
        assert sum(isinstance(h, aiolog.AsyncHandler) for h in logging.getLogger().handlers) == 1

    async def test_several_handlers(self, tmp_path: Path) -> None:
        """configure(handlers=[...]) installs each one and each gets the records."""
        stream = io.StringIO()
        handlers = [aiolog.AsyncFileHandler(tmp_path / "a.log"), aiolog.AsyncStreamHandler(stream)]
        await aiolog.configure(handlers=handlers, format="%(levelname)s %(message)s")
        logging.getLogger("x").error("both")
        await aiolog.flush()
        assert lines(tmp_path / "a.log") == ["ERROR both"]
        assert stream.getvalue() == "ERROR both\n"

    async def test_level_is_applied(self, tmp_path: Path) -> None:
        """Records below the configured level are not written."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, level="WARNING", format="%(message)s")
        logging.getLogger("a").info("hidden")
        logging.getLogger("a").warning("shown")
        await aiolog.flush()
        assert lines(path) == ["shown"]

    async def test_bad_options_raise_at_configure(self, tmp_path: Path) -> None:
        """Invalid options are refused when given, with a message naming them."""
        (tmp_path / "afile").write_text("")
        with pytest.raises(OSError, match="cannot create log directory"):
            await aiolog.configure(tmp_path / "afile" / "app.log")
        with pytest.raises(ValueError, match="Cannot parse rotation from when='fortnight'"):
            await aiolog.configure(tmp_path / "app.log", when="fortnight")
        with pytest.raises(ValueError, match="overflow must be"):
            await aiolog.configure(tmp_path / "app.log", overflow="maybe")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_queue"):
            await aiolog.configure(tmp_path / "app.log", max_queue=0)
        with pytest.raises(ValueError, match="max_bytes"):
            await aiolog.configure(tmp_path / "app.log", max_bytes=-1)

    async def test_dictconfig(self, tmp_path: Path) -> None:
        """AsyncFileHandler works from logging.config.dictConfig with its options."""
        path = tmp_path / "app.log"
        logging.config.dictConfig({
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(levelname)s:%(message)s"}},
            "handlers": {"file": {"class": "aiolog.AsyncFileHandler", "filename": str(path),
                                  "max_bytes": 1000, "backup_count": 2, "formatter": "plain"}},
            "root": {"level": "INFO", "handlers": ["file"]},
        })
        logging.getLogger("a").info("configured")
        await aiolog.flush()
        assert lines(path) == ["INFO:configured"]

    def test_stderr_handler_writes_into_a_pipe(self, tmp_path: Path) -> None:
        """configure(filename=None) logs to stderr, here a pipe read by the parent."""
        proc = run_script(tmp_path, """
            import asyncio, logging, aiolog
            async def main():
                await aiolog.configure(None, format="%(levelname)s %(message)s")
                for i in range(1000):
                    logging.getLogger("app").warning("line %d", i)
                await aiolog.shutdown()
            asyncio.run(main())
        """)
        assert proc.stderr.splitlines() == [f"WARNING line {i}" for i in range(1000)]


class TestWithoutALoop:
    def test_records_before_any_loop_are_written(self, tmp_path: Path) -> None:
        """A record logged before an event loop exists is written; handler.flush() waits for it."""
        path = tmp_path / "app.log"
        handler = aiolog.AsyncFileHandler(path)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger("a").warning("no loop yet")
        handler.flush()
        assert lines(path) == ["no loop yet"]

    def test_records_from_a_thread_after_the_loop_closed(self, tmp_path: Path) -> None:
        """Records queued when the loop closes, and logged from a thread after, all arrive."""
        path = tmp_path / "app.log"

        async def main() -> None:
            await aiolog.configure(path, format="%(message)s")
            for i in range(500):
                logging.getLogger("a").warning("in loop %d", i)

        asyncio.run(main())
        worker = threading.Thread(target=lambda: logging.getLogger("a").warning("after 0"))
        worker.start()
        worker.join()
        aiolog.flush_sync()
        assert numbers(path, "in loop") == list(range(500))
        assert lines(path)[-1] == "after 0"

    async def test_records_after_shutdown_are_written(self, tmp_path: Path) -> None:
        """A handler still attached after shutdown() writes synchronously."""
        path = tmp_path / "app.log"
        handler = aiolog.AsyncFileHandler(path)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger("a").warning("before")
        await aiolog.shutdown()
        logging.getLogger("a").warning("after")
        assert lines(path) == ["before", "after"]

    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    def test_exit_without_shutdown_loses_nothing(self, tmp_path: Path, loop: str) -> None:
        """asyncio.run(main()) logging 20,000 records and never calling shutdown() writes all."""
        run_script(tmp_path, """
            import asyncio, logging, sys, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s")
                for i in range(20000):
                    logging.getLogger("app").info("n %d", i)
                    if i % 1000 == 0:
                        await asyncio.sleep(0)
            if sys.argv[1] == "uvloop":
                import uvloop
                uvloop.run(main())
            else:
                asyncio.run(main())
        """, loop)
        assert numbers(tmp_path / "app.log", "n ") == list(range(20000))


class TestOverflow:
    async def test_block_with_a_small_queue_loses_nothing(self, tmp_path: Path) -> None:
        """With overflow='block' and a queue far smaller than the burst, every record arrives,
        in order, none dropped. (How far the queue grows is not pinned: past max_queue it may
        grow while a write() makes no progress for STALL_AFTER, the stalled-sink rule, which a
        loaded machine causes by not scheduling the owner thread; test_stalled_sink pins that.)"""
        path = tmp_path / "app.log"
        [handler] = await aiolog.configure(path, format="%(message)s", max_queue=50)
        for i in range(2000):  # no await
            logging.getLogger("a").info("n %d", i)
        await aiolog.flush()
        assert numbers(path, "n ") == list(range(2000))
        assert handler.stats()["dropped"] == 0

    async def test_block_never_waits_for_another_process_holding_the_lock(
            self, tmp_path: Path) -> None:
        """While a live process holds the rotation lock, a full queue grows past max_queue
        rather than making the loop wait for that process; nothing is lost once it lets go."""
        path = tmp_path / "app.log"
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            lock = tmp_path / "app.log.lock"
            [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=2000,
                                               max_queue=100, lock_timeout=600)
            for i in range(50):
                logging.getLogger("a").info("n %d", i)
            await aiolog.flush()
            lock.write_text(f"{sleeper.pid} {process_start_time(sleeper.pid)} "
                            f"{socket.gethostname()} {pid_namespace()} token\n")
            # If a call waited for the lock, only this watchdog would end the wait, and the
            # assertion below that the lock is still held would fail.
            watchdog = threading.Timer(60, lambda: lock.unlink(missing_ok=True))
            watchdog.start()
            for i in range(50, 1050):
                logging.getLogger("a").info("n %d", i)
            assert lock.exists(), "a log call waited for another process's lock"
            assert handler.stats()["queued"] > 100
            watchdog.cancel()
            lock.unlink()
            await aiolog.flush()
        finally:
            sleeper.kill()
            sleeper.wait()
        assert [n for f in size_set(tmp_path) for n in numbers(f, "n ")] == list(range(1050))

    async def test_drop_counts_and_reports_the_drops(self) -> None:
        """With overflow='drop' records past max_queue are counted and one line reports them."""
        stream = StuckStream()
        [handler] = await aiolog.configure(handlers=[aiolog.AsyncStreamHandler(
            stream, max_queue=100, overflow="drop")])
        handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
        logging.getLogger("a").info("first")
        assert stream.entered.wait(60)  # the owner is stuck writing "first"
        for i in range(1000):
            logging.getLogger("a").info("n %d", i)
        assert handler.stats()["queued"] == 100 + 1
        stream.release.set()
        await aiolog.flush()
        logging.getLogger("a").info("n %d", 1000)  # after recovery
        await aiolog.flush()
        text = stream.getvalue()
        assert [int(n) for n in re.findall(r"^a n (\d+)$", text, re.M)] == list(range(100)) + [1000]
        assert handler.stats()["dropped"] == 900
        assert text.count("aiolog dropped 900 records: queue full (overflow='drop')") == 1

    async def test_drops_from_threads_are_all_counted(self) -> None:
        """Drops counted on several threads at once add up: written + dropped == sent."""
        stream = StuckStream()
        [handler] = await aiolog.configure(handlers=[aiolog.AsyncStreamHandler(
            stream, max_queue=10, overflow="drop")])
        logging.getLogger("a").info("first")
        assert stream.entered.wait(60)

        def flood() -> None:
            for i in range(20_000):
                logging.getLogger("a").info("n %d", i)

        threads = [threading.Thread(target=flood) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stream.release.set()
        await aiolog.flush()
        stats = handler.stats()
        assert stats["written"] + stats["dropped"] == 1 + 4 * 20_000
