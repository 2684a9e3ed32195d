"""Issue 16: a kill, a freeze or a failure at a step of a rotation loses and duplicates nothing.

Real processes, real signals: ``strace --inject`` kills or freezes a rotating process at the
exact syscall of the report, while another process keeps logging and rotating. Only the public
API is used, so each test also runs against the old code (``PYTHONPATH=/work/old``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import aiolog

from .logfiles import check_set, record_counts as _records

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get "
                                  "install strace; .ci/run does); it injects the kill or freeze")

# A worker: log ``n`` records "<tag> <i>" into ``path`` with ``options``, then shut down.
WORKER = """
import asyncio, json, logging, os, sys, time
import aiolog

cfg = json.loads(sys.argv[1])

async def main():
    await aiolog.configure(cfg["path"], format="%(message)s", **cfg["options"])
    log = logging.getLogger("w")
    pad = "x" * cfg.get("pad", 0)
    for i in range(cfg["n"]):
        log.info("%s %d %s", cfg["tag"], i, pad)
        if cfg.get("pause") and i % 20 == 0:
            await asyncio.sleep(cfg["pause"])
    if cfg.get("shutdown", True):
        await aiolog.shutdown()

if cfg.get("shutdown", True):
    asyncio.run(main())
else:
    asyncio.new_event_loop().run_until_complete(main())
"""


def _worker(tmp_path: Path, tag: str, n: int, *, strace: list[str] | None = None,
            pause: float = 0.0, pad: int = 0, **options: object) -> subprocess.Popen[bytes]:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER)
    cfg = {"path": str(tmp_path / "logs" / "app.log"), "tag": tag, "n": n, "pause": pause,
           "pad": pad, "options": options}
    cmd = [sys.executable, str(script), json.dumps(cfg)]
    if strace is not None:
        assert STRACE is not None
        cmd = [STRACE, "-qq", "-f", "-o", os.devnull, *strace, *cmd]
    return subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, err.decode()


def _prefill(path: Path, tag: str, n: int, pad: int = 0) -> None:
    """Append records "<tag> <i>", each followed by ``pad`` random hex digits (slow to gzip)."""
    path.parent.mkdir(exist_ok=True)
    with open(path, "a") as f:
        for i in range(n):
            f.write(f"{tag} {i} {os.urandom(pad // 2).hex()}\n" if pad else f"{tag} {i}\n")


@needs_strace
class TestKilledBetweenSteps:
    """Case 1: a rotator SIGKILLed at the step where link() + unlink() left two names."""

    def test_a_size_rotation_killed_mid_move_duplicates_nothing(self, tmp_path: Path) -> None:
        """A size rotation killed at its first unlink (old: between link and unlink of a shift)
        leaves nothing that a later rotation would duplicate."""
        logs = tmp_path / "logs"
        _prefill(logs / "app.log.1", "P8", 100)
        _prefill(logs / "app.log", "P9", 200)  # full: the first write rotates
        opts: dict[str, object] = {"max_bytes": 1000, "backup_count": 0}
        victim = _worker(tmp_path, "P0", 200, strace=[
            "-e", "inject=unlink,unlinkat:signal=KILL:when=1"], **opts)
        assert _finish(victim)[0] == -9  # killed, at that syscall
        survivor = _worker(tmp_path, "P1", 1000, **opts)
        assert _finish(survivor) == (0, "")
        check_set(logs, {"P8": 100, "P9": 200, "P1": 1000}, {"P0": 200})

    def test_a_time_rotation_killed_mid_move_duplicates_nothing(self, tmp_path: Path) -> None:
        """A time rotation killed at its first unlink (old: between link of app.log to its
        dated name and the unlink of app.log) leaves the live file under one name only."""
        logs = tmp_path / "logs"
        _prefill(logs / "app.log", "P9", 200)
        past = time.time() - 10
        os.utime(logs / "app.log", (past, past))  # from an earlier second: due at once
        opts: dict[str, object] = {"when": "S", "backup_count": 0}
        victim = _worker(tmp_path, "P0", 200, strace=[
            "-e", "inject=unlink,unlinkat:signal=KILL:when=1"], **opts)
        assert _finish(victim)[0] == -9
        survivor = _worker(tmp_path, "P1", 1500, pause=0.02, **opts)  # ~1.5 s: it rotates
        assert _finish(survivor) == (0, "")
        check_set(logs, {"P9": 200, "P1": 1500}, {"P0": 200})

    def test_a_compression_killed_before_the_plain_unlink_leaves_no_plain_beside_gz(
            self, tmp_path: Path) -> None:
        """A compressor killed after its .gz got its name and before the plain backup's unlink:
        the next rotator drops the plain file (its .gz is whole), nothing is duplicated."""
        logs = tmp_path / "logs"
        _prefill(logs / "app.log", "P9", 200)
        opts: dict[str, object] = {"max_bytes": 1000, "backup_count": 0, "compress": True}
        # Only syscalls on app.log.1 count: the compressor's first step to remove the plain
        # backup (old: its unlink; now: the rename to a hidden name that precedes the unlink;
        # the rotation itself moves files with link or renameat2, not counted here).
        victim = _worker(tmp_path, "P0", 20, strace=[
            "-P", str(logs / "app.log.1"),
            "-e", "inject=unlink,unlinkat,rename,renameat:signal=KILL:when=1"], **opts)
        assert _finish(victim)[0] == -9
        assert (logs / "app.log.1").exists() and (logs / "app.log.1.gz").exists()
        survivor = _worker(tmp_path, "P1", 1000, **opts)
        assert _finish(survivor) == (0, "")
        check_set(logs, {"P9": 200, "P1": 1000}, {"P0": 20})


@needs_strace
def test_a_frozen_holder_never_deletes_the_live_file(tmp_path: Path) -> None:
    """Case 2: a holder frozen for 3 s at the step that moves app.log away (old: the unlink
    after the link), with lock_timeout=1: the other process breaks the lock and rotates, and
    the holder, when it wakes, destroys nothing; every record is there exactly once."""
    logs = tmp_path / "logs"
    _prefill(logs / "app.log", "P9", 200)
    opts: dict[str, object] = {"max_bytes": 1000, "backup_count": 0, "lock_timeout": 1}
    victim = _worker(tmp_path, "P0", 300, strace=[
        "-P", str(logs / "app.log"),
        "-e", "inject=unlink,unlinkat,rename,renameat,renameat2:delay_enter=3000000:when=1"],
        **opts)
    survivor = _worker(tmp_path, "P1", 3000, pause=0.02, **opts)  # logs through the freeze
    assert _finish(victim)[0] == 0
    assert _finish(survivor)[0] == 0
    check_set(logs, {"P9": 200, "P0": 300, "P1": 3000}, {})


class TestRetentionFailure:
    """Case 3: a backup that retention cannot delete (a directory in its place)."""

    def test_size_rotation_goes_on_and_reports_once(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Every record is written although app.log.5 cannot be deleted; one report."""
        (tmp_path / "app.log.5").mkdir()
        handler = aiolog.AsyncFileHandler(tmp_path / "app.log", max_bytes=30, backup_count=2)
        handler.setFormatter(logging.Formatter("%(message)s"))
        try:
            for i in range(6):  # 26 bytes each: every record after the first rotates
                handler.handle(_record(f"R {i} {'x' * 20}"))
                handler.flush()
            stats = handler.stats()
        finally:
            handler.close()
        assert (stats["written"], stats["errors"], stats["rotations"]) == (6, 0, 5)
        assert _records(tmp_path) == {f"R {i}": 1 for i in (3, 4, 5)}
        err = capsys.readouterr().err
        assert err.count("app.log.5") == 1, err

    def test_time_rotation_goes_on_and_reports_once(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A time rotation whose retention cannot delete the oldest backup still rotates
        (rotations counted) and deletes what it can; one report."""
        (tmp_path / "app.log.2000-01-01_00-00-00").mkdir()  # the oldest: retention's first
        for stamp in ("2000-01-01_00-00-01", "2000-01-01_00-00-02"):
            (tmp_path / f"app.log.{stamp}").write_text("old\n")
        handler = aiolog.AsyncFileHandler(tmp_path / "app.log", when="S", backup_count=2)
        try:
            deadline = time.monotonic() + 30
            while handler.stats()["rotations"] < 2 and time.monotonic() < deadline:
                handler.handle(_record("tick"))
                handler.flush()
                time.sleep(0.05)
            stats = handler.stats()
        finally:
            handler.close()
        assert stats["rotations"] >= 2 and stats["errors"] == 0
        assert not (tmp_path / "app.log.2000-01-01_00-00-01").exists()
        err = capsys.readouterr().err
        assert err.count("app.log.2000-01-01_00-00-00") == 1, err


def _record(message: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "levelno": logging.INFO,
                                  "levelname": "INFO", "name": "t"})


def test_max_bytes_holds_when_processes_shut_down(tmp_path: Path) -> None:
    """Case 4: several processes logging into one file and then calling shutdown() keep every
    file within max_bytes plus one 64 KiB chunk per other writer (the README's bound)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    writers, n, max_bytes = 8, 10_000, 20_000
    # ~60-byte lines, as with a timestamp and a logger name: 600 KB per process.
    procs = [_worker(tmp_path, f"P{k}", n, pad=50, max_bytes=max_bytes) for k in range(writers)]
    for proc in procs:
        assert _finish(proc, timeout=300)[0] == 0
    check_set(logs, {f"P{k}": n for k in range(writers)}, {})
    bound = max_bytes + (writers - 1) * 65536
    sizes = {p.name: p.stat().st_size for p in logs.iterdir() if not p.name.endswith(".lock")}
    assert max(sizes.values()) <= bound, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


FORK_DURING_COMPRESSION = """
import asyncio, logging, os, sys, time
import aiolog

path = sys.argv[1]

async def log(tag, n):
    await aiolog.configure(path, format="%(message)s", max_bytes=2000, compress=True)
    for i in range(n):
        logging.getLogger("w").info("%s %d", tag, i)
    await aiolog.flush()

async def main():
    await log("P0", 300)  # rotates: the big backup is shifted and compressed, slowly
    directory = os.path.dirname(path)
    deadline = time.monotonic() + 60
    big = f".{sys.argv[2]}."  # a .part of the big backup names its inode
    while not any(n.endswith(".part") and big in n for n in os.listdir(directory)):
        assert time.monotonic() < deadline, "the compressor never started"
        time.sleep(0.001)
    pid = os.fork()
    if pid == 0:  # the child: rotate (its sweep reaches the same backup), then shut down
        try:
            for i in range(400):
                logging.getLogger("w").info("C %d", i)
            asyncio.run(aiolog.shutdown())
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("CHILD HUNG", flush=True)
    await aiolog.shutdown()

asyncio.run(main())
"""


def test_a_child_forked_during_compression_exits(tmp_path: Path) -> None:
    """Case 5: a child forked while the parent gzips a backup does not inherit a flock it can
    wait on: its own sweep and its shutdown return, and every record is there once."""
    logs = tmp_path / "logs"
    _prefill(logs / "app.log.1", "P8", 100_000, pad=200)  # 20 MB of hex: gzip takes a while
    _prefill(logs / "app.log", "P9", 200)  # full: the first write rotates
    script = tmp_path / "fork.py"
    script.write_text(textwrap.dedent(FORK_DURING_COMPRESSION))
    big = str((logs / "app.log.1").stat().st_ino)
    proc = subprocess.run([sys.executable, str(script), str(logs / "app.log"), big],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert "CHILD HUNG" not in proc.stdout
    assert proc.returncode == 0, proc.stderr
    check_set(logs, {"P8": 100_000, "P9": 200, "P0": 300, "C": 400}, {})
