"""The rotation lockfile: who holds it, when it is stale, and breaking it safely."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import aiolog
from aiolog.sinks._lock import Holder, Lockfile, pid_namespace, process_start_time

from .conftest import lines
from .logfiles import check_complete_and_ordered, read_set, start_workers, wait_all

HOST = socket.gethostname()
NAMESPACE = pid_namespace()


def write_lock(path: Path, pid: int, start: int, host: str = HOST, age: float = 0,
               namespace: str = NAMESPACE, token: str = "0123abcd") -> None:
    path.write_text(f"{pid} {start} {host} {namespace} {token}\n")
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
    def test_content_names_the_holder_and_the_acquisition(self, tmp_path: Path) -> None:
        """The lock reads 'PID STARTTIME HOST PIDNS TOKEN', with a new token each time."""
        lock = Lockfile(str(tmp_path / "app.log.lock"), timeout=10)
        tokens = set()
        for _ in range(2):
            assert lock.acquire()
            pid, start, host, namespace, token = (tmp_path / "app.log.lock").read_text().split()
            assert (int(pid), int(start), host, namespace) == (
                os.getpid(), process_start_time(os.getpid()), HOST, NAMESPACE)
            assert int(start) > 0 and namespace.isdigit() and len(token) == 16
            tokens.add(token)
            lock.release()
            assert not (tmp_path / "app.log.lock").exists()
        assert len(tokens) == 2

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
        lock = Lockfile(str(path), timeout=10)
        assert lock.acquire()
        lock.release()
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
        assert path.read_text().startswith("1 0 successor ")

    def test_release_keeps_a_lock_with_our_identity_but_another_token(self, tmp_path: Path) -> None:
        """A lock re-created at once on the same inode with our pid is not ours unless the
        token is: release leaves it."""
        path = tmp_path / "app.log.lock"
        ours = Lockfile(str(path), timeout=10)
        assert ours.acquire()
        holder = Holder.parse(path.read_text())
        assert holder is not None
        with open(path, "w") as f:  # same inode, same identity, another acquisition
            f.write(Holder(holder.pid, holder.start, holder.host, holder.namespace,
                           "ffffffffffffffff").line())
        ours.release()
        assert path.exists()

    def test_threads_of_one_process_never_hold_it_together(self, tmp_path: Path) -> None:
        """Three threads, each with its own Lockfile on one path (as the writer and the
        compressor have), take turns: never two inside at once, none judged stale."""
        path = str(tmp_path / "app.log.lock")
        inside: list[int] = []
        overlaps = []

        def worker(n: int) -> None:
            lock = Lockfile(path, timeout=60)
            done = 0
            while done < 200:
                if not lock.acquire():
                    time.sleep(0.0001)  # let the holder run
                    continue
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(list(inside))
                os.stat(path)  # a syscall, so threads switch here too
                inside.remove(n)
                lock.release()
                done += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not overlaps
        assert not os.path.exists(path)

    def test_two_spellings_of_one_lock_are_one_lock(self, tmp_path: Path) -> None:
        """A lock reached through a symlinked directory is the same lock in this process:
        while one spelling holds it, the other does not judge it stale and break it."""
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        a = Lockfile(str(tmp_path / "real" / "app.log.lock"), timeout=60)
        b = Lockfile(str(tmp_path / "link" / "app.log.lock"), timeout=60)
        assert a.acquire()
        assert not b.acquire()
        a.release()
        assert b.acquire()
        b.release()

    def test_unreadable_holder_is_alive(self, tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
        """Fail closed: a lock naming a start time of 0 (unknown) or an unparsable line is not
        broken while younger than lock_timeout."""
        path = tmp_path / "app.log.lock"
        write_lock(path, sleeper.pid, 0)
        assert not Lockfile(str(path), timeout=10).acquire()
        path.write_text("garbage\n")
        assert not Lockfile(str(path), timeout=10).acquire()
        assert path.exists()

    def test_holder_in_another_pid_namespace_is_alive(self, tmp_path: Path) -> None:
        """A live holder in another pid namespace on this host (a container) keeps its lock:
        its pid means nothing here, so only lock_timeout can make it stale."""
        if shutil.which("unshare") is None:
            pytest.skip("needs unshare(1)")
        path = tmp_path / "app.log.lock"
        code = (f"import sys, time; from aiolog.sinks._lock import Lockfile; "
                f"assert Lockfile({str(path)!r}, timeout=600).acquire(); "
                f"print('held', flush=True); time.sleep(60)")
        # Its own session, so that killing the group also ends the process unshare forked.
        holder = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc",
                                   sys.executable, "-c", code],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        try:
            line = holder.stdout.readline()  # type: ignore[union-attr]
            if line.strip() != "held":
                pytest.skip(f"cannot make a pid namespace here: {holder.stderr.read()}")  # type: ignore[union-attr]
            assert path.read_text().split()[3] != NAMESPACE
            assert not Lockfile(str(path), timeout=600).acquire()
            assert path.exists()
        finally:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.communicate()

    def test_a_lock_that_cannot_be_written_is_removed(self, tmp_path: Path) -> None:
        """When writing the holder line fails (the file-size limit, as a full disk would), the
        empty lock is removed and the error raised, so nobody waits lock_timeout for it."""
        path = tmp_path / "app.log.lock"
        proc = subprocess.run([sys.executable, "-c", f"""
import resource, signal
from aiolog.sinks._lock import Lockfile
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
try:
    Lockfile({str(path)!r}, timeout=600).acquire()
except OSError as exc:
    print("raised", exc.errno)
"""], capture_output=True, text=True, timeout=60)
        assert proc.stdout.startswith("raised"), proc.stderr
        assert not path.exists()

    def test_two_processes_breaking_one_stale_lock_do_not_both_win(self, tmp_path: Path) -> None:
        """8 processes find the same stale lock at once: exactly one of them gets it."""
        path = tmp_path / "app.log.lock"
        write_lock(path, 1, 0, age=3600)
        go = time.time() + 1.5
        code = f"""
import os, sys, time
from aiolog.sinks._lock import Lockfile
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
        """While another process holds the lock, log calls and the loop go on and records wait;
        once it is released they arrive, after the rotation."""
        path = tmp_path / "app.log"
        path.write_text("x" * 2000 + "\n")
        lock = tmp_path / "app.log.lock"
        write_lock(lock, sleeper.pid, process_start_time(sleeper.pid))
        [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=1000,
                                           lock_timeout=600)
        # Only this watchdog would release the lock to a loop that waited for it; the
        # assertions below that it is still held would then fail.
        watchdog = threading.Timer(60, lambda: lock.unlink(missing_ok=True))
        watchdog.start()
        for i in range(100):
            logging.getLogger("a").info("n %d", i)
        await asyncio.sleep(0.05)  # the owner tries the lock meanwhile
        assert lock.exists(), "the loop waited for another process's lock"
        watchdog.cancel()
        assert handler.stats()["queued"] == 100 and handler.stats()["written"] == 0
        os.unlink(lock)  # the holder finishes
        await aiolog.flush()
        assert lines(tmp_path / "app.log.1") == ["x" * 2000]
        assert lines(path) == [f"n {i}" for i in range(100)]

    def test_holder_killed_while_holding_the_lock(self, tmp_path: Path) -> None:
        """A process SIGKILLed with the lock held leaves a lock the others break; nothing is lost."""
        lock = tmp_path / "app.log.lock"
        holder = subprocess.Popen([sys.executable, "-c",
                                   "import os, signal; from aiolog.sinks._lock import Lockfile; "
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
