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
# One run of these is at the mercy of a noisy neighbour on a shared machine: they run --repeats
# times, each round through every contender in turn so a noisy spell hits all of them alike.
REPEATED = ("throughput", "stall")
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
        with tempfile.TemporaryDirectory(dir=work) as run_dir:
            path = os.path.join(run_dir, "app.log")
            params = {"path": path, "records": args.records, "max_bytes": max_bytes}
            seconds = _result(_workload("throughput", c.name, params, work), c.name)["seconds"]
            results[f"rotation_{rotation}"] = {"records_per_s": args.records / seconds,
                                               "lost": args.records - _count_lines(Path(run_dir))}
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


def merge_runs(scenario: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One outcome from a contender's runs of a scenario: medians, and losses in any run."""
    failed = next((run for run in runs if "error" in run), None)
    if failed is not None:
        return failed
    if scenario == "throughput":
        return {key: {"records_per_s": statistics.median(run[key]["records_per_s"] for run in runs),
                      "lost": max(run[key]["lost"] for run in runs)} for key in runs[0]}
    if scenario == "stall":
        return {"lag_p99_ms": statistics.median(run["lag_p99_ms"] for run in runs),
                "lag_max_ms": statistics.median(run["lag_max_ms"] for run in runs),
                "lag_worst_ms": max(run["lag_max_ms"] for run in runs),
                "sent": sum(run["sent"] for run in runs), "lost": sum(run["lost"] for run in runs)}
    return runs[0]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that every scenario runs, measures nothing")
    parser.add_argument("--only", nargs="+", metavar="CONTENDER",
                        help="run these contenders only (names as in the table)")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of the throughput and stall scenarios; medians kept")
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
    plan = [(s, round_, c) for s in args.scenarios
            for round_ in range(1, (args.repeats if s in REPEATED else 1) + 1)
            for c in runners[s][1]]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in args.scenarios}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiolog-bench-") as work:
        for step, (scenario, round_, contender) in enumerate(plan, 1):
            name = contender.name if contender else "no logging"
            what = f"{scenario} ({round_}/{args.repeats})" if scenario in REPEATED else scenario
            print(f"[{step}/{len(plan)}] {what:<16} {name:<24}", end=" ", flush=True)
            started = time.monotonic()
            try:
                outcome = runners[scenario][0](contender, Path(work), args)
            except Exception as exc:  # one peer failing must not hide the others' results
                outcome = {"error": str(exc)}
            runs[scenario].setdefault(name, []).append(outcome)
            print(f"{time.monotonic() - started:5.1f} s  {report.summary(scenario, outcome)}",
                  flush=True)
        if (Path(work) / STDERR).exists():
            shutil.copy(Path(work) / STDERR, args.out / STDERR)
    results = {scenario: {name: merge_runs(scenario, outcomes) for name, outcomes in by_name.items()}
               for scenario, by_name in runs.items()}
    document = {"machine": report.machine(), "settings": vars(args) | {"out": str(args.out)},
                "results": results, "runs": runs}
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(report.table(results))
    report.chart(results, args.out / "results.png")
    print(f"\nwrote results.json, results.png and the contenders' {STDERR} to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
