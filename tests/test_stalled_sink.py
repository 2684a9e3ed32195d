"""The stalled-sink rule (issue 17, case 2): a sink whose write() does not return never holds
up the event loop; memory stays bounded; exit waits for it only until the documented deadline.

The sink here is the one a container gives: ``configure(None)`` logs to stderr, a pipe, and
its reader stops. Each child process runs with that pipe as its stderr; the test is its reader.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

MAX_QUEUE = 10_000  # the default
BOUND = 10 * MAX_QUEUE  # the README's memory bound while a sink is stalled

CHILD = """
    import asyncio, json, logging, os, sys, aiolog
    total, resume = int(sys.argv[1]), sys.argv[2] == "resume"

    async def main():
        [handler] = await aiolog.configure(None, format="%(message)s")
        ticks = 0
        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)
        task = asyncio.create_task(ticker())
        log = logging.getLogger("app")
        for i in range(total):  # the reader is stopped during all of these
            log.info("n %d", i)
            if i % 200 == 0:
                await asyncio.sleep(0)
        stats = {"while_stalled": handler.stats(), "ticks": ticks}
        with open("logged", "w") as out:  # the reader waits for this before reading again
            json.dump(stats, out)
        if resume:
            while handler.stats()["queued"]:
                await asyncio.sleep(0.01)
            log.info("after")
            await aiolog.shutdown()
            stats["end"] = handler.stats()
            with open("end", "w") as out:
                json.dump(stats, out)
        task.cancel()
        # Without shutdown(), resume or not: the exit drain writes or gives up.

    asyncio.run(main())
"""


def start(tmp_path: Path, total: int, mode: str) -> subprocess.Popen[bytes]:
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    return subprocess.Popen([sys.executable, "child.py", str(total), mode], cwd=tmp_path,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_file(proc: subprocess.Popen[bytes], path: Path) -> dict[str, object]:
    """The child's report, once written; a child that hangs (or dies) first fails the test."""
    deadline = time.monotonic() + 180  # hang detection only: a healthy run needs seconds
    while not path.exists() or not path.read_text().endswith("}"):
        assert proc.poll() is None, f"child ended early: {proc.returncode}"
        assert time.monotonic() < deadline, "the child's event loop froze in a log call"
        time.sleep(0.05)
    result: dict[str, object] = json.loads(path.read_text())
    return result


class TestStderrPipeNobodyReads:
    def test_reader_pauses_then_resumes_every_record_arrives_once(self, tmp_path: Path) -> None:
        """While the reader stops, the loop keeps logging past max_queue (no wait on the
        pipe); past the memory bound records are dropped and counted; once it reads again,
        the rest arrives whole, in order, after one line saying how many were dropped."""
        total = BOUND + 20_000
        proc = start(tmp_path, total, "resume")
        assert proc.stderr is not None
        try:
            stalled = wait_for_file(proc, tmp_path / "logged")
            text = proc.stderr.read().decode()  # the reader resumes, until the child exits
            assert proc.wait(timeout=180) == 0, text[-2000:]
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()
        end = json.loads((tmp_path / "end").read_text())["end"]
        while_stalled = stalled["while_stalled"]
        assert isinstance(while_stalled, dict)
        dropped = while_stalled["dropped"]
        assert dropped > 0 and end["dropped"] == dropped
        assert while_stalled["queued"] <= BOUND + 1000  # + the chunk in the owner's hand
        kept = [int(n) for n in re.findall(r"^n (\d+)$", text, re.MULTILINE)]
        assert kept == sorted(set(kept)) and len(kept) + dropped == total
        notices = re.findall(r"aiolog dropped (\d+) records: the sink stalled", text)
        assert list(map(int, notices)) == [dropped]
        assert text.splitlines()[-1] == "after"
        assert (end["written"], end["errors"], end["queued"]) == (len(kept) + 1, 0, 0)

    def test_reader_stops_for_good_and_exit_gives_up_at_the_deadline(
            self, tmp_path: Path) -> None:
        """The loop logs on while nothing is read, and a program that never calls shutdown()
        still ends: the exit drain stops waiting for the stuck pipe at its deadline."""
        total = 3 * MAX_QUEUE
        proc = start(tmp_path, total, "never")
        assert proc.stderr is not None
        try:
            stalled = wait_for_file(proc, tmp_path / "logged")
            # Never read: the child must end by itself (the timeout only detects a hang).
            assert proc.wait(timeout=180) == 0
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()
        stats = stalled["while_stalled"]
        assert isinstance(stats, dict) and stats["dropped"] == 0
        assert stats["written"] + stats["queued"] == total


SHUTDOWN_CHILD = """
    import asyncio, json, logging, sys, aiolog

    async def main():
        handler = aiolog.AsyncStreamHandler(sys.stdout)  # a pipe nobody reads
        await aiolog.configure(handlers=[handler], format="%(message)s")
        for i in range(30_000):
            logging.getLogger("app").info("n %d", i)
            if i % 200 == 0:
                await asyncio.sleep(0)
        await aiolog.shutdown()  # returns at the deadline
        with open("stats", "w") as out:
            json.dump(handler.stats(), out)

    asyncio.run(main())
"""


def test_shutdown_gives_up_on_a_stuck_stdout_and_says_so_on_stderr(tmp_path: Path) -> None:
    """shutdown() stops waiting for a stdout nobody reads at the deadline, says on stderr how
    many records it could not write, and stats() still counts them as queued."""
    (tmp_path / "child.py").write_text(textwrap.dedent(SHUTDOWN_CHILD))
    with open(tmp_path / "err", "wb") as err:
        proc = subprocess.Popen([sys.executable, "child.py"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    try:
        assert proc.wait(timeout=180) == 0  # never read: a hang fails here
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    stats = json.loads((tmp_path / "stats").read_text())
    reported = re.findall(r"has not taken a write for 5 s; (\d+) records not written",
                          (tmp_path / "err").read_text())
    assert stats["queued"] > 0 and list(map(int, reported)) == [stats["queued"]]
    assert stats["written"] + stats["queued"] == 30_000
