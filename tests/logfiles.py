"""Reading a rotated log set back and checking it, for the multi-process tests."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import collections
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

LINE = re.compile(r"^(\d+\.\d{6}) (P\d+(?:g\d+)?) (\d+)$")
WORKER = Path(__file__).parent / "scripts" / "log_worker.py"


@dataclass
class Record:
    created: float
    source: str
    seq: int


@dataclass
class LogFile:
    name: str
    records: list[Record]


def start_workers(path: Path, tags: list[str], n: int, **config: object) -> list[subprocess.Popen[bytes]]:
    """Start one real process per tag, each logging ``n`` records into ``path``.

    Each traces its writes and rotations into ``<path>.<tag>.trace``.
    """
    return [subprocess.Popen([sys.executable, str(WORKER), json.dumps(
        {"path": str(path), "n": n, "tag": tag, "trace": f"{path}.{tag}.trace", **config})])
        for tag in tags]


def wait_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Each worker exits 0; a failing or hanging one fails the test and none is left running."""
    try:
        for proc in procs:
            assert proc.wait(timeout=240) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def read_set(directory: Path, base: str = "app.log") -> list[LogFile]:
    """Every file of the set, oldest first; a line that does not parse fails the test."""
    def age(name: str) -> tuple[int, int, str]:
        rest = name[len(base):].removesuffix(".gz").lstrip(".")
        if rest == "":
            return (2, 0, "")
        if rest.isdigit():
            return (0, -int(rest), "")  # .N: higher is older
        stamp, _, n = rest.partition(".")  # .<time>[.N]: a free name is newer than the plain one
        return (1, int(n or 0), stamp)

    names = sorted((n for n in os.listdir(directory)
                    if n.startswith(base) and not n.endswith((".lock", ".break", ".trace"))),
                   key=age)
    files = []
    for name in names:
        raw = (directory / name).read_bytes()
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
        records = []
        for line in raw.decode("utf-8").splitlines():
            match = LINE.match(line)
            assert match, f"torn or interleaved line in {name}: {line!r}"
            records.append(Record(float(match[1]), match[2], int(match[3])))
        files.append(LogFile(name, records))
    return files


def check_complete_and_ordered(files: list[LogFile], expected: dict[str, int]) -> None:
    """Each source's records appear exactly once, in order, across the files oldest first."""
    seen: dict[str, list[int]] = defaultdict(list)
    for f in files:
        for r in f.records:
            seen[r.source].append(r.seq)
    assert set(seen) == set(expected)
    for source, count in expected.items():
        assert seen[source] == list(range(count)), f"{source}: lost, duplicated or out of order"


def writes_after_rotation(directory: Path) -> list[tuple[float, int]]:
    """The writes that looked at the path after their file was rotated away, from the traces.

    Every write looks at the path first (is its inode still ours?) and writes one piece. The
    README allows one chunk into a file already rotated away: a write that looked just before
    another process rotated. A write that looked after the rotation and still wrote into the
    rotated file is a misplaced record; this lists them (it should be empty). No clock margin:
    the processes share one clock, and the order of a look and a rotation is all that counts.
    """
    writes, rotated_at = [], {}
    for trace in directory.glob("*.trace"):
        for event in trace.read_text().splitlines():
            kind, at, inode = event.split()
            if kind == "write":
                writes.append((float(at), int(inode)))
            else:
                rotated_at[int(inode)] = min(float(at), rotated_at.get(int(inode), float("inf")))
    assert writes and rotated_at, "no trace: the workers did not write or rotate"
    return [(at, inode) for at, inode in writes if at > rotated_at.get(inode, float("inf"))]


# -- issue 16: the set a killed or frozen rotator leaves, after another process went on --

def record_counts(directory: Path) -> collections.Counter[str]:
    """Every record line of the set at ``directory``, with how often it is there."""
    seen: collections.Counter[str] = collections.Counter()
    for p in directory.iterdir():
        if not p.name.startswith("app.log") or p.name.endswith((".lock", ".break")) or p.is_dir():
            continue
        raw = p.read_bytes()
        seen.update(" ".join(line.split()[:2]) for line in  # "<tag> <i>", without padding
                    (gzip.decompress(raw) if p.name.endswith(".gz") else raw).decode().splitlines())
    return seen


def check_set(directory: Path, whole: dict[str, int], partial: dict[str, int]) -> None:
    """Each record of ``whole`` is there exactly once, each of ``partial`` at most once (what a
    killed process had not written yet is lost, but never doubled); no two names share an
    inode; no plain backup sits beside its .gz; no .part is left."""
    names = sorted(p.name for p in directory.iterdir())
    inodes = collections.Counter(os.lstat(directory / n).st_ino for n in names)
    assert max(inodes.values(), default=1) == 1, f"two names for one inode: {names}"
    assert not [n for n in names if n + ".gz" in names], f"plain beside its .gz: {names}"
    assert not [n for n in names if n.endswith((".part", ".removing"))], f"left: {names}"
    seen = record_counts(directory)
    doubled = sorted(line for line, count in seen.items() if count > 1)
    assert not doubled, f"{len(doubled)} records duplicated, e.g. {doubled[:3]}"
    for tag, n in whole.items():
        lost = [i for i in range(n) if f"{tag} {i}" not in seen]
        assert not lost, f"{tag}: {len(lost)} of {n} records lost, e.g. {lost[:3]}: {names}"
    expected = {f"{tag} {i}" for tags in (whole, partial) for tag, n in tags.items()
                for i in range(n)}
    assert set(seen) <= expected
