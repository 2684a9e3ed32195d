"""The log file's surroundings change under a running writer (issue 17, cases 3 and 5)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiolog
from aiolog.sinks import FileSink

from .conftest import chunk, lines
from .logfiles import check_complete_and_ordered, read_set, wait_all


class TestDirectoryDeleted:
    async def test_a_deleted_log_directory_is_created_again(self, tmp_path: Path) -> None:
        """rm -rf logs/ mid-stream: the next chunk recreates the directory and the file, and
        every record logged after the deletion is in it; none is counted failed."""
        path = tmp_path / "logs" / "app.log"
        [handler] = await aiolog.configure(path, format="%(message)s")
        log = logging.getLogger("a")
        deleted_at = 1000
        for i in range(3000):
            log.info("n %d", i)
            if i % 100 == 0:
                await asyncio.sleep(0.01)
            if i == deleted_at:
                await aiolog.flush()  # what came before lives in the deleted file
                shutil.rmtree(tmp_path / "logs")
        await aiolog.shutdown()
        got = lines(path)
        assert got == [f"n {i}" for i in range(deleted_at + 1, 3000)]
        stats = handler.stats()
        assert (stats["written"], stats["errors"]) == (3000, 0)


WORKER = """
    import asyncio, json, logging, sys, aiolog
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    async def main():
        [handler] = await aiolog.configure(path, format="%(created).6f %(message)s")
        for i in range(n):
            logging.getLogger("w").info("%s %d", tag, i)
            if i % 10 == 0:
                await asyncio.sleep(0.01)  # about 1,000 records/s
        await aiolog.shutdown()
        with open(f"{tag}.stats", "w") as out:
            json.dump(handler.stats(), out)
    asyncio.run(main())
"""


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB tmpfs (needs root), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:  # the last bytes of a page
                if not out.write(b"\0"):
                    break
        except OSError:
            pass
    return filler


class TestFullSharedDisk:
    def test_three_processes_on_a_full_tmpfs_never_glue_records(
            self, tmp_path: Path, small_tmpfs: Path) -> None:
        """3 processes share a 4 MiB tmpfs that is filled three times, then freed a page at a time: every line in
        the file is one whole record, each process's records are all there once and in order,
        and stats() says so."""
        (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER))
        tags, n = ["P0", "P1", "P2"], 9000
        procs = [subprocess.Popen([sys.executable, "worker.py", str(small_tmpfs / "app.log"),
                                   tag, str(n)], cwd=tmp_path, stderr=subprocess.DEVNULL)
                 for tag in tags]
        try:
            for _ in range(3):
                time.sleep(0.5)
                filler = fill(small_tmpfs)
                for _ in range(20):  # a page at a time comes free: short writes, mid-line
                    time.sleep(0.05)
                    os.truncate(filler, max(filler.stat().st_size - 4096, 0))
                filler.unlink()
            wait_all(procs)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        files = read_set(small_tmpfs)  # a glued or torn line fails here
        check_complete_and_ordered(files, {tag: n for tag in tags})
        for tag in tags:
            stats = json.loads((tmp_path / f"{tag}.stats").read_text())
            assert (stats["written"], stats["errors"], stats["queued"]) == (n, 0, 0)


class TestDescriptorClosedByOtherCode:
    """Other code closes aiolog's file descriptor (a double close of its own stale descriptor
    number: gunicorn's worker closed a socket twice at shutdown, the second time after aiolog
    had reopened its log at that number, and the worker's last records were given up)."""

    async def _log_around(self, tmp_path: Path, take_over: bool) -> tuple[Path, dict[str, int]]:
        path, other = tmp_path / "app.log", tmp_path / "other.bin"
        [handler] = await aiolog.configure(path, format="%(message)s")
        log = logging.getLogger("a")
        for i in range(100):
            log.info("n %d", i)
        await aiolog.flush()
        fd = handler._writer.owner.sink._file.fileno()
        os.close(fd)  # the foreign close
        if take_over:  # the number goes to the next open file: someone else's
            assert os.open(other, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) == fd
        try:
            for i in range(100, 200):
                log.info("n %d", i)
            await aiolog.shutdown()
        finally:
            if take_over:
                os.close(fd)
        return other, handler.stats()

    async def test_records_go_on_into_the_log_file(self, tmp_path: Path) -> None:
        _, stats = await self._log_around(tmp_path, take_over=False)
        assert lines(tmp_path / "app.log") == [f"n {i}" for i in range(200)]
        assert (stats["written"], stats["errors"]) == (200, 0)

    async def test_records_never_go_into_the_file_that_took_the_number(
            self, tmp_path: Path) -> None:
        other, stats = await self._log_around(tmp_path, take_over=True)
        assert other.read_bytes() == b""
        assert lines(tmp_path / "app.log") == [f"n {i}" for i in range(200)]
        assert (stats["written"], stats["errors"]) == (200, 0)

    def test_a_reader_of_the_log_that_took_the_number_is_not_ours(self, tmp_path: Path) -> None:
        """The same file opened for reading (the application tailing its own log) is not our
        descriptor: records go on into the log, and closing the sink leaves the reader open."""
        path = tmp_path / "app.log"
        sink = FileSink(str(path))
        fd = sink._file.fileno()  # type: ignore[union-attr]
        os.close(fd)
        with open(path, "rb") as reader:
            assert reader.fileno() == fd
            sink.write(chunk(["after"]))
            sink.close()
            os.fstat(reader.fileno())  # still open: raises OSError if the sink closed it
        assert lines(path) == ["after"]

    def test_a_sink_dropped_without_close_releases_its_descriptor(self, tmp_path: Path) -> None:
        """The descriptor is opened without closefd (so a foreign one is never closed): a sink
        collected without close() still closes its own."""
        gc.collect()  # what earlier tests left to collect closes its descriptors now
        before = len(os.listdir("/proc/self/fd"))
        for i in range(20):
            sink = FileSink(str(tmp_path / "a.log"))
            sink.write(chunk([f"{i}"]))
            del sink
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) == before
