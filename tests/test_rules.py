"""Small rules of the lock, rotation and format modules, each pinned so a one-token change to it
fails a test (found by mutation testing with mutmut, issue 11)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiolog
from aiolog import _rotation
from aiolog._format import FastFormatter, fast_equivalent
from aiolog._lock import Holder, Lockfile, pid_namespace, process_start_time

from .conftest import lines

HOST = socket.gethostname()
NAMESPACE = pid_namespace()
DAY = r"\d{4}-\d{2}-\d{2}"


def write_lock(path: Path, pid: int, start: int, *, host: str = HOST, namespace: str = NAMESPACE,
               token: str = "0123abcd", age: float = 0) -> None:
    path.write_text(f"{pid} {start} {host} {namespace} {token}\n")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not us."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(proc.pid)
    proc.wait(timeout=60)
    return proc.pid, start


_on_open: list[tuple[str, object]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    # One process-wide hook (audit hooks cannot be removed); it acts only while a test armed it.
    if event == "open" and _on_open and args[0] == _on_open[0][0]:
        _, action = _on_open.pop()
        action()  # type: ignore[operator]


sys.addaudithook(_audit)


class TestLock:
    def test_a_stale_lock_retaken_meanwhile_is_not_broken(
            self, tmp_path: Path, dead_pid: tuple[int, int],
            sleeper: subprocess.Popen[bytes]) -> None:
        """A lock judged stale is unlinked only if, under the break guard, it is still the same
        file with the same content: one another process took in the meantime survives."""
        path = tmp_path / "app.log.lock"
        write_lock(path, *dead_pid)

        def successor_takes_it() -> None:
            # Another breaker finished first and a live process holds a fresh lock now.
            path.unlink()
            write_lock(path, sleeper.pid, process_start_time(sleeper.pid), token="feedfeed")

        # Runs at the real moment: just before our breaker creates its guard file.
        _on_open.append((str(path) + ".break", successor_takes_it))
        try:
            assert not Lockfile(str(path), timeout=600).acquire()
        finally:
            _on_open.clear()
        assert path.read_text().split()[4] == "feedfeed"
        assert not (tmp_path / "app.log.lock.break").exists()


class TestRotation:
    def test_time_retention_keeps_exactly_backup_count(self, tmp_path: Path) -> None:
        """Time rotation with backup_count=2 keeps the 2 newest backups (plain, .N or .gz) and
        deletes every older one, and nothing else."""
        base = tmp_path / "app.log"
        for name in ["app.log.2024-07-01", "app.log.2024-07-02.gz", "app.log.2024-07-03",
                     "app.log.2024-07-03.1", "other.log.2024-06-01", "app.log.lock"]:
            (tmp_path / name).write_text(name)
        base.write_text("current\n")
        target = _rotation.rotate_by_time(str(base), "2024-07-04", 2, DAY)
        assert target == str(tmp_path / "app.log.2024-07-04")
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "app.log.2024-07-03.1", "app.log.2024-07-04", "app.log.lock", "other.log.2024-06-01"]


class TestFormat:
    def test_cached_milliseconds_belong_to_their_second(self) -> None:
        """Two records with the same whole-number msecs (as Python 3.13 makes them) in different
        seconds get their own seconds, as logging.Formatter writes them."""
        theirs = logging.Formatter("%(asctime)s %(message)s")
        ours = FastFormatter("%(asctime)s %(message)s")
        base = 1_700_000_000
        for created in [base + 0.25, base + 1.25, base + 0.25, base + 7200.25]:
            record = logging.makeLogRecord({"msg": "m"})
            record.created = created
            record.msecs = 250.0
            assert ours.format(record) == theirs.format(record)
