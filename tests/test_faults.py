"""Faults and bad input: keep working, lose nothing, say what happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiolog
from aiolog._queue import CHUNK_RECORDS

from .conftest import lines, run_script


class TestDiskRefusesWrites:
    async def test_enospc_is_reported_once_and_writing_resumes(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Writes failing with ENOSPC (/dev/full) never reach the caller; once the path accepts
        writes again, every held record is written."""
        path = tmp_path / "app.log"
        path.symlink_to("/dev/full")
        [handler] = await aiolog.configure(path, format="%(message)s")
        for i in range(100):
            logging.getLogger("a").info("n %d", i)
        await aiolog.flush()  # returns: the writer is failing, not hung
        for i in range(100, 200):
            logging.getLogger("a").info("n %d", i)
            await asyncio.sleep(0)
        assert handler.stats()["written"] == 0
        assert capsys.readouterr().err.count("--- Logging error ---") == 1  # once per burst
        fresh = tmp_path / "fresh"
        fresh.touch()
        os.replace(fresh, path)  # the disk accepts writes again
        for _ in range(600):  # the owner retries within 2 s; a regression fails, not hangs
            if not handler.stats()["queued"]:
                break
            await asyncio.sleep(0.05)
        await aiolog.flush()
        assert lines(path) == [f"n {i}" for i in range(200)]
        assert handler.stats()["written"] == 200

    async def test_shutdown_returns_while_the_disk_is_full(self, tmp_path: Path) -> None:
        """shutdown() gives up on a disk that refuses writes, counting the records as errors."""
        path = tmp_path / "app.log"
        path.symlink_to("/dev/full")
        [handler] = await aiolog.configure(path, format="%(message)s")
        logging.raiseExceptions = False
        try:
            for i in range(50):
                logging.getLogger("a").info("n %d", i)
            await asyncio.sleep(0.2)  # the writer is now waiting to retry
            await asyncio.wait_for(aiolog.shutdown(), timeout=30)
        finally:
            logging.raiseExceptions = True
        assert handler.stats()["errors"] == 50

    def test_enospc_without_a_loop_never_raises(self, tmp_path: Path) -> None:
        """Without a loop a failed write never reaches the caller; close() gives up on it and
        counts it as an error."""
        handler = aiolog.AsyncFileHandler("/dev/full")
        logging.getLogger().addHandler(handler)
        logging.raiseExceptions = False
        try:
            logging.getLogger("a").warning("lost to a full disk")
            logging.getLogger().removeHandler(handler)
            handler.close()
        finally:
            logging.raiseExceptions = True
        assert handler.stats()["errors"] == 1


class TestFileChangedUnderUs:
    @pytest.mark.parametrize("change", ["rm", "mv", "copytruncate"])
    async def test_a_fresh_file_at_the_path(self, tmp_path: Path, change: str) -> None:
        """After rm, a logrotate-style move, or copytruncate, records go to the configured path."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        logging.getLogger("a").info("before")
        await aiolog.flush()
        if change == "rm":
            path.unlink()
        elif change == "mv":
            path.rename(tmp_path / "app.log.moved")
        else:
            (tmp_path / "app.log.copy").write_bytes(path.read_bytes())
            os.truncate(path, 0)
        logging.getLogger("a").info("after")
        await aiolog.flush()
        assert lines(path) == ["after"]  # no NUL bytes from a stale offset either
        if change == "mv":
            assert lines(tmp_path / "app.log.moved") == ["before"]

    async def test_path_that_cannot_be_opened(self, tmp_path: Path) -> None:
        """A directory where the file should be is a clear error from configure()."""
        (tmp_path / "app.log").mkdir()
        with pytest.raises(IsADirectoryError, match="aiolog cannot open log file"):
            await aiolog.configure(tmp_path / "app.log")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


@contextlib.contextmanager
def only_aiolog_on_root() -> Iterator[None]:
    """Detach pytest's capture handlers (added per test phase), which re-raise on bad records."""
    root = logging.getLogger()
    others = [h for h in root.handlers if not isinstance(h, aiolog.AsyncHandler)]
    for handler in others:
        root.removeHandler(handler)
    yield
    for handler in others:
        root.addHandler(handler)


class TestBadRecords:
    async def test_bad_records_never_raise_and_later_records_are_written(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Mismatched % args, a raising __str__, surrogates, 4 MB, non-strings, chained causes."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        log = logging.getLogger("bad")
        with only_aiolog_on_root():
            log.info("%d and %d", 1)
            log.info("%s", Unprintable())
            log.info(Unprintable())
            log.info("lone \udc80 surrogate")
            log.info("big %s", "x" * (4 << 20))
            log.info({"not": "a string"})
            try:
                try:
                    raise ValueError("inner")
                except ValueError as inner:
                    raise KeyError("outer") from inner
            except KeyError:
                log.exception("chained")
            log.info("still logging")
        await aiolog.flush()
        text = path.read_text(encoding="utf-8")
        got = text.splitlines()
        assert got[0] == "'%d and %d' % (1,) (aiolog: message could not be formatted)"
        assert got[1] == ("'%s' % (<Unprintable object (repr failed)>,) "
                          "(aiolog: message could not be formatted)")
        assert got[2] == ("<Unprintable object (repr failed)> % () "
                          "(aiolog: message could not be formatted)")
        assert got[3] == "lone \\udc80 surrogate"
        assert got[4] == "big " + "x" * (4 << 20)
        assert got[5] == "{'not': 'a string'}"
        assert "ValueError: inner" in text and "KeyError: 'outer'" in text
        assert "The above exception was the direct cause" in text
        assert got[-1] == "still logging"
        assert capsys.readouterr().err.count("--- Logging error ---") == 3


class TestBurstAboveDiskSpeed:
    async def test_memory_stays_bounded_and_drops_are_counted_and_logged(
            self, tmp_path: Path) -> None:
        """The sink takes nothing for a while (a FIFO whose reader stopped) while a burst comes:
        with overflow='drop' the loop keeps running, at most max_queue records wait (plus the
        chunk in the writer's hand), and once the sink drains, the log says how many were
        dropped and every record after that is written."""
        path = tmp_path / "app.log"
        os.mkfifo(path)
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists, and reads nothing
        os.set_blocking(reader, True)
        # Long lines, so the pipe's own 64 KiB buffer holds only a few hundred.
        [handler] = await aiolog.configure(path, format="%(message)s|" + "." * 200,
                                           max_queue=500, overflow="drop")
        most_queued = 0
        for i in range(20_000):
            logging.getLogger("a").info("n %d", i)
            if i % 100 == 0:
                await asyncio.sleep(0)  # the writer runs, and its write() blocks on the full pipe
                most_queued = max(most_queued, handler.stats()["queued"])
        dropped = handler.stats()["dropped"]

        def read_all() -> bytes:
            with os.fdopen(reader, "rb") as fifo:
                return fifo.read()  # until every writer has closed it

        received = asyncio.get_running_loop().run_in_executor(None, read_all)
        await aiolog.flush()
        logging.getLogger("a").info("after")
        await aiolog.shutdown()
        text = (await received).decode()
        reported = sum(map(int, re.findall(r"aiolog dropped (\d+) records", text)))
        kept = [int(n) for n in re.findall(r"^n (\d+)\|", text, re.MULTILINE)]
        assert dropped > 15_000 and reported == dropped
        assert most_queued <= 500 + CHUNK_RECORDS
        assert len(kept) + dropped == 20_000 and kept == sorted(kept)
        assert text.splitlines()[-1].startswith("after|")


class TestProcesses:
    def test_fork_after_configure(self, tmp_path: Path) -> None:
        """A pre-fork child gets its own writer state and its records reach the file."""
        run_script(tmp_path, """
            import asyncio, logging, os, aiolog
            log = logging.getLogger("app")
            async def setup():
                await aiolog.configure("app.log", format="%(message)s", max_bytes=5000)
                log.info("parent before fork")
            async def work(name):
                for i in range(500):
                    log.info("%s %d", name, i)
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                await aiolog.shutdown()
            asyncio.run(setup())
            children = []
            for c in range(3):
                pid = os.fork()
                if pid == 0:
                    asyncio.run(work(f"child{c}"))
                    os._exit(0)
                children.append(pid)
            asyncio.run(work("parent"))
            for pid in children:
                assert os.waitpid(pid, 0)[1] == 0
        """)
        records = [line for f in sorted(tmp_path.glob("app.log*")) for line in lines(f)]
        for name in ["parent", "child0", "child1", "child2"]:
            numbers = [int(r.split()[1]) for r in records if re.fullmatch(name + r" \d+", r)]
            assert sorted(numbers) == list(range(500)), name
        assert records.count("parent before fork") == 1

    def test_flush_sync_before_execv_loses_nothing(self, tmp_path: Path) -> None:
        """Code that cannot await calls flush_sync() before os.execv; every record survives."""
        run_script(tmp_path, """
            import asyncio, logging, os, sys, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s", max_queue=100_000)
                for i in range(20000):
                    logging.getLogger("a").info("n %d", i)
                if len(sys.argv) == 1:
                    aiolog.flush_sync()
                    os.execv(sys.executable, [sys.executable, sys.argv[0], "again"])
            asyncio.run(main())
        """)
        assert lines(tmp_path / "app.log") == [f"n {i}" for i in range(20000)] * 2

    def test_sigterm_writes_what_is_queued(self, tmp_path: Path) -> None:
        """With install_signal_handlers(), a SIGTERM'd process writes its queue, then dies of it."""
        proc = run_script(tmp_path, """
            import asyncio, logging, os, signal, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s", max_queue=100_000)
                aiolog.install_signal_handlers()
                for i in range(30000):  # no await: all of it is still queued
                    logging.getLogger("a").info("n %d", i)
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.sleep(30)
            asyncio.run(main())
        """, check=False)
        assert proc.returncode == -signal.SIGTERM
        assert lines(tmp_path / "app.log") == [f"n {i}" for i in range(30000)]
