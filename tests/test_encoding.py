"""A record the file's encoding cannot hold (issue 17, case 7): refused alone, never the thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

import aiolog

RECORDS = 4000


class RecordingHandler(aiolog.AsyncFileHandler):
    """An AsyncFileHandler that remembers what handleError() was told."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reported: list[str] = []

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.reported.append(record.getMessage())


def owner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("aiolog-writer")]


class TestUnencodableRecord:
    @pytest.mark.parametrize(("encoding", "errors", "bad"), [
        ("latin-1", "strict", "euro \u20ac"),
        ("ascii", "strict", "caf\u00e9"),
        ("utf-8", "surrogateescape", "lone \ud800 surrogate"),
    ])
    async def test_one_bad_record_among_good_ones_is_refused_alone(
            self, tmp_path: Path, encoding: str, errors: str, bad: str) -> None:
        """The bad record is reported and counted; the others are written, in order, by an
        owner thread that keeps running, and flush() returns."""
        path = tmp_path / "app.log"
        handler = RecordingHandler(path, encoding=encoding, errors=errors)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log = logging.getLogger("enc")
        log.addHandler(handler)
        log.propagate = False
        log.setLevel(logging.INFO)
        try:
            threads = len(owner_threads())
            for i in range(RECORDS):
                log.info(bad if i == RECORDS // 2 else f"good {i}")
            await asyncio.wait_for(handler.aflush(), 60)  # a hang fails, not blocks, the run
            assert len(owner_threads()) == threads  # the owner thread did not die
            log.info("after")
            await asyncio.wait_for(handler.aflush(), 60)
            got = path.read_bytes().decode("ascii").splitlines()
            assert got == [f"good {i}" for i in range(RECORDS) if i != RECORDS // 2] + ["after"]
            assert handler.reported == [bad]
            stats = handler.stats()
            assert (stats["written"], stats["errors"], stats["queued"]) == (RECORDS, 1, 0)
        finally:
            log.removeHandler(handler)
            log.propagate = True
            handler.close()
