"""Rollover by size and by time, with many real processes sharing one file."""

from __future__ import annotations

import asyncio
import glob
import gzip
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import aiolog
from aiolog.sinks import FileSink, _birth, _rotation, _steps
from aiolog._queue import CHUNK_BYTES

from .conftest import chunk, lines, local_zone, run_script
from .logfiles import (WORKER, check_complete_and_ordered, writes_after_rotation, read_set, start_workers,
                       wait_all)

PROCESSES = 4
RECORDS = 20_000


class TestSizeRotationAcrossProcesses:
    def test_four_processes_share_one_rotating_file(self, tmp_path: Path) -> None:
        """4 x 20,000 records with a small max_bytes: all once, whole, in order, none misplaced."""
        max_bytes = 200_000
        tags = [f"P{p}" for p in range(PROCESSES)]
        wait_all(start_workers(tmp_path / "app.log", tags, RECORDS,
                               options={"max_bytes": max_bytes}))
        files = read_set(tmp_path)
        assert len(files) > 10  # it really rotated, many times
        check_complete_and_ordered(files, {t: RECORDS for t in tags})
        assert writes_after_rotation(tmp_path) == []
        for f in files[:-1]:
            # The README's bound (issue 12, item 7): each process splits its own chunk at
            # max_bytes; only the other writers, racing between our size check and our write,
            # can add to a file past it, one chunk each at most.
            assert (tmp_path / f.name).stat().st_size <= max_bytes + (PROCESSES - 1) * CHUNK_BYTES
        assert not (tmp_path / "app.log.lock").exists()

    def test_exec_restarting_daemon_with_workers(self, tmp_path: Path) -> None:
        """Regression: a daemon re-executes itself and starts its workers again; nothing is lost
        or written into a rotated-away file."""
        worker = Path(__file__).parent / "scripts" / "log_worker.py"
        run_script(tmp_path, f"""
            import asyncio, json, logging, os, subprocess, sys
            sys.path.insert(0, {str(worker.parent)!r})
            import aiolog
            from log_worker import LINE_FORMAT, save_trace, trace_writes_and_rotations
            generation = int(sys.argv[1]) if len(sys.argv) > 1 else 0
            events = []
            trace_writes_and_rotations(events)
            def start(tag):
                cfg = {{"path": "app.log", "n": 8000, "tag": tag, "trace": f"{{tag}}.trace",
                        "options": {{"max_bytes": 100000}}}}
                return subprocess.Popen([sys.executable, {str(worker)!r}, json.dumps(cfg)])
            async def main():
                await aiolog.configure("app.log", format=LINE_FORMAT, max_bytes=100000)
                workers = [start(f"P{{w}}g{{generation}}") for w in range(2)]
                log = logging.getLogger("daemon")
                for i in range(5000):
                    log.info("P9g%d %d", generation, i)
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                    if generation == 0 and i == 2500:
                        await aiolog.flush()
                        save_trace(events, "daemon0.trace")
                        os.execv(sys.executable, [sys.executable, sys.argv[0], "1"])
                for proc in workers:
                    proc.wait()
                await aiolog.shutdown()
            asyncio.run(main())
            save_trace(events, "daemon1.trace")
            if generation == 1:  # the first generation's workers are still our children
                while True:
                    try:
                        pid, status = os.wait()
                    except ChildProcessError:
                        break
                    assert os.waitstatus_to_exitcode(status) == 0
        """)
        files = read_set(tmp_path)
        expected = {"P0g0": 8000, "P1g0": 8000, "P0g1": 8000, "P1g1": 8000, "P9g1": 5000}
        seen_g0 = [r.seq for f in files for r in f.records if r.source == "P9g0"]
        assert seen_g0 == list(range(2501))
        check_complete_and_ordered(files, expected | {"P9g0": 2501})
        assert writes_after_rotation(tmp_path) == []

    def test_backups_never_exceed_backup_count(self, tmp_path: Path) -> None:
        """Retention keeps backup_count rotated files, deleting only the oldest."""
        run_script(tmp_path, """
            import asyncio, logging, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s", max_bytes=1000,
                                       backup_count=3)
                for i in range(2000):
                    logging.getLogger("a").info("n %05d", i)
                    await aiolog.flush()
                await aiolog.shutdown()
            asyncio.run(main())
        """)
        assert sorted(p.name for p in tmp_path.glob("app.log*")) == [
            "app.log", "app.log.1", "app.log.2", "app.log.3"]
        kept = [line for name in ["app.log.3", "app.log.2", "app.log.1", "app.log"]
                for line in lines(tmp_path / name)]
        assert kept == [f"n {i:05d}" for i in range(2000 - len(kept), 2000)]


class TestTimeRotationAcrossProcesses:
    def test_many_processes_rotate_every_second(self, tmp_path: Path) -> None:
        """Regression: 6 processes with when='S' over several seconds lose nothing, agree on each
        boundary and name backups as TimedRotatingFileHandler does."""
        tags = [f"P{p}" for p in range(6)]
        wait_all(start_workers(tmp_path / "app.log", tags, 3000, every=20, pause=0.02,
                               options={"when": "S"}))
        files = read_set(tmp_path)
        assert len(files) >= 3
        check_complete_and_ordered(files, {t: 3000 for t in tags})
        assert writes_after_rotation(tmp_path) == []
        for f in files[:-1]:
            match = re.fullmatch(r"app\.log\.(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)", f.name)
            assert match, f.name
            start = time.mktime(time.strptime(match[1], "%Y-%m-%d_%H-%M-%S"))
            for r in f.records:
                # Written within its second, or at most one chunk late after the boundary.
                assert start - 0.2 <= r.created < start + 1.1, (f.name, r)

    def test_file_from_an_earlier_interval_is_rotated_on_open(self, tmp_path: Path) -> None:
        """A file left over from yesterday is moved to yesterday's name before today's records."""
        path = tmp_path / "app.log"
        path.write_text("old record\n")
        yesterday = time.time() - 86400
        os.utime(path, (yesterday, yesterday))
        run_script(tmp_path, """
            import asyncio, logging, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s", when="midnight")
                logging.getLogger("a").info("new record")
                await aiolog.shutdown()
            asyncio.run(main())
        """)
        old_name = "app.log." + time.strftime("%Y-%m-%d", time.localtime(yesterday))
        assert lines(tmp_path / old_name) == ["old record"]
        assert lines(path) == ["new record"]


class Stepped:
    """A worker process the test steps through (``tests/scripts/stepped_worker.py``).

    Started at once, it opens the file only when told to (``open()``): the slow part, starting
    Python, is over by then, so the test can place the open in an interval, even under load.
    """

    WATCHDOG = 120  # a worker that hangs is killed: its next reply fails the test, not hangs it

    def __init__(self, path: Path, tag: str, options: dict[str, object]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER.parent / "stepped_worker.py"),
             json.dumps({"path": str(path), "tag": tag, "options": options})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.watchdog = threading.Timer(self.WATCHDOG, self.proc.kill)
        self.watchdog.daemon = True  # a test that failed before stop() must not hold up the run
        self.watchdog.start()
        self.opened = 0.0  # when configure() returned, by the worker's clock

    def _send(self, word: str) -> None:
        self.proc.stdin.write(word + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def _reply(self, word: str) -> str:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(word), f"worker said {line!r}, exit code {self.proc.poll()}"
        return line[len(word):].strip()

    def ready(self) -> None:
        """Wait until the worker has started and waits to be told to open the file."""
        self._reply("ready")

    def open(self) -> None:
        """Configure: open the file, and wait until it is open."""
        self._send("open")
        self.opened = float(self._reply("opened"))

    def log(self) -> None:
        """Log one record and wait until it is written."""
        self._send("log")
        self._reply("logged")

    def stop(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            assert self.proc.wait(timeout=60) == 0
        finally:
            self.watchdog.cancel()
            self.proc.stdout.close()  # type: ignore[union-attr]


class TestProcessesAgreeOnAFilesInterval:
    """Which interval a file belongs to is decided alike by every process that holds it open,
    whenever it opened it: else one process names its records after the interval before.

    Regression (a CI run of ``test_many_processes_rotate_every_second``): P3 started just
    before a boundary and found the file it had opened still empty when it was due, so it
    kept it for the new interval; P5, which had opened it in the same second, was due too and
    rotated it, with P3's new records, to the name of the second before."""

    INTERVAL = 2  # when="S", interval=2: boundaries on even seconds of the epoch

    def _worker(self, directory: Path, tag: str) -> Stepped:
        """A started worker, ready to open the file."""
        worker = Stepped(directory / "app.log", tag, {"when": "S", "interval": self.INTERVAL})
        worker.ready()
        return worker

    def _start(self, directory: Path, tags: list[str]) -> list[Stepped]:
        """Workers that all opened the (new, empty) file in one interval, 0.1 s or more before
        its end (a file made within the 50 ms slack before a boundary counts as the next one)."""
        for _ in range(5):
            workers = [self._worker(directory, tag) for tag in tags]
            time.sleep(self.INTERVAL - time.time() % self.INTERVAL + 0.05)
            for leftover in directory.glob("app.log*"):
                leftover.unlink()
            for w in workers:
                w.open()
            intervals = {int(w.opened // self.INTERVAL) for w in workers}
            if len(intervals) == 1 and max(w.opened for w in workers) % self.INTERVAL < 1.9:
                return workers
            for w in workers:
                w.stop()
        pytest.fail("could not open the file in all workers within one interval in 5 tries")

    def _wait_for_the_next_interval(self, workers: list[Stepped]) -> float:
        """Sleep until just after the end of the workers' interval; return that boundary."""
        boundary = (max(w.opened for w in workers) // self.INTERVAL + 1) * self.INTERVAL
        time.sleep(max(0.0, boundary - time.time()) + 0.2)
        return boundary

    def _check_names(self, directory: Path, records: int) -> None:
        files = read_set(directory)
        assert sum(len(f.records) for f in files) == records
        for f in files[:-1]:
            start = time.mktime(time.strptime(f.name.split(".")[2], "%Y-%m-%d_%H-%M-%S"))
            for r in f.records:  # created after its file's interval ended: misnamed
                assert r.created < start + self.INTERVAL, (f.name, r)

    def test_both_opened_it_empty_in_one_interval(self, tmp_path: Path) -> None:
        """Two processes that opened the still empty file in one interval both find it due at
        its end: the new interval's records never get the name of the one before."""
        first, second = self._start(tmp_path, ["P0", "P1"])
        self._wait_for_the_next_interval([first, second])
        first.log()  # due, and the file is still empty
        second.log()  # due too: by then the file holds first's record of the new interval
        first.stop()
        second.stop()
        self._check_names(tmp_path, 2)

    def test_one_opened_it_empty_after_the_boundary(self, tmp_path: Path) -> None:
        """A process that opens, after a boundary, an empty file made before it finds it due,
        as its maker does: its records never get the name of the interval before."""
        second = self._worker(tmp_path, "P1")  # started first: only its open is timed
        (first,) = self._start(tmp_path, ["P0"])
        self._wait_for_the_next_interval([first])
        second.open()  # in the new interval, a file made in the one before
        second.log()
        first.log()  # due: the file holds second's record, if second kept it
        first.stop()
        second.stop()
        self._check_names(tmp_path, 2)

    def test_a_write_just_before_the_boundary(self, tmp_path: Path) -> None:
        """A file written in the last moments of its interval is due at that interval's end
        also for a process that opened it after that write."""
        path = tmp_path / "app.log"
        second = self._worker(tmp_path, "P1")  # started first: only its open is timed
        (first,) = self._start(tmp_path, ["P0"])
        fd = os.open(path, os.O_RDONLY)
        try:
            if _birth.birth_time(fd, os.fstat(fd)) is None:
                first.stop()
                second.stop()
                pytest.skip("this file system keeps no birth time: by the last write, this "
                            "is the case the README says it cannot decide alike")
        finally:
            os.close(fd)
        first.log()
        boundary = self._wait_for_the_next_interval([first])
        # The stamp first's write leaves when it lands 20 ms before the boundary: set here, as
        # a write cannot be timed to a few milliseconds under load. (A stamp in the past, as
        # the kernel's would be by now.)
        os.utime(path, (boundary - 0.02, boundary - 0.02))
        second.open()  # the file of the interval before, before anyone rotated it
        second.log()
        first.log()  # due: the file holds second's record, if second kept it
        first.stop()
        second.stop()
        self._check_names(tmp_path, 3)


class TestBirthTime:
    def test_is_the_creation_whatever_is_written_or_stamped_later(self, tmp_path: Path) -> None:
        """A file's birth time is when it was created: neither a later write nor a modification
        time set forward or back changes it."""
        before = time.time()
        fd = os.open(tmp_path / "app.log", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            born = _birth.birth_time(fd, os.fstat(fd))
            if born is None:
                pytest.skip("this file system keeps no birth time")
            assert before - 1 <= born <= time.time()  # a coarse clock stamps up to a tick early
            os.write(fd, b"a record\n")
            for stamp in (before + 3600, 1.0):
                os.utime(tmp_path / "app.log", (stamp, stamp))
                assert _birth.birth_time(fd, os.fstat(fd)) == born
        finally:
            os.close(fd)


FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
                  + glob.glob("/usr/lib/faketime/libfaketimeMT.so.1"))


class TestFileSystemClockBehind:
    @pytest.mark.skipif(not FAKETIME, reason="needs libfaketime (apt-get install libfaketime)")
    def test_a_new_file_is_not_rotated_again_at_once(self, tmp_path: Path) -> None:
        """A process whose clock is ahead of the file system's (as an NFS server's or a VM's
        shared folder's may be behind) still writes every record with when='S', each backup
        holding some but the file it made at start: a new file's stamp made it look due at
        once, and it was rotated again and again, nothing ever written."""
        # Our clock 3 s ahead; the files' stamps are the kernel's.
        run_script(tmp_path, """
            import asyncio, logging, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s", when="S")
                for i in range(150):
                    logging.getLogger("a").info("record %d", i)
                    await asyncio.sleep(0.01)
                await aiolog.shutdown()
            asyncio.run(main())
        """, timeout=60, env={"LD_PRELOAD": FAKETIME[0], "FAKETIME": "+3s", "NO_FAKE_STAT": "1"})
        files = {p.name: lines(p) for p in tmp_path.glob("app.log*") if p.suffix != ".lock"}
        assert sorted(sum(files.values(), []), key=lambda line: int(line.split()[1])) == [
            f"record {i}" for i in range(150)]
        assert sum(not records for records in files.values()) <= 1, sorted(files)

    @pytest.mark.parametrize("writers", [1, 2])
    def test_a_file_system_clock_behind_ours_rotates_once_per_writer(
            self, tmp_path: Path, writers: int) -> None:
        """A fresh file stamped before the boundary just passed (a file server whose clock is
        behind ours) is not due again and again: each writer rotates at most once, not at every
        write, and every record is kept once."""
        path = tmp_path / "app.log"
        sinks = [FileSink(str(path), when="S") for _ in range(writers)]  # as many processes
        for w, sink in enumerate(sinks):
            sink.write(chunk([f"{w} before"]))
        time.sleep(1 - time.time() % 1 + 0.1)  # into the next second: due
        behind = time.time() - 1  # a stamp from the second before, as such a server gives
        creating = [True]
        stamped = []

        def server_clock_behind(event: str, args: tuple[object, ...]) -> None:
            # Each file a writer opens bears the server's stamp of its creation or last write
            # (made here; the hook stays installed, so it is switched off after the test).
            # After 10 opens the server's clock has caught up: a rotation loop ends there.
            if creating[0] and len(stamped) < 10 and event == "open" and args[0] == str(path):
                creating[0] = False
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
                os.utime(path, (behind, behind))
                stamped.append(path)
                creating[0] = True

        sys.addaudithook(server_clock_behind)
        try:
            for n in range(3):
                for w, sink in enumerate(sinks):
                    sink.write(chunk([f"{w} {n}"]))
        finally:
            creating[0] = False
            for sink in sinks:
                sink.close()
        assert sum(sink.rotations for sink in sinks) <= writers
        kept = sorted(line for f in tmp_path.glob("app.log*") if not f.name.endswith(".lock")
                      for line in lines(f))
        assert kept == sorted(f"{w} {n}" for w in range(writers) for n in ["before", 0, 1, 2])


class TestDaylightSavingEnds:
    def test_an_interval_it_lengthened_is_not_rotated_at_every_write(self, tmp_path: Path) -> None:
        """In the hour that the end of daylight saving adds to an interval of the local clock
        (when='H', interval=2), a process writes every record and rotates nothing (the file
        it made was due at once: its owner rotated it again and again, never writing)."""
        now = time.time()
        # A zone whose summer time ended 20 minutes ago, where the local (standard) clock is
        # now 1 h 30 min into its interval of 2 h (give or take the 7.5 min its offset is
        # rounded by): that interval began, in summer time, more than 2 hours ago.
        std = round((5400 - now % 7200) % 7200 / 900) * 900
        end = time.gmtime(now - 1200 + std + 3600)  # the end of summer time, on its clock
        if end.tm_yday < 2:
            pytest.skip("the zone's summer time would have to begin before the year did")
        zone = (f"XST-{std // 3600}:{std % 3600 // 60:02d}XDT,0/0,"
                f"{end.tm_yday - 1}/{end.tm_hour}:{end.tm_min:02d}:{end.tm_sec:02d}")
        with local_zone(zone):
            assert (time.localtime(now - 1800).tm_isdst, time.localtime(now).tm_isdst) == (1, 0)
            run_script(tmp_path, """
                import asyncio, logging, aiolog
                async def main():
                    await aiolog.configure("app.log", format="%(message)s", when="H",
                                           interval=2, backup_count=3)
                    for i in range(200):
                        logging.getLogger("a").info("record %d", i)
                        await aiolog.flush()
                    await aiolog.shutdown()
                asyncio.run(main())
            """, timeout=60)
        assert lines(tmp_path / "app.log") == [f"record {i}" for i in range(200)]
        assert [p.name for p in tmp_path.glob("app.log.*")] == []


class TestNeverOverwrite:
    def test_a_taken_time_name_gets_a_free_one(self, tmp_path: Path) -> None:
        """Rotating into a name that exists keeps both files."""
        base = tmp_path / "app.log"
        (tmp_path / "app.log.2024-07-06").write_text("earlier\n")
        (tmp_path / "app.log.2024-07-06.1").write_text("earlier too\n")
        base.write_text("current\n")
        target = _rotation.rotate_by_time(str(base), "2024-07-06", 0, r"\d{4}-\d\d-\d\d")
        assert target == str(tmp_path / "app.log.2024-07-06.2")
        assert lines(tmp_path / "app.log.2024-07-06") == ["earlier"]
        assert lines(tmp_path / "app.log.2024-07-06.1") == ["earlier too"]
        assert lines(tmp_path / "app.log.2024-07-06.2") == ["current"]

    def test_size_shift_keeps_gaps_and_compressed_backups(self, tmp_path: Path) -> None:
        """Shifting .N up keeps every file, plain or gzipped, with gaps in the numbering."""
        base = tmp_path / "app.log"
        for name, text in [("app.log", "c"), ("app.log.1", "b"), ("app.log.2.gz", "a"),
                           ("app.log.5", "z")]:
            (tmp_path / name).write_text(text)
        _rotation.rotate_by_size(str(base), backup_count=0)
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
            "app.log.1": "c", "app.log.2": "b", "app.log.3.gz": "a", "app.log.6": "z"}

    @pytest.mark.parametrize("backup_count", [10, 100_000])
    def test_rotation_cost_follows_existing_backups(self, tmp_path: Path, backup_count: int) -> None:
        """With 10 backups on disk, backup_count=100000 does the same file operations as 10."""
        base = tmp_path / "app.log"
        for i in range(1, 11):
            (tmp_path / f"app.log.{i}").write_text(str(i))
        base.write_text("current")
        calls: list[str] = []

        def audit(event: str, args: object) -> None:
            if event.startswith(("os.", "aiolog.")) and active:
                calls.append(event)

        _steps._load_renameat2()  # its ctypes import lists directories, once per process
        active = True
        sys.addaudithook(audit)
        try:
            _rotation.rotate_by_size(str(base), backup_count)
        finally:
            active = False
        # 10 shifts + the base: one rename each, plus one directory listing; backup_count=10
        # deletes the oldest (.10) instead of shifting it (a rename to a hidden name + unlink).
        assert calls.count("os.listdir") == 1
        assert len(calls) == (12 if backup_count == 100_000 else 13)


class TestCompression:
    def test_rotated_files_are_gzipped_and_readable_by_zcat(self, tmp_path: Path) -> None:
        """compress=True leaves .N.gz files that gzip -dc reads back, and no plain backups."""
        run_script(tmp_path, f"""
            import asyncio, logging, sys
            sys.path.insert(0, {str(WORKER.parent)!r})
            import aiolog
            from log_worker import LINE_FORMAT
            async def main():
                await aiolog.configure("app.log", format=LINE_FORMAT, max_bytes=20000,
                                       compress=True)
                for i in range(5000):
                    logging.getLogger("a").info("P0 %d", i)
                    if i % 100 == 0:
                        await aiolog.flush()
                await aiolog.shutdown()
            asyncio.run(main())
        """)
        backups = sorted(p.name for p in tmp_path.glob("app.log.*"))
        assert len(backups) >= 5 and all(name.endswith(".gz") for name in backups), backups
        # What the real gzip tool reads back from the backups, oldest (.N highest) first, then
        # the current file, is every record once and in order: the .gz files are complete.
        seqs = []
        for name in sorted(backups, key=lambda n: -int(n.split(".")[2])):
            unzipped = subprocess.run(["gzip", "-dc", str(tmp_path / name)], capture_output=True,
                                      check=True, timeout=60).stdout.decode()
            seqs += [int(re.fullmatch(r"\d+\.\d{6} P0 (\d+)", line)[1])  # type: ignore[index]
                     for line in unzipped.splitlines()]
        seqs += [int(line.rsplit(" ", 1)[1]) for line in lines(tmp_path / "app.log")]
        assert seqs == list(range(5000))
        check_complete_and_ordered(read_set(tmp_path), {"P0": 5000})
        assert not list(tmp_path.glob(".*.part"))

    def test_crash_mid_compress_leaves_the_plain_file_for_the_next_sweep(
            self, tmp_path: Path) -> None:
        """A compressor killed mid-way leaves the rotated file whole and no .gz; the next
        sweep compresses it."""
        rotated = tmp_path / "app.log.1"
        data = os.urandom(1 << 20) * 60  # big enough to kill it mid-way
        rotated.write_bytes(data)
        sweep = ("import sys; from aiolog.sinks import _rotation, _lock; "
                 "_rotation.compress_backups(sys.argv[1], r'\\d+', "
                 "_lock.Lockfile(sys.argv[1] + '.lock', timeout=10))")
        proc = subprocess.Popen([sys.executable, "-c", sweep, str(tmp_path / "app.log")])
        while not list(tmp_path.glob(".*.part")):
            assert proc.poll() is None, "compression finished before it could be killed"
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        assert rotated.stat().st_size == len(data)
        assert not list(tmp_path.glob("*.gz"))
        subprocess.run([sys.executable, "-c", sweep, str(tmp_path / "app.log")], check=True,
                       timeout=120)
        assert not rotated.exists()
        assert gzip.decompress((tmp_path / "app.log.1.gz").read_bytes()) == data


class TestRotationInTheLoop:
    async def test_rotation_counts_and_follows_another_process(self, tmp_path: Path) -> None:
        """A rotation by another process is noticed before the next chunk: we reopen the path."""
        path = tmp_path / "app.log"
        [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=10_000)
        logging.getLogger("a").info("before")
        await aiolog.flush()
        os.rename(path, tmp_path / "app.log.1")  # what another process's rotation does
        logging.getLogger("a").info("after")
        await aiolog.flush()
        assert lines(tmp_path / "app.log.1") == ["before"]
        assert lines(path) == ["after"]
        for i in range(3000):
            logging.getLogger("a").info("n %d", i)
        await aiolog.flush()
        assert handler.stats()["rotations"] >= 1
