"""The log file's surroundings change under a running writer (issue 17, cases 3 and 5)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import aiolog

from .conftest import lines


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
