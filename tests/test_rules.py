"""Small rules of the lock, rotation and format modules, each pinned so a one-token change to it
fails a test (found by mutation testing with mutmut, issue 11)."""

from __future__ import annotations

import calendar
import gzip
import logging
import logging.handlers
import os
import re
import threading
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aiolog.sinks import _rotation, _steps
from aiolog._format import FastFormatter
from aiolog.sinks._lock import Lockfile, pid_namespace, process_start_time

from .conftest import local_zone


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


# (audit event, its first argument, what to do just before it happens), armed by one test.
_armed: list[tuple[str, str, Callable[[], None]]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    # One process-wide hook (audit hooks cannot be removed); it acts only while a test armed it,
    # once, in the thread about to make the call: the real interleaving, no mocks.
    if _armed and event == _armed[0][0] and args and args[0] == _armed[0][1]:
        _armed.pop()[2]()


sys.addaudithook(_audit)


@pytest.fixture
def before() -> Iterator[Callable[[str, str, Callable[[], None]], None]]:
    """Run an action just before the next audit event ``event`` on ``path`` (e.g. "open")."""
    def arm(event: str, path: str, action: Callable[[], None]) -> None:
        _armed.append((event, path, action))
    yield arm
    armed = list(_armed)
    _armed.clear()
    assert not armed, "the armed event never happened"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


@pytest.fixture
def berlin() -> Iterator[None]:
    """Local time is Europe/Berlin (UTC+1, +2 in summer) for this test."""
    with local_zone("Europe/Berlin"):
        yield


class TestLock:
    def test_a_stale_lock_retaken_meanwhile_is_not_broken(
            self, tmp_path: Path, dead_pid: tuple[int, int], sleeper: subprocess.Popen[bytes],
            before: Callable[[str, str, Callable[[], None]], None]) -> None:
        """A lock judged stale is unlinked only if, under the break guard, it is still the same
        file with the same content: one another process took in the meantime survives."""
        path = tmp_path / "app.log.lock"
        write_lock(path, *dead_pid)

        def successor_takes_it() -> None:
            # Another breaker finished first and a live process holds a fresh lock now.
            path.unlink()
            write_lock(path, sleeper.pid, process_start_time(sleeper.pid), token="feedfeed")

        # Runs at the real moment: just before our breaker creates its guard file.
        before("open", str(path) + ".break", successor_takes_it)
        assert not Lockfile(str(path), timeout=600).acquire()
        assert path.read_text().split()[4] == "feedfeed"
        assert not (tmp_path / "app.log.lock.break").exists()

    def test_a_stale_lock_rewritten_in_place_is_not_broken(
            self, tmp_path: Path, dead_pid: tuple[int, int], sleeper: subprocess.Popen[bytes],
            before: Callable[[str, str, Callable[[], None]], None]) -> None:
        """Same inode is not enough (ext4 reuses a freed inode number at once): a lock whose
        content changed since it was judged stale is left alone."""
        path = tmp_path / "app.log.lock"
        write_lock(path, *dead_pid)

        def successor_on_the_same_inode() -> None:
            with open(path, "r+") as f:
                f.truncate()
                f.write(f"{sleeper.pid} {process_start_time(sleeper.pid)} {HOST} {NAMESPACE} "
                        "feedfeed\n")

        before("open", str(path) + ".break", successor_on_the_same_inode)
        assert not Lockfile(str(path), timeout=600).acquire()
        assert path.read_text().split()[4] == "feedfeed"

    def test_a_busy_guard_makes_acquire_fail_quietly_and_an_abandoned_one_is_cleared(
            self, tmp_path: Path, dead_pid: tuple[int, int]) -> None:
        """While another breaker's guard exists, acquire() returns False (never raises); a guard
        older than lock_timeout (its breaker died) is removed, so the stale lock is broken."""
        path = tmp_path / "app.log.lock"
        guard = tmp_path / "app.log.lock.break"
        write_lock(path, *dead_pid)
        guard.write_text("")
        lock = Lockfile(str(path), timeout=600)
        assert not lock.acquire()
        assert guard.exists() and path.exists()
        then = time.time() - 3600
        os.utime(guard, (then, then))
        assert not lock.acquire()  # this attempt clears the abandoned guard
        assert not guard.exists()
        assert lock.acquire()
        assert path.read_text().split()[0] == str(os.getpid())
        lock.release()
        assert not path.exists()

    def test_a_dead_pid_on_another_host_proves_nothing(
            self, tmp_path: Path, dead_pid: tuple[int, int]) -> None:
        """A fresh lock naming another host is kept even if its pid is free here (and even with
        our pid namespace inode, which another host can have too)."""
        path = tmp_path / "app.log.lock"
        write_lock(path, *dead_pid, host="elsewhere")
        assert not Lockfile(str(path), timeout=600).acquire()
        assert path.read_text().split()[2] == "elsewhere"

    def test_a_dead_pid_in_another_pid_namespace_proves_nothing(
            self, tmp_path: Path, dead_pid: tuple[int, int]) -> None:
        """A fresh lock from another pid namespace on this host (a container) is kept even if its
        pid is free in ours: that pid is not ours to look up."""
        path = tmp_path / "app.log.lock"
        write_lock(path, *dead_pid, namespace="1")
        assert not Lockfile(str(path), timeout=600).acquire()
        assert path.exists()

    def test_acquire_never_waits_for_another_thread_of_this_process(self, tmp_path: Path) -> None:
        """While one thread of ours holds the lock, another thread's acquire() returns False at
        once instead of waiting for its turn."""
        path = str(tmp_path / "app.log.lock")
        holder = Lockfile(path, timeout=600)
        assert holder.acquire()
        results: list[bool] = []
        other = threading.Thread(target=lambda: results.append(Lockfile(path, timeout=600).acquire()))
        try:
            other.start()
            other.join(timeout=10)
            assert not other.is_alive() and results == [False]
        finally:
            holder.release()
            other.join(timeout=30)

    def test_a_lock_that_cannot_be_written_is_removed_by_its_creator(self, tmp_path: Path) -> None:
        """In this process: when writing the holder line fails (file-size limit 0, as a full disk
        would), acquire() raises, the empty lock is gone and the next acquire() works."""
        import resource
        import signal
        path = tmp_path / "app.log.lock"
        lock = Lockfile(str(path), timeout=600)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
        try:
            with pytest.raises(OSError):
                lock.acquire()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old_handler)
        assert not path.exists()
        assert lock.acquire()
        lock.release()

    def test_checking_a_live_holder_does_not_signal_it(
            self, tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
        """Looking whether a holder lives (kill with signal 0) sends it nothing: it keeps running."""
        path = tmp_path / "app.log.lock"
        write_lock(path, sleeper.pid, process_start_time(sleeper.pid))
        assert not Lockfile(str(path), timeout=600).acquire()
        with pytest.raises(subprocess.TimeoutExpired):
            sleeper.wait(timeout=1)

    def test_start_time_is_field_22_even_when_the_command_name_has_parentheses(
            self) -> None:
        """A process named 'a) b c' (names may hold ') ' and spaces) still reads its start time
        from field 22, counted from the last ')'; an unknown pid reads 0 (unknown), never a
        value that could differ from a holder's."""
        child = subprocess.Popen([sys.executable, "-c", """
import sys, time
with open("/proc/self/stat") as f:
    start = f.read().split()[21]  # the name is still plain here
with open("/proc/self/comm", "w") as f:
    f.write("a) b c (d) e")
print(start, flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
        try:
            start = int(child.stdout.readline())  # type: ignore[union-attr]
            with open(f"/proc/{child.pid}/stat") as f:
                assert ") b c (d) e)" in f.read()
            assert process_start_time(child.pid) == start > 0
        finally:
            child.kill()
            child.communicate(timeout=60)
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        assert process_start_time(pid_max + 1) == 0


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

    def test_time_retention_orders_free_names_by_number(self, tmp_path: Path) -> None:
        """Within one interval, .10 is newer than .9 (numbers, not text), and the dated name
        without a number is the oldest of its interval."""
        base = tmp_path / "app.log"
        for name in ["app.log.2024-07-03.10", "app.log.2024-07-03.9", "app.log.2024-07-03",
                     "app.log.2024-07-02.3.gz"]:
            (tmp_path / name).write_text(name)
        base.write_text("current\n")
        assert _rotation.rotate_by_time(str(base), "2024-07-04", 3, DAY) == str(
            tmp_path / "app.log.2024-07-04")
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "app.log.2024-07-03.10", "app.log.2024-07-03.9", "app.log.2024-07-04"]

    def test_retention_keeps_the_newest_when_one_interval_rotates_many_times(
            self, tmp_path: Path) -> None:
        """Size rotations within one time interval (max_bytes with when) and backup_count=2:
        each rotation keeps the 2 newest files, never deletes the one it just made."""
        base = tmp_path / "app.log"
        for n in range(1, 7):
            base.write_text(f"r{n}\n")
            _rotation.rotate_by_time(str(base), "2024-07-03", 2, DAY)
            kept = sorted(p.read_text() for p in tmp_path.iterdir())
            assert kept == [f"r{i}\n" for i in range(max(1, n - 1), n + 1)], n

    def test_time_retention_with_fewer_backups_than_backup_count_deletes_nothing(
            self, tmp_path: Path) -> None:
        """backup_count=5 with two backups on disk deletes none of them."""
        base = tmp_path / "app.log"
        (tmp_path / "app.log.2024-07-01").write_text("a")
        base.write_text("b")
        _rotation.rotate_by_time(str(base), "2024-07-02", 5, DAY)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "app.log.2024-07-01", "app.log.2024-07-02"]

    def test_a_taken_name_gets_the_first_free_number(self, tmp_path: Path) -> None:
        """Rotating into an existing name picks .1 when it is free, and skips a number taken
        by a compressed file."""
        base = tmp_path / "app.log"
        (tmp_path / "app.log.2024-07-06").write_text("earlier\n")
        base.write_text("current\n")
        assert _rotation.rotate_by_time(str(base), "2024-07-06", 0, DAY) == str(
            tmp_path / "app.log.2024-07-06.1")
        (tmp_path / "app.log.2024-07-06.1").rename(tmp_path / "app.log.2024-07-06.1.gz")
        base.write_text("later\n")
        assert _rotation.rotate_by_time(str(base), "2024-07-06", 0, DAY) == str(
            tmp_path / "app.log.2024-07-06.2")
        assert (tmp_path / "app.log.2024-07-06").read_text() == "earlier\n"

    def test_size_rotation_never_overwrites_a_dot_1_that_appears_meanwhile(
            self, tmp_path: Path, before: Callable[[str, str, Callable[[], None]], None]) -> None:
        """If app.log.1 exists when the base is moved (it appeared after the shift), the base
        goes to a free name and both files are kept."""
        base = tmp_path / "app.log"
        base.write_text("current\n")
        (tmp_path / "app.log.1").write_text("older\n")
        # Just before the base is linked to .1 (after .1 was shifted to .2), a stray .1 appears.
        before("aiolog.rename", str(base), lambda: (tmp_path / "app.log.1").write_text("stray\n"))
        target = _rotation.rotate_by_size(str(base), backup_count=0)
        assert target == str(tmp_path / "app.log.1.1")
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
            "app.log.1": "stray\n", "app.log.1.1": "current\n", "app.log.2": "older\n"}

    def test_without_hard_links_a_rename_still_never_replaces(self, tmp_path: Path) -> None:
        """Where link() is refused (here: a directory, which cannot be hard-linked, as on a file
        system without hard links), a move renames only onto a free name."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "inside").write_text("x")
        taken = tmp_path / "taken"
        taken.write_text("keep")
        no_lock = _steps.Guard(None)
        assert _steps.move(str(src), str(taken), no_lock, _steps.identity(str(src))) is False
        assert taken.read_text() == "keep" and (src / "inside").exists()
        assert _steps.move(str(src), str(tmp_path / "free"), no_lock,
                           _steps.identity(str(src))) is True
        assert (tmp_path / "free" / "inside").read_text() == "x" and not src.exists()

    def test_a_removal_whose_hidden_name_the_next_holder_dropped_ends_quietly(
            self, tmp_path: Path, before: Callable[[str, str, Callable[[], None]], None],
            monkeypatch: pytest.MonkeyPatch) -> None:
        """A rotator frozen before it unlinks the hidden name of a removal (past lock_timeout)
        finds it gone: the next holder's repair dropped it, as the file keeps its other name.
        That is the outcome the removal wanted, not an error (the crash-point test's victim
        died of FileNotFoundError there)."""
        monkeypatch.setattr(_steps, "secrets", type("Fixed", (), {"token_hex": staticmethod(
            lambda n: "f" * 2 * n)}))
        src, kept = tmp_path / "app.log", tmp_path / "app.log.1"
        src.write_text("current\n")
        os.link(src, kept)  # the two names a link-then-unlink move leaves for a moment
        hidden = str(tmp_path / ".app.log.ffffffff.removing")
        before("os.remove", hidden, lambda: os.unlink(hidden))  # the next holder's repair
        _steps.remove(str(src), _steps.Guard(None), _steps.identity(str(src)))
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"app.log.1": "current\n"}

    def test_compression_waits_for_a_late_chunk_and_keeps_it(self, tmp_path: Path) -> None:
        """A writer holding the shared flock on a just-rotated file (its look at the path, then
        its write) makes the compressor wait; the late chunk is in the .gz, the plain file gone."""
        base = tmp_path / "app.log"
        rotated = tmp_path / "app.log.1"
        rotated.write_bytes(b"early\n")
        fd = os.open(rotated, os.O_WRONLY | os.O_APPEND)
        try:
            _rotation.flock(fd, exclusive=False)  # the writer looked at the path: still ours
            lock = Lockfile(str(base) + ".lock", timeout=60)
            compressor = threading.Thread(
                target=_rotation.compress_backups, args=(str(base), r"\d+", lock))
            compressor.start()
            compressor.join(timeout=1)  # give it every chance to run ahead (it must not)
            os.write(fd, b"late\n")
            _rotation.flock(fd, exclusive=None)
            compressor.join(timeout=60)
            assert not compressor.is_alive()
        finally:
            os.close(fd)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.1.gz"]
        assert gzip.decompress((tmp_path / "app.log.1.gz").read_bytes()) == b"early\nlate\n"

    def test_compression_keeps_a_plain_file_whose_gz_name_is_taken(self, tmp_path: Path) -> None:
        """A .gz of that name already exists: the plain file stays, nothing is overwritten,
        and other backups are still compressed."""
        base = tmp_path / "app.log"
        (tmp_path / "app.log.1").write_text("one\n")
        (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(b"other\n"))
        (tmp_path / "app.log.2").write_text("two\n")
        _rotation.compress_backups(str(base), r"\d+", Lockfile(str(base) + ".lock", timeout=60))
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "app.log.1", "app.log.1.gz", "app.log.2.gz"]
        assert gzip.decompress((tmp_path / "app.log.1.gz").read_bytes()) == b"other\n"
        assert gzip.decompress((tmp_path / "app.log.2.gz").read_bytes()) == b"two\n"
        assert (tmp_path / "app.log.1").read_text() == "one\n"


class TestTimePolicy:
    @pytest.mark.parametrize("when,interval,start,following", [
        ("S", 1, utc(2023, 11, 14, 22, 13, 23), utc(2023, 11, 14, 22, 13, 24)),
        ("S", 7, utc(2023, 11, 14, 22, 13, 21), utc(2023, 11, 14, 22, 13, 28)),
        ("M", 1, utc(2023, 11, 14, 22, 13), utc(2023, 11, 14, 22, 14)),
        ("H", 1, utc(2023, 11, 14, 22), utc(2023, 11, 14, 23)),
        ("H", 5, utc(2023, 11, 14, 20), utc(2023, 11, 15, 1)),
        ("D", 1, utc(2023, 11, 14), utc(2023, 11, 15)),
        ("D", 3, utc(2023, 11, 13), utc(2023, 11, 16)),
        ("MIDNIGHT", 1, utc(2023, 11, 14), utc(2023, 11, 15)),
        ("MIDNIGHT", 3, utc(2023, 11, 13), utc(2023, 11, 16)),
        # Weekly: at the midnight that ends the named day, as TimedRotatingFileHandler does
        # (W0: Tuesday 00:00); every `interval` weeks (3.13 honours it), counted from the epoch.
        ("W0", 1, utc(2023, 11, 14), utc(2023, 11, 21)),
        ("W1", 1, utc(2023, 11, 8), utc(2023, 11, 15)),
        ("W6", 1, utc(2023, 11, 13), utc(2023, 11, 20)),
        ("W6", 4, utc(2023, 10, 30), utc(2023, 11, 27)),
    ])
    def test_utc_boundaries_are_multiples_of_the_interval(
            self, when: str, interval: int, start: float, following: float) -> None:
        """In UTC, an interval starts at a multiple of its length from the epoch (weeks on their
        weekday), the same in every process, and the next boundary is one interval later."""
        policy = _rotation.TimePolicy.parse(when.lower(), interval, True)
        t = utc(2023, 11, 14, 22, 13, 23) + 0.5  # a Tuesday
        assert policy.interval_start(t) == start
        assert policy.next_boundary(t) == following
        assert policy.next_boundary(following) > following  # a boundary opens the next one

    @pytest.mark.parametrize("when", ["MIDNIGHT", "W0", "W2", "W6"])
    @pytest.mark.parametrize("moment", [
        (2024, 3, 30, 23, 30), (2024, 3, 31, 1, 0), (2024, 3, 31, 12, 0),  # spring forward
        (2024, 10, 26, 23, 30), (2024, 10, 27, 2, 30), (2024, 10, 27, 23, 59),  # fall back
        (2024, 7, 3, 0, 0), (2024, 7, 3, 12, 0),
    ])
    def test_local_midnight_and_weekly_boundaries_are_local_midnights(
            self, berlin: None, when: str, moment: tuple[int, ...]) -> None:
        """In local time, across daylight-saving changes too, an interval starts at the local
        midnight (for W<n>: the one ending weekday n, as the stdlib rolls over) at or before t
        and the next boundary is the next such one."""
        t = time.mktime((*moment, 0, 0, 0, -1)) + 0.25
        policy = _rotation.TimePolicy.parse(when, 1, False)
        start, following = policy.interval_start(t), policy.next_boundary(t)
        days = 1 if when == "MIDNIGHT" else 7
        for edge in (start, following):
            local = time.localtime(edge)
            assert local[3:6] == (0, 0, 0), time.ctime(edge)
            if when != "MIDNIGHT":
                assert local.tm_wday == (int(when[1]) + 1) % 7
        assert start <= t < following
        assert following - start in (days * 86400 - 3600, days * 86400, days * 86400 + 3600)

    @pytest.mark.parametrize("zone,set_back", [
        ("Europe/Berlin", utc(2025, 10, 26, 1)),  # 03:00 summer time is 02:00 again
        ("America/New_York", utc(2025, 11, 2, 6)),  # 02:00 EDT is 01:00 EST again
        ("Australia/Lord_Howe", utc(2025, 4, 5, 15)),  # set back by half an hour
    ])
    @pytest.mark.parametrize("when,interval", [
        ("S", 7), ("M", 7), ("M", 90), ("H", 1), ("H", 2), ("H", 3), ("H", 7)])
    def test_an_interval_lengthened_by_the_clock_set_back_ends_ahead(
            self, zone: str, set_back: float, when: str, interval: int) -> None:
        """In local time, where daylight saving ends inside an interval, the interval lasts
        longer and ends when the local clock reaches its end: the boundary after any moment is
        ahead of it (one behind it made every new file due at once, a rotation per write)."""
        with local_zone(zone):
            policy = _rotation.TimePolicy.parse(when, interval, False)
            period = {"S": 1, "M": 60, "H": 3600}[when] * interval
            for t in range(int(set_back) - 4 * 3600, int(set_back) + 4 * 3600, 5):
                following = policy.next_boundary(t + 0.05)
                # Ahead, by no more than the interval and the hour the clock was set back.
                assert t + 0.05 < following <= t + period + 3600, (time.ctime(t),
                                                                   time.ctime(following))

    def test_local_hours_follow_the_local_clock(self, berlin: None) -> None:
        """when='H' in Berlin summer time (UTC+2) starts at local 22:00 for local 22:13 (20:00
        UTC) and names the backup by the local hour; utc=True uses the UTC hour."""
        t = time.mktime((2023, 7, 14, 22, 13, 23, 0, 0, -1))
        local = _rotation.TimePolicy.parse("H", 1, False)
        assert time.gmtime(local.interval_start(t))[:6] == (2023, 7, 14, 20, 0, 0)
        assert local.suffix(t) == "2023-07-14_22"
        assert _rotation.TimePolicy.parse("H", 1, True).suffix(t) == "2023-07-14_20"

    @pytest.mark.parametrize("when,suffix", [
        ("S", "2023-11-14_22-13-23"), ("M", "2023-11-14_22-13"), ("H", "2023-11-14_22"),
        ("D", "2023-11-14"), ("MIDNIGHT", "2023-11-14"), ("W0", "2023-11-14"), ("W6", "2023-11-13"),
    ])
    def test_suffixes_name_the_interval_start_as_the_stdlib_does(
            self, when: str, suffix: str) -> None:
        """Backups are named by their interval's start, in TimedRotatingFileHandler's formats,
        and the pattern used to find them matches exactly those names."""
        policy = _rotation.TimePolicy.parse(when, 1, True)
        assert policy.suffix(utc(2023, 11, 14, 22, 13, 23) + 0.5) == suffix
        assert re.fullmatch(policy.suffix_pattern(), suffix)
        assert not re.fullmatch(policy.suffix_pattern(), suffix + "0")

    @pytest.mark.parametrize("when,interval", [
        ("X", 1), ("W7", 1), ("midnightx", 1), ("S", 0), ("S", -1), ("S", True), ("S", 1.0)])
    def test_bad_settings_are_refused(self, when: str, interval: object) -> None:
        """An unknown when or an interval that is not a positive integer raises ValueError."""
        with pytest.raises(ValueError):
            _rotation.TimePolicy.parse(when, interval, False)  # type: ignore[arg-type]

    def test_weekly_keeps_interval_and_names_are_case_blind(self) -> None:
        """'w3' with interval 9 is 'W3' every 9 weeks, as Python 3.13's handler takes it."""
        assert (_rotation.TimePolicy.parse("w3", 9, True)
                == _rotation.TimePolicy("W3", 9, True, 86400))
        assert _rotation.TimePolicy.parse("h", 9, False) == _rotation.TimePolicy("H", 9, False)


class TestFormat:
    def test_cached_milliseconds_belong_to_their_second(self) -> None:
        """Two records with the same whole-number msecs (as Python 3.13 makes them) in different
        seconds get their own seconds, as logging.Formatter writes them."""
        theirs = logging.Formatter("%(asctime)s %(message)s")
        ours = FastFormatter("%(asctime)s %(message)s")
        base = 1_700_000_000
        for created in [base + 0.25, base + 1.25, base + 1.25, base + 0.25, base + 7200.25]:
            record = logging.makeLogRecord({"msg": "m"})
            record.created = created
            record.msecs = 250.0
            assert ours.format(record) == theirs.format(record)

    def test_a_custom_converter_is_never_served_from_the_per_second_cache(self) -> None:
        """A converter other than localtime/gmtime (here: half a second ahead) may change the
        date within one second: every record gets what logging.Formatter writes."""
        def ahead(t: float | None) -> time.struct_time:
            return time.gmtime((t or 0) + 0.5)

        for datefmt in [None, "%H:%M:%S"]:
            theirs = logging.Formatter("%(asctime)s %(message)s", datefmt)
            ours = FastFormatter("%(asctime)s %(message)s", datefmt)
            theirs.converter = ours.converter = ahead  # type: ignore[method-assign]
            for created in [1_700_000_000.2, 1_700_000_000.7, 1_700_000_000.9]:
                record = logging.makeLogRecord({"msg": "m"})
                record.created = created
                record.msecs = round((created % 1) * 1000, 3)
                assert ours.format(record) == theirs.format(record)

    @pytest.mark.parametrize("fmt,datefmt,style", [
        ("{asctime} {message}", "%d/%m %H", "{"),
        ("${asctime} ${message}", "%H.%M", "$"),
        ("100%% %(asctime)s %(message)s", None, "%"),
        ("%(message)s %%(not a field)s", None, "%"),
    ])
    def test_styles_datefmt_and_literal_percent_match_the_stdlib(
            self, fmt: str, datefmt: str | None, style: str) -> None:
        """Brace and dollar styles use the datefmt, and a literal '%%' stays one '%', exactly as
        logging.Formatter writes them."""
        theirs = logging.Formatter(fmt, datefmt, style=style)  # type: ignore[arg-type]
        ours = FastFormatter(fmt, datefmt, style=style)  # type: ignore[arg-type]
        record = logging.makeLogRecord({"msg": "m %d", "args": (1,)})
        record.created, record.msecs = 1_700_000_000.5, 500.0
        assert ours.format(record) == theirs.format(record)

    def test_defaults_still_apply_when_another_field_comes_from_the_context(self) -> None:
        """With defaults={'tenant': 'acme'} and a field bound nowhere, the line shows the
        default for tenant and '-' for the unbound field."""
        ours = FastFormatter("%(tenant)s %(user)s %(message)s", defaults={"tenant": "acme"})
        assert ours.format(logging.makeLogRecord({"msg": "m"})) == "acme - m"

    def test_a_record_formatted_by_another_handler_first_gets_our_own_asctime(self) -> None:
        """Two handlers with different datefmts on one logger: the asctime a stdlib formatter
        left on the record is not reused; each handler writes its own."""
        record = logging.makeLogRecord({"msg": "m"})
        record.created, record.msecs = 1_700_000_000.5, 500.0
        assert logging.Formatter("%(asctime)s", "%H").format(record) == record.asctime
        assert FastFormatter("%(asctime)s|%(message)s").format(record) == (
            logging.Formatter("%(asctime)s|%(message)s").format(record))
