"""Run every scenario for every contender that installs: ``python -m benchmarks [--quick]``.

Each measurement runs in a fresh process (see ``workloads``); this process only starts them,
watches shared files, and reports. Results: a table on stdout, ``results.json`` and
``results.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import report
from .contenders import CONTENDERS, Contender
from .shared_file import InodeWatcher, audit

SCENARIOS = ("throughput", "per_call", "stall", "shared")
STDERR = "stderr.log"


def _workload(scenario: str, name: str, params: dict[str, Any],
              work: Path) -> subprocess.Popen[str]:
    # Peers' own error reports (loguru's across processes, say) go to a file, not the table.
    with open(work / STDERR, "a") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.workloads", scenario, name, json.dumps(params)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=work,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})


def _result(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def _count_lines(directory: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in directory.iterdir()
               if p.is_file() and not p.name.endswith((".lock", ".part")))


def run_throughput(c: Contender, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for rotation, max_bytes in (("off", 0), ("on", args.max_bytes)):
        if rotation == "on" and not c.rotates:
            continue
        rates, lost = [], 0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(dir=work) as run_dir:
                path = os.path.join(run_dir, "app.log")
                params = {"path": path, "records": args.records, "max_bytes": max_bytes}
                seconds = _result(_workload("throughput", c.name, params, work), c.name)["seconds"]
                rates.append(args.records / seconds)
                lost = max(lost, args.records - _count_lines(Path(run_dir)))
        results[f"rotation_{rotation}"] = {"records_per_s": statistics.median(rates),
                                           "lost": lost}
    return results


def run_per_call(c: Contender, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=work) as run_dir:
        params = {"path": os.path.join(run_dir, "app.log"), "records": args.records}
        return _result(_workload("per_call", c.name, params, work), c.name)


def run_stall(c: Contender | None, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = c.name if c else "no logging"
    with tempfile.TemporaryDirectory(dir=work) as run_dir:
        fifo = os.path.join(run_dir, "app.log")
        os.mkfifo(fifo)
        reader = _workload("fifo-reader", "", {"path": fifo, "stall_seconds": 0.4,
                                               "period": 1.0}, work)
        try:
            params = {"path": fifo, "seconds": args.stall_seconds, "rate": args.stall_rate}
            result = _result(_workload("stall", c.name if c else "", params, work), name)
            result["lost"] = result["sent"] - _result(reader, "fifo reader")["received"]
            return result
        finally:
            reader.kill()  # still waiting for a writer if the contender failed
            reader.communicate()


def run_shared(c: Contender, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=work) as run_dir:
        path = os.path.join(run_dir, "app.log")
        watcher = InodeWatcher(path)
        watcher.start()
        start_at = time.time() + 1.0  # all processes imported and opened by then
        procs = [_workload("shared", c.name, {"path": path, "records": args.shared_records,
                                               "max_bytes": args.shared_max_bytes,
                                               "worker": w, "start_at": start_at}, work)
                 for w in range(args.processes)]
        spans = [_result(p, c.name) for p in procs]
        watcher.stop()
        total = args.processes * args.shared_records
        seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
        return {"records_per_s": total / seconds,
                **audit(Path(run_dir), args.processes, args.shared_records, watcher.left)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that every scenario runs, measures nothing")
    parser.add_argument("--only", nargs="+", metavar="CONTENDER",
                        help="run these contenders only (names as in the table)")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs; median kept")
    parser.add_argument("--max-bytes", type=int, default=1_000_000)
    parser.add_argument("--stall-seconds", type=float, default=3.0)
    parser.add_argument("--stall-rate", type=int, default=5_000, help="records per second")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--shared-records", type=int, default=50_000, help="per process")
    parser.add_argument("--shared-max-bytes", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.repeats, args.max_bytes = 300, 1, 4_000
        args.stall_seconds, args.stall_rate = 0.3, 500
        args.shared_records, args.shared_max_bytes = 300, 4_000
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    contenders = [c for c in CONTENDERS if c.available() and (not args.only or c.name in args.only)]
    runners: dict[str, tuple[Callable[..., dict[str, Any]], list[Contender | None]]] = {
        "throughput": (run_throughput, list(contenders)),
        "per_call": (run_per_call, list(contenders)),
        "stall": (run_stall, [None, *(c for c in contenders if c.shareable)]),
        "shared": (run_shared, [c for c in contenders if c.rotates]),
    }
    plan = [(s, c) for s in args.scenarios for c in runners[s][1]]
    results: dict[str, dict[str, Any]] = {s: {} for s in args.scenarios}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiolog-bench-") as work:
        for step, (scenario, contender) in enumerate(plan, 1):
            name = contender.name if contender else "no logging"
            print(f"[{step}/{len(plan)}] {scenario:<10} {name:<24}", end=" ", flush=True)
            started = time.monotonic()
            try:
                outcome = runners[scenario][0](contender, Path(work), args)
            except Exception as exc:  # one peer failing must not hide the others' results
                outcome = {"error": str(exc)}
            results[scenario][name] = outcome
            print(f"{time.monotonic() - started:5.1f} s  {report.summary(scenario, outcome)}",
                  flush=True)
        if (Path(work) / STDERR).exists():
            shutil.copy(Path(work) / STDERR, args.out / STDERR)
    document = {"machine": report.machine(), "settings": vars(args) | {"out": str(args.out)},
                "results": results}
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(report.table(results))
    report.chart(results, args.out / "results.png")
    print(f"\nwrote results.json, results.png and the contenders' {STDERR} to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
