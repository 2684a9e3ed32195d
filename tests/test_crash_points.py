"""Issue 16: kill or freeze a rotating process at each step of a rotation, as SQLite's crash
tests and the ALICE study kill a storage engine at each step, then check what is left.

For each of the three rotation paths (size, time, compression) the test first traces one run of
``tests/scripts/crash_victim.py`` with strace and lists the syscalls of the step, numbered per
syscall name as ``strace --inject=NAME:...:when=N`` counts them (per syscall, per thread). Then,
for each syscall that changes the file system (a create, write, rename, link, unlink, sync),
it runs the victim again and:

- **kill**: SIGKILLs it at that syscall (``signal=KILL``: the call never runs), then lets
  another process (this one, with the public handler) log and rotate through the aftermath;
- **freeze**: delays that syscall longer than ``lock_timeout`` (``delay_enter``), while this
  process logs and rotates beside it (it breaks the victim's lock), and lets the victim go on.

Each time: every record once (the victim's own unwritten ones may be missing after a kill, never
doubled), no two names for one inode, no plain backup beside its ``.gz``, no ``.part`` left.

A kill at a syscall that changes nothing (a stat, a read, a directory listing) leaves the disk as
a kill at the next one that does, so the listed steps cover every state a kill can leave. Set
``AIOLOG_CRASH_EVERY_SYSCALL=1`` to kill at every syscall of the step all the same (~5 times
longer). The syscalls of each step are printed (``-s``) for the record.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aiolog

from .logfiles import check_set

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(
    STRACE is None or not sys.platform.startswith("linux"),
    reason="needs strace on Linux to kill or freeze a process at a chosen syscall "
           "(apt-get install strace; .ci/run installs it)")

VICTIM = Path(__file__).parent / "scripts" / "crash_victim.py"
ROOT = Path(__file__).resolve().parent.parent
LOCK_TIMEOUT = 0.3
FREEZE = 1.0  # seconds: longer than LOCK_TIMEOUT, so the other process breaks the lock
RECORDS = 50  # the victim's own records, "V <i>", written across its rotation
# Syscalls that change the file system: every state a kill can leave is one of these not run.
CHANGING = re.compile(r"^(openat\(.*O_(?:CREAT|WRONLY|RDWR)|write\(|pwrite64\(|rename\w*\(|link\w*\("
                      r"|unlink\w*\(|fsync\(|fdatasync\(|ftruncate\(|mkdir\w*\()")
CALL = re.compile(r"^(\w+)\(")
MODES = {"size": {"max_bytes": 1000}, "time": {"when": "S", "max_bytes": 1000},
         "compress": {"max_bytes": 1000, "compress": True}}


def _env() -> dict[str, str]:
    # The same syscalls every run: no bytecode written, one hash seed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0"}


def _prepare(directory: Path, mode: str) -> dict[str, int]:
    """The files the victim finds; returns the records in them: tag -> count."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir()

    def fill(name: str, tag: str, n: int) -> None:
        (directory / name).write_text("".join(f"{tag} {i}\n" for i in range(n)))

    if mode == "time":
        fill("app.log", "P9", 40)
        past = time.time() - 10  # written in an earlier second: rotated at the first write
        os.utime(directory / "app.log", (past, past))
        return {"P9": 40}
    if mode == "size":
        fill("app.log", "P9", 150)  # 940 bytes: the victim's records pass max_bytes
        fill("app.log.1", "B1", 10)
        fill("app.log.2", "B2", 10)
        return {"P9": 150, "B1": 10, "B2": 10}
    fill("app.log", "P9", 10)
    fill("app.log.1", "B1", 2000)  # plain: the victim's sweep compresses it
    return {"P9": 10, "B1": 2000}


def _victim(directory: Path, mode: str, rename: str, strace: list[str],
            **more: object) -> subprocess.Popen[bytes]:
    assert STRACE is not None
    cfg = {"path": str(directory / "app.log"), "mode": mode, "lock_timeout": LOCK_TIMEOUT,
           "records": RECORDS, "rename": rename, **more}
    return subprocess.Popen([STRACE, "-qq", *strace, sys.executable, str(VICTIM),
                             json.dumps(cfg)], env=_env(), stderr=subprocess.PIPE)


def _steps(directory: Path, mode: str, rename: str) -> list[tuple[str, int, str]]:
    """The syscalls between the victim's two markers: (name, number as --inject counts it,
    the traced line)."""
    _prepare(directory, mode)
    trace = directory.parent / f"{mode}.trace"
    proc = _victim(directory, mode, rename, ["-o", str(trace)])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    counts: collections.Counter[str] = collections.Counter()
    steps, inside = [], False
    for line in trace.read_text().splitlines():
        match = CALL.match(line)
        if match is None:
            continue
        name = match[1]
        counts[name] += 1
        if "/aiolog-crash-begin" in line:
            inside = True
        elif "/aiolog-crash-end" in line:
            steps.append((name, counts[name], line))  # killed here: the step is all done
            break
        elif inside:
            steps.append((name, counts[name], line))
    assert steps and steps[-1][2].find("/aiolog-crash-end") > 0, "no markers in the trace"
    return steps


def _points(steps: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    if os.environ.get("AIOLOG_CRASH_EVERY_SYSCALL"):
        return steps
    return [s for s in steps if CHANGING.match(s[2]) or "/aiolog-crash-end" in s[2]]


def _aftermath(directory: Path, mode: str, until: subprocess.Popen[bytes] | None) -> int:
    """Log and rotate with the public handler, as another process; until ``until`` ends (and
    a little beyond), or 300 records. Returns how many records "A <i>" it logged."""
    handler = aiolog.AsyncFileHandler(directory / "app.log", lock_timeout=LOCK_TIMEOUT,
                                      **MODES[mode])  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    n = 0
    try:
        rounds_after = 10
        while rounds_after > 0:
            for _ in range(10):
                handler.handle(logging.makeLogRecord(
                    {"msg": f"A {n} {'x' * 30}", "levelno": logging.INFO}))
                n += 1
            handler.flush()
            if until is None:
                rounds_after -= 1  # 100 records x 36 bytes: three rotations
            else:
                time.sleep(0.03)
                if until.poll() is not None:
                    rounds_after -= 1
    finally:
        handler.close()
    return n


def _run(tmp_path: Path, mode: str, rename: str, action: str) -> None:
    directory = tmp_path / "logs"
    steps = _steps(directory, mode, rename)
    print(f"\n{mode} rotation ({rename}), {len(steps)} syscalls:\n" + "\n".join(
        f"  {'*' if s in _points(steps) else ' '} {name} #{n}: {line[:110]}"
        for s in steps for name, n, line in [s]))
    for name, n, line in _points(steps):
        where = f"{action} at {name} #{n} ({line[:100]})"
        before = _prepare(directory, mode)
        if action == "kill":
            trace = tmp_path / "kill.trace"
            victim = _victim(directory, mode, rename, ["-o", str(trace), "-e", f"trace={name}",
                                               "-e", f"inject={name}:signal=KILL:when={n}"])
            _, err = victim.communicate(timeout=120)
            assert victim.returncode == -9, f"{where}: not killed there\n{err.decode()}"
            calls = [t for t in trace.read_text().splitlines() if t.startswith(name + "(")]
            assert len(calls) == n, f"{where}: killed at call {len(calls)}, not {n}"
            logged = _aftermath(directory, mode, None)
            partial = {"V": RECORDS}
        else:
            victim = _victim(directory, mode, rename, [
                "-o", os.devnull, "-e", f"inject={name}:delay_enter={int(FREEZE * 1e6)}:when={n}"])
            try:
                logged = _aftermath(directory, mode, victim)
                _, err = victim.communicate(timeout=120)
            finally:
                if victim.poll() is None:
                    victim.kill()
                    victim.wait()
            assert victim.returncode == 0, f"{where}: the victim failed\n{err.decode()}"
            partial = {}
            if mode != "compress":
                before["V"] = RECORDS  # it went on after the freeze: all written, once
        try:
            check_set(directory, {**before, "A": logged}, partial)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        assert not (directory / "app.log.lock").exists(), f"{where}: a lock left behind"


# renameat2: RENAME_NOREPLACE, as on ext4, xfs, btrfs, tmpfs. link: link() + unlink(), the
# fallback where a file system refuses it (EINVAL), whose half-done moves repair() undoes.
RENAMES = ["renameat2", "link"]


@pytest.mark.parametrize("rename", RENAMES)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_kill_at_any_step_loses_and_duplicates_nothing(tmp_path: Path, mode: str,
                                                         rename: str) -> None:
    """A rotator SIGKILLed at any syscall of its step leaves a set that the next rotation
    repairs: every record once, one name per file, no plain beside its .gz, no .part."""
    _run(tmp_path, mode, rename, "kill")


@pytest.mark.parametrize("rename", RENAMES)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_freeze_at_any_step_past_lock_timeout_destroys_nothing(tmp_path: Path, mode: str,
                                                                 rename: str) -> None:
    """A rotator frozen at any syscall of its step for longer than lock_timeout, whose lock
    another process breaks meanwhile, destroys nothing when it resumes, and goes on."""
    _run(tmp_path, mode, rename, "freeze")
