"""Compression of rotated files, with real processes, flocks and file-size limits (issue 11,
cases 14-17, and the compressed multi-process stress test).

Only ``aiolog``'s public API is used by the worker processes, so these tests also run against an
older aiolog (``PYTHONPATH=<old checkout> pytest --import-mode=append``); tests that need the new
internals import them inside the test.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import run_script
from .logfiles import check_complete_and_ordered, read_set

# One logging process: the public API only, so it runs against any aiolog version.
WORKER = r'''
import asyncio, json, logging, os, sys, time
import aiolog
cfg = json.loads(sys.argv[1])

async def main():
    await aiolog.configure(cfg["path"], format="%(created).6f %(message)s",
                           **cfg.get("options", {}))
    if "go" in cfg:  # a barrier: every worker starts logging at the same moment
        open(cfg["ready"], "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(cfg["go"]):
            assert time.monotonic() < deadline, "no go"
            time.sleep(0.0005)
    log = logging.getLogger("w")
    every = cfg.get("every", 50)
    for i in range(cfg["n"]):
        log.info("%s %d", cfg["tag"], i)
        if (i + 1) % every == 0:
            await aiolog.flush()
            await asyncio.sleep(cfg.get("pause", 0))
    await aiolog.shutdown()

if cfg.get("uvloop"):
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
'''

PLAIN_BACKUP = re.compile(r"app\.log\.\d+$")
BACKUP = re.compile(r"app\.log\.\d+(\.gz)?$")
WAIT = 60.0  # seconds: the bound on every wait, so that a regression fails instead of hanging


def _line(tag: str, seq: int) -> str:
    return f"{time.time():.6f} {tag} {seq}\n"


def _prefill(path: Path, tag: str, n: int) -> None:
    """A log file of ``n`` whole records, as another process would have written them."""
    path.write_text("".join(_line(tag, i) for i in range(n)))


class Workers:
    """Real logging processes, each with its stderr kept for the checks."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "workers"  # outside the log set that read_set() reads
        self.dir.mkdir(exist_ok=True)
        self.script = self.dir / "worker.py"
        self.script.write_text(WORKER)
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, path: Path, tag: str, n: int, **cfg: object) -> subprocess.Popen[bytes]:
        with open(self.dir / f"{tag}.err", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(self.script),
                 json.dumps({"path": str(path), "tag": tag, "n": n, **cfg})],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.procs.append((tag, proc))
        return proc

    def finish(self) -> dict[str, str]:
        """Wait for every worker; each must exit 0. Returns their stderr by tag."""
        errors = {}
        for tag, proc in self.procs:
            try:
                code = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            errors[tag] = (self.dir / f"{tag}.err").read_text()
            assert code == 0, f"{tag} exited {code}:\n{errors[tag]}"
        return errors

    def finish_quietly(self) -> None:
        """Every worker exits 0 and writes nothing to stderr (no error, no report)."""
        for tag, err in self.finish().items():
            assert err == "", f"{tag} wrote to stderr:\n{err}"

    def kill_all(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _flock_waiters(st: os.stat_result, kind: str = "WRITE") -> int:
    """How many exclusive (``WRITE``) or shared (``READ``) flock requests are blocked on this
    file right now, as /proc/locks lists them."""
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
    with open("/proc/locks") as locks:
        return sum(1 for row in locks
                   if "->" in row and " FLOCK " in row and f" {kind} " in row and inode in row)


def _backups(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if BACKUP.fullmatch(p.name))


def _plain_backups(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if PLAIN_BACKUP.fullmatch(p.name))


def _parts(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


class _SharedFlock:
    """A late writer: an O_APPEND descriptor on the log file holding a shared flock, taken
    before it looked at the path, exactly as aiolog's writer holds it around its write()."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        # The look at the path, under the flock: it still names our file, so the write may go.
        assert os.stat(path).st_ino == os.fstat(self.fd).st_ino
        self.stat = os.fstat(self.fd)

    def write_and_release(self, data: str = "") -> None:
        if data:
            assert os.write(self.fd, data.encode()) == len(data.encode())  # one write, whole
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def compressor_waits(self) -> bool:
        return _flock_waiters(self.stat) > 0

    def unlinked(self) -> bool:
        """The file has no name any more: compressed and removed."""
        return os.fstat(self.fd).st_nlink == 0


class TestLateChunk:
    def test_a_late_chunk_in_a_just_rotated_file_ends_up_in_its_gz(self, tmp_path: Path) -> None:
        """Case 17: a chunk another process writes into the file after it was rotated (having
        looked at the path under its shared flock before) is in that file's .gz, not lost."""
        path = tmp_path / "app.log"
        _prefill(path, "P1", 100)  # larger than max_bytes: the worker's first chunk rotates it
        late = _SharedFlock(path)
        workers = Workers(tmp_path)
        try:
            workers.start(path, "P0", 20, options={"max_bytes": 1000, "compress": True})
            # The worker rotates our file to app.log.1 and its compressor starts on it. Either it
            # waits for our flock, or (without the flock rule) it compresses and removes the file.
            _wait_for(lambda: late.compressor_waits() or late.unlinked(),
                      "the compressor to start on the rotated file")
            late.write_and_release("".join(_line("P1", i) for i in range(100, 150)))
            workers.finish_quietly()
        finally:
            late.close()
            workers.kill_all()
        assert _backups(tmp_path) == ["app.log.1.gz"]
        late_lines = gzip.decompress((tmp_path / "app.log.1.gz").read_bytes()).decode()
        assert late_lines.splitlines()[-1].endswith(" P1 149")
        check_complete_and_ordered(read_set(tmp_path), {"P0": 20, "P1": 150})
        assert _parts(tmp_path) == []


    def test_a_writer_waits_while_a_compressor_holds_its_file(self, tmp_path: Path) -> None:
        """Case 17, the writer's half of the rule: while a compressor holds the file exclusively
        (it is reading it for the last time), a writer's chunk does not land in it; it does
        once the compressor lets go."""
        path = tmp_path / "app.log"
        path.touch()
        compressor = os.open(path, os.O_RDONLY)
        fcntl.flock(compressor, fcntl.LOCK_EX)
        st = os.fstat(compressor)
        workers = Workers(tmp_path)
        try:
            proc = workers.start(path, "P0", 10)
            _wait_for(lambda: _flock_waiters(st, "READ") > 0 or proc.poll() is not None,
                      "the writer to wait for the flock, or to end")
            assert _flock_waiters(st, "READ") == 1  # the writer waits for us ...
            assert path.stat().st_size == 0  # ... before its write, not after
            fcntl.flock(compressor, fcntl.LOCK_UN)
            workers.finish_quietly()
        finally:
            os.close(compressor)
            workers.kill_all()
        check_complete_and_ordered(read_set(tmp_path), {"P0": 10})


    def test_a_writer_does_not_wait_for_a_compression_in_progress(self, tmp_path: Path) -> None:
        """A writer whose descriptor is still on a just-rotated file is not held up while
        another process gzips that file: it finds the path moved and writes into the new file
        (the compressor waits only for writes already under way)."""
        from aiolog.sinks import _lock, _rotation

        path = tmp_path / "app.log"
        _prefill(path, "P9", 100)
        workers = Workers(tmp_path)
        go, ready = workers.dir / "go", workers.dir / "P0.ready"
        writer = workers.start(path, "P0", 50, every=10, go=str(go), ready=str(ready))
        rotation = _lock.Lockfile(f"{path}.lock", timeout=60)
        compressor = None
        try:
            _wait_for(ready.exists, "the writer to open the file")
            # Rotate as a rotator does, and keep the rotation lock: the compressor, done reading,
            # waits for it to name its .gz, which keeps the compression in progress.
            assert rotation.acquire()
            _rotation.rotate_by_size(str(path), 0)
            rotated = tmp_path / "app.log.1"
            st = rotated.stat()
            compressor = subprocess.Popen(
                [sys.executable, "-c", "import sys; from aiolog.sinks import _rotation, _lock; "
                 "_rotation.compress_backups(sys.argv[1], r'\\d+', "
                 "_lock.Lockfile(sys.argv[1] + '.lock', timeout=60))", str(path)],
                stderr=subprocess.PIPE, cwd=tmp_path.parent)
            _wait_for(lambda: list(tmp_path.glob(".app.log.1.*.part"))
                      or compressor.poll() is not None, "the compressor to start")
            go.touch()
            _wait_for(lambda: writer.poll() is not None or _flock_waiters(st, "READ") > 0,
                      "the writer to end, or to wait for the compressor")
            assert _flock_waiters(st, "READ") == 0 and writer.poll() == 0
            assert compressor.poll() is None  # still compressing: it waits for the lock
        finally:
            rotation.release()
            if compressor is not None:
                _, err = compressor.communicate(timeout=WAIT)
                assert compressor.returncode == 0 and err == b"", err.decode()
            workers.finish_quietly()
        assert _backups(tmp_path) == ["app.log.1.gz"]
        check_complete_and_ordered(read_set(tmp_path), {"P9": 100, "P0": 50})


    def test_a_file_still_at_the_path_is_not_compressed(self, tmp_path: Path) -> None:
        """A rotation half done (the file linked to app.log.1, app.log not yet unlinked) is left
        alone by a compressor: a writer may still append to it through the path, and once the
        rotation is done the next sweep gzips it with those lines."""
        from aiolog.sinks import _lock

        path = tmp_path / "app.log"
        _prefill(path, "P9", 100)
        sweep = [sys.executable, "-c", "import sys; from aiolog.sinks import _rotation, _lock; "
                 "_rotation.compress_backups(sys.argv[1], r'\\d+', "
                 "_lock.Lockfile(sys.argv[1] + '.lock', timeout=60))", str(path)]
        rotation = _lock.Lockfile(f"{path}.lock", timeout=60)
        assert rotation.acquire()
        compressor = None
        try:
            os.link(path, tmp_path / "app.log.1")  # the first half of a rotation
            compressor = subprocess.Popen(sweep, stderr=subprocess.PIPE, cwd=tmp_path.parent)
            _wait_for(lambda: compressor.poll() is not None or bool(_parts(tmp_path)),
                      "the compressor to end, or to start compressing")
            assert _parts(tmp_path) == []  # it did not start on the file
            _, err = compressor.communicate(timeout=WAIT)
            assert compressor.returncode == 0 and err == b"", err.decode()
            assert _backups(tmp_path) == ["app.log.1"]
            writer = _SharedFlock(path)  # a writer that still finds its file at the path
            writer.write_and_release("".join(_line("P9", i) for i in range(100, 150)))
            os.unlink(path)  # the second half
        finally:
            rotation.release()
            if compressor is not None and compressor.poll() is None:
                compressor.kill()
                compressor.wait()
        subprocess.run(sweep, check=True, timeout=WAIT, cwd=tmp_path.parent)
        assert _backups(tmp_path) == ["app.log.1.gz"]
        check_complete_and_ordered(read_set(tmp_path), {"P9": 150})


class TestNoPlainBackupLeft:
    @pytest.mark.parametrize("processes", [1, 4])
    def test_rotations_while_the_compressor_waits_are_all_compressed(
            self, tmp_path: Path, processes: int) -> None:
        """Case 15: many rotations happen while the compressors are held up on the first rotated
        file (a late writer's flock); after shutdown every backup is .gz, every record once."""
        path = tmp_path / "app.log"
        _prefill(path, "P9", 100)
        late = _SharedFlock(path)
        workers = Workers(tmp_path)
        tags = [f"P{p}" for p in range(processes)]
        try:
            procs = [workers.start(path, tag, 600, every=10,
                                   options={"max_bytes": 1000, "compress": True})
                     for tag in tags]
            # Rotations pile up plain backups behind the held compressors (or, without the
            # flock rule, the processes run to their end).
            _wait_for(lambda: len(_plain_backups(tmp_path)) >= 4
                      or all(proc.poll() is not None for proc in procs), "several rotations")
            late.write_and_release()
            workers.finish_quietly()
        finally:
            late.close()
            workers.kill_all()
        backups = _backups(tmp_path)
        assert len(backups) >= 5, backups
        assert _plain_backups(tmp_path) == []
        check_complete_and_ordered(read_set(tmp_path), {"P9": 100} | {tag: 600 for tag in tags})
        assert _parts(tmp_path) == []

    def test_one_process_rotating_after_every_few_records(self, tmp_path: Path) -> None:
        """Case 15: one process rotating every few records, faster than a compressor per
        rotation keeps up, leaves no plain backup; every record is there once."""
        workers = Workers(tmp_path)
        try:
            workers.start(tmp_path / "app.log", "P0", 1500, every=2,
                          options={"max_bytes": 300, "compress": True})
            workers.finish_quietly()
        finally:
            workers.kill_all()
        assert len(_backups(tmp_path)) > 50
        assert _plain_backups(tmp_path) == []
        check_complete_and_ordered(read_set(tmp_path), {"P0": 1500})
        assert _parts(tmp_path) == []


    def test_time_rotation_by_two_processes_leaves_no_plain_backup(self, tmp_path: Path) -> None:
        """Case 15 with when="S": two processes rotating every second leave only .gz backups,
        named as TimedRotatingFileHandler names them, with every record once."""
        workers = Workers(tmp_path)
        tags = ["P0", "P1"]
        try:
            for tag in tags:
                workers.start(tmp_path / "app.log", tag, 300, every=10, pause=0.08,
                              options={"when": "S", "compress": True})
            workers.finish_quietly()
        finally:
            workers.kill_all()
        files = read_set(tmp_path)
        assert len(files) >= 3, [f.name for f in files]
        for f in files[:-1]:
            assert re.fullmatch(r"app\.log\.\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(\.\d+)?\.gz",
                                f.name), f.name
        check_complete_and_ordered(files, {tag: 300 for tag in tags})
        assert _parts(tmp_path) == []


    def test_rotations_during_the_exit_drain_are_compressed_too(self, tmp_path: Path) -> None:
        """A program that ends without shutdown() (run_until_complete, as servers do) still
        has its queued records written at exit, and the backups rotated then are gzipped."""
        proc = run_script(tmp_path, """
            import asyncio, logging
            import aiolog
            async def main():
                await aiolog.configure("app.log", format="%(created).6f %(message)s",
                                       max_bytes=2000, compress=True)
                for i in range(3000):
                    logging.getLogger("a").info("P0 %d", i)
            asyncio.new_event_loop().run_until_complete(main())
        """)
        assert proc.stderr == ""
        files = read_set(tmp_path)
        assert len(files) > 20
        assert _plain_backups(tmp_path) == []
        check_complete_and_ordered(files, {"P0": 3000})
        assert _parts(tmp_path) == []


class TestCompressorsNeverClash:
    def test_two_processes_compressing_one_file_make_one_gz(self, tmp_path: Path) -> None:
        """Case 16: two processes sweeping the same plain backup at once: one compresses it,
        the other skips it; one .gz with the exact bytes, no error, no .part left."""
        rotated = tmp_path / "app.log.1"
        _prefill(rotated, "P1", 3000)
        data = rotated.read_bytes()
        holder = _SharedFlock(rotated)  # both compressors queue behind it, then go one by one
        holder_dir = tmp_path.parent  # cwd: import the aiolog installed (or on PYTHONPATH)
        sweep = ("import sys; from aiolog.sinks import _rotation, _lock; "
                 "_rotation.compress_backups(sys.argv[1], r'\\d+', "
                 "_lock.Lockfile(sys.argv[1] + '.lock', timeout=10))")
        procs = [subprocess.Popen([sys.executable, "-c", sweep, str(tmp_path / "app.log")],
                                  stderr=subprocess.PIPE, cwd=holder_dir) for _ in range(2)]
        try:
            _wait_for(lambda: _flock_waiters(holder.stat) == 2
                      or any(p.poll() is not None for p in procs), "both compressors to wait")
            assert _flock_waiters(holder.stat) == 2
            holder.write_and_release()
            for proc in procs:
                _, err = proc.communicate(timeout=WAIT)
                assert proc.returncode == 0 and err == b"", err.decode()
        finally:
            holder.close()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.1.gz"]
        assert gzip.decompress((tmp_path / "app.log.1.gz").read_bytes()) == data

    def test_a_failing_compression_is_reported_and_the_rest_still_closes(
            self, tmp_path: Path) -> None:
        """Case 16: a backup that cannot be compressed (its .gz would pass RLIMIT_FSIZE) is kept
        plain and reported on stderr; shutdown() returns, the other backups are still gzipped,
        and the other file's writer is closed with all its records."""
        big = os.urandom(600_000).hex()  # 1.2 MB of hex: its gzip is well over the limit
        for n in (5, 6, 7):
            (tmp_path / f"app.log.{n}").write_text(
                "".join(f"{big[i:i + 100]}\n" for i in range(0, len(big), 100)))
        leftovers = {n: (tmp_path / f"app.log.{n}").read_bytes() for n in (5, 6, 7)}
        _prefill(tmp_path / "app.log", "P1", 100)  # rotated by the first chunk
        proc = run_script(tmp_path, """
            import asyncio, logging, resource
            import aiolog
            resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, resource.RLIM_INFINITY))
            async def main():
                fmt = "%(created).6f %(message)s"
                await aiolog.configure(handlers=[
                    aiolog.AsyncFileHandler("app.log", max_bytes=1000, compress=True),
                    aiolog.AsyncFileHandler("other.log")], format=fmt)
                for i in range(200):
                    logging.getLogger("a").info("P0 %d", i)
                    if i % 10 == 9:
                        await aiolog.flush()
                await aiolog.shutdown()
                with open("other.log") as other:  # written and closed before shutdown() returned
                    assert len(other.read().splitlines()) == 200
                print("shutdown returned")
            asyncio.run(main())
        """)
        assert "shutdown returned" in proc.stdout
        assert "aiolog: compressing a rotated file of" in proc.stderr
        assert "File too large" in proc.stderr
        assert "Traceback" not in proc.stderr
        # The three leftovers were shifted up by the rotations, kept plain and whole.
        plain = _plain_backups(tmp_path)
        assert sorted(len((tmp_path / name).read_bytes()) for name in plain) == sorted(
            len(b) for b in leftovers.values())
        assert {(tmp_path / name).read_bytes() for name in plain} == set(leftovers.values())
        gzipped = [name for name in _backups(tmp_path) if name.endswith(".gz")]
        assert len(gzipped) >= 3  # every backup of this run's records
        records = [line for name in sorted(gzipped, key=lambda n: -int(n.split(".")[2]))
                   for line in gzip.decompress((tmp_path / name).read_bytes()).decode()
                   .splitlines()]
        records += (tmp_path / "app.log").read_text().splitlines()
        seqs: dict[str, list[int]] = defaultdict(list)
        for line in records:
            _, tag, seq = line.split()
            seqs[tag].append(int(seq))
        assert seqs == {"P1": list(range(100)), "P0": list(range(200))}
        assert _parts(tmp_path) == []


PLANTER = r"""
import os, sys, time
from aiolog.sinks._lock import Lockfile
path, stop = sys.argv[1], sys.argv[2]
planted, deadline = 0, time.monotonic() + 120
while not os.path.exists(stop) and time.monotonic() < deadline:
    pid = os.fork()
    if pid == 0:  # takes the lock when it is free, and dies holding it
        os._exit(0 if Lockfile(path, timeout=60).acquire() else 3)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        planted += 1
    else:
        time.sleep(0.001)
print(planted)
"""


class TestBrokenLock:
    def test_every_rotation_breaks_a_dead_holders_lock(self, tmp_path: Path) -> None:
        """Case 14: whenever the lock is free a process takes it and dies, so 4 processes
        rotating a small file (300 backups to shift each time) break a dead holder's lock for
        each rotation, often at once; no file under two names (no record twice), no error."""
        path = tmp_path / "app.log"
        for n in range(1, 301):  # every rotation shifts them all: it takes a while, as it may
            (tmp_path / f"app.log.{n}.gz").write_bytes(gzip.compress(b""))
        workers = Workers(tmp_path)
        stop = workers.dir / "stop"
        planter = subprocess.Popen([sys.executable, "-c", PLANTER, f"{path}.lock", str(stop)],
                                   stdout=subprocess.PIPE, cwd=workers.dir)
        tags = [f"P{p}" for p in range(4)]
        try:
            for tag in tags:
                workers.start(path, tag, 400, every=1,
                              options={"max_bytes": 1000, "compress": True, "lock_timeout": 60})
            workers.finish_quietly()
        finally:
            stop.touch()
            out, _ = planter.communicate(timeout=WAIT)
            workers.kill_all()
        assert planter.returncode == 0 and int(out) > 10  # many dead holders' locks were broken
        files = read_set(tmp_path)
        assert len(files) > 320
        check_complete_and_ordered(files, {tag: 400 for tag in tags})
        assert _plain_backups(tmp_path) == []


class TestCompressedStress:
    PROCESSES = 4
    RECORDS = 20_000

    def _run(self, tmp_path: Path, **options: object) -> None:
        workers = Workers(tmp_path)
        try:
            for p in range(self.PROCESSES):  # half of them on uvloop
                workers.start(tmp_path / "app.log", f"P{p}", self.RECORDS, every=50,
                              uvloop=p % 2 == 1,
                              options={"max_bytes": 20_000, "compress": True, **options})
            workers.finish_quietly()
        finally:
            workers.kill_all()

    def test_four_processes_compressing_lose_and_repeat_nothing(self, tmp_path: Path) -> None:
        """Cases 15-17 under load: 4 processes (2 on uvloop) rotating and compressing one file,
        backup_count=0 so nothing is deleted: every record once, whole, in order across the .gz files; no plain backup, no .part."""
        self._run(tmp_path, backup_count=0)
        files = read_set(tmp_path)
        assert len(files) > 20  # it really rotated, many times
        check_complete_and_ordered(files, {f"P{p}": self.RECORDS for p in range(self.PROCESSES)})
        assert all(f.name.endswith(".gz") for f in files[:-1]), [f.name for f in files]
        assert _parts(tmp_path) == []
        assert not (tmp_path / "app.log.lock").exists()

    def test_retention_counts_gz_backups(self, tmp_path: Path) -> None:
        """With backup_count=3, 4 processes compressing keep at most 3 backups (.gz counted), no
        .part; what is kept is, per process, its newest records once each and in order."""
        self._run(tmp_path, backup_count=3)
        files = read_set(tmp_path)
        # Every file of the set but the current one is a backup, whatever its name.
        backups = [f.name for f in files if f.name != "app.log"]
        assert len(backups) == 3 and all(name.endswith(".gz") for name in backups), backups
        assert _parts(tmp_path) == []
        seen: dict[str, list[int]] = defaultdict(list)
        for f in files:
            for r in f.records:
                seen[r.source].append(r.seq)
        for source, seqs in seen.items():
            # Retention deletes whole oldest files: each process keeps a tail of its records.
            assert seqs == list(range(self.RECORDS - len(seqs), self.RECORDS)), source
        assert sum(map(len, seen.values())) < self.PROCESSES * self.RECORDS  # it did delete
