"""The rotation lockfile: who holds it, when it is stale, and breaking it safely."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aiolog
from aiolog._lock import Lockfile, process_start_time

from .conftest import lines
from .logfiles import check_complete_and_ordered, read_set, start_workers, wait_all

HOST = socket.gethostname()


def write_lock(path: Path, pid: int, start: int, host: str = HOST, age: float = 0) -> None:
    path.write_text(f"{pid} {start} {host}\n")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    """A live process that is not us."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc  # type: ignore[misc]
    proc.kill()
    proc.wait()


class TestLockfile:
    def test_content_is_pid_starttime_host(self, tmp_path: Path) -> None:
        """The lock names its holder as 'PID STARTTIME HOST' for other tools to read."""
        lock = Lockfile(str(tmp_path / "app.log.lock"), timeout=10)
        assert lock.acquire()
        pid, start, host = (tmp_path / "app.log.lock").read_text().split()
        assert (int(pid), int(start), host) == (os.getpid(), process_start_time(os.getpid()), HOST)
        assert int(start) > 0
        lock.release()
        assert not (tmp_path / "app.log.lock").exists()

    def test_live_holder_keeps_it(self, tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
        """A lock whose holder runs, with a matching start time, is not taken."""
        path = tmp_path / "app.log.lock"
        write_lock(path, sleeper.pid, process_start_time(sleeper.pid))
        assert not Lockfile(str(path), timeout=10).acquire()
        assert path.exists()

    def test_dead_holder_is_stale(self, tmp_path: Path) -> None:
        """A lock whose holder exited is broken and taken."""
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        start = process_start_time(proc.pid)
        proc.wait()
        path = tmp_path / "app.log.lock"
        write_lock(path, proc.pid, start)
        assert Lockfile(str(path), timeout=10).acquire()

    def test_reused_pid_is_stale(self, tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
        """A live pid with another start time is a different process: the lock is stale."""
        path = tmp_path / "app.log.lock"
        write_lock(path, sleeper.pid, process_start_time(sleeper.pid) - 1)
        assert Lockfile(str(path), timeout=10).acquire()

    def test_lock_left_by_our_image_before_execv_is_stale(self, tmp_path: Path) -> None:
        """os.execv keeps pid and start time: a lock naming us that we did not take is stale."""
        path = tmp_path / "app.log.lock"
        write_lock(path, os.getpid(), process_start_time(os.getpid()))
        assert Lockfile(str(path), timeout=10).acquire()

    def test_old_lock_is_stale_whoever_holds_it(self, tmp_path: Path,
                                                 sleeper: subprocess.Popen[bytes]) -> None:
        """Past lock_timeout a lock is broken even if its holder lives or is on another host."""
        path = tmp_path / "app.log.lock"
        write_lock(path, sleeper.pid, process_start_time(sleeper.pid), age=30)
        assert Lockfile(str(path), timeout=10).acquire()
        os.unlink(path)
        write_lock(path, 1, 0, host="elsewhere")
        assert not Lockfile(str(path), timeout=10).acquire()
        write_lock(path, 1, 0, host="elsewhere", age=30)
        assert Lockfile(str(path), timeout=10).acquire()

    def test_release_never_deletes_a_successors_lock(self, tmp_path: Path) -> None:
        """If ours was broken as stale and another took it, our release leaves theirs."""
        path = tmp_path / "app.log.lock"
        ours = Lockfile(str(path), timeout=10)
        assert ours.acquire()
        os.unlink(path)
        write_lock(path, 1, 0, host="successor")
        ours.release()
        assert path.read_text() == f"1 0 successor\n"

    def test_two_processes_breaking_one_stale_lock_do_not_both_win(self, tmp_path: Path) -> None:
        """8 processes find the same stale lock at once: exactly one of them gets it."""
        path = tmp_path / "app.log.lock"
        write_lock(path, 1, 0, age=3600)
        go = time.time() + 1.5
        code = f"""
import os, sys, time
from aiolog._lock import Lockfile
lock = Lockfile({str(path)!r}, timeout=60)
while time.time() < {go}:
    pass
if lock.acquire():
    print("won")
    time.sleep(2)  # hold it while the others try
"""
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
                 for _ in range(8)]
        winners = sum(p.communicate(timeout=60)[0].strip() == "won" for p in procs)
        assert winners == 1


class TestLockInTheWriter:
    async def test_waiting_for_the_lock_never_blocks_the_loop(self, tmp_path: Path,
                                                              sleeper: subprocess.Popen[bytes]) -> None:
        """While another process holds the lock, the loop runs and records wait, then arrive."""
        path = tmp_path / "app.log"
        path.write_text("x" * 2000 + "\n")
        lock = tmp_path / "app.log.lock"
        write_lock(lock, sleeper.pid, process_start_time(sleeper.pid))
        [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=1000)
        for i in range(100):
            logging.getLogger("a").info("n %d", i)
        ticks = 0
        for _ in range(50):  # the writer retries meanwhile, with asyncio.sleep
            await asyncio.sleep(0.002)
            ticks += 1
        assert ticks == 50
        assert handler.stats()["queued"] == 100 and handler.stats()["written"] == 0
        os.unlink(lock)  # the holder finishes
        await aiolog.flush()
        assert lines(tmp_path / "app.log.1") == ["x" * 2000]
        assert lines(path) == [f"n {i}" for i in range(100)]

    def test_holder_killed_while_holding_the_lock(self, tmp_path: Path) -> None:
        """A process SIGKILLed with the lock held leaves a lock the others break; nothing is lost."""
        lock = tmp_path / "app.log.lock"
        holder = subprocess.Popen([sys.executable, "-c",
                                   "import os, signal; from aiolog._lock import Lockfile; "
                                   f"assert Lockfile({str(lock)!r}, timeout=60).acquire(); "
                                   "os.kill(os.getpid(), signal.SIGKILL)"])
        assert holder.wait() == -signal.SIGKILL
        assert lock.exists()
        tags = [f"P{p}" for p in range(4)]
        wait_all(start_workers(tmp_path / "app.log", tags, 5000,
                               options={"max_bytes": 50_000, "lock_timeout": 60}))
        files = read_set(tmp_path)
        assert len(files) > 2
        check_complete_and_ordered(files, {t: 5000 for t in tags})
        assert not lock.exists()
