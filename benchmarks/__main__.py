"""Run every scenario for every contender that installs: ``python -m benchmarks [--quick]``.

Each measurement runs in a fresh process (see ``workloads``); this process only starts them,
watches shared files, and reports. Results: a table on stdout, ``results.json`` and
``results.png`` in ``--out`` (by default ``benchmarks/latest/``, ignored by git, so a run leaves
the checkout as it was). ``--update-results`` writes the committed ``benchmarks/results/`` and
the README's benchmark blocks instead; ``--update-readme`` only redraws those from the committed
``results.json``, without running anything.
"""

from __future__ import annotations

import argparse
import datetime
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

from . import breakdown, json_lines, report, stopped_reader, syslog
from .contenders import CONTENDERS, Contender
from .shared_file import InodeWatcher, audit

ROOT = Path(__file__).resolve().parent.parent
LATEST = ROOT / "benchmarks" / "latest"  # a plain run's results: ignored by git
COMMITTED = ROOT / "benchmarks" / "results"  # the run the README quotes
README = ROOT / "README.md"
SCENARIOS = ("throughput", "per_call", "stall", "shared", "timed", "json", "syslog",
             "breakdown")
# One run of these is at the mercy of a noisy neighbour on a shared machine: they run --repeats
# times, each round through every contender in turn so a noisy spell hits all of them alike.
# (per_call is one distribution of 50,000 calls; its percentiles already absorb a noisy spell.)
REPEATED = ("throughput", "stall", "shared", "timed")
STDERR = "stderr.log"
# Counts a multi-process run audits: summed over the runs, so a loss in any run is reported.
AUDITED = ("records", "lost", "duplicated", "torn", "misplaced", "files")


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


def _results(procs: list[subprocess.Popen[str]], what: str) -> list[dict[str, Any]]:
    """Every process's result; if one fails, the others are ended, not left running."""
    try:
        return [_result(p, what) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


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


def _processes_on_one_file(scenario: str, c: Contender, work: Path, args: argparse.Namespace,
                           params: dict[str, Any], sent: list[int] | None = None,
                           ) -> dict[str, Any]:
    """``args.processes`` processes start together on one file while a watcher notes each
    rotation; the records each sent (``sent``, or what each reports) are audited."""
    with tempfile.TemporaryDirectory(dir=work) as run_dir:
        path = os.path.join(run_dir, "app.log")
        watcher = InodeWatcher(path)
        watcher.start()
        start_at = time.time() + 1.0  # all processes imported and opened by then
        procs = [_workload(scenario, c.name, {"path": path, **params, "worker": w,
                                              "start_at": start_at}, work)
                 for w in range(args.processes)]
        try:
            spans = _results(procs, c.name)
        finally:
            watcher.stop()
        seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
        counts = sent if sent is not None else [s["sent"] for s in spans]
        return {"records_per_s": sum(counts) / seconds,
                **audit(Path(run_dir), counts, watcher.left)}


def run_shared(c: Contender, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    return _processes_on_one_file(
        "shared", c, work, args,
        {"records": args.shared_records, "max_bytes": args.shared_max_bytes},
        sent=[args.shared_records] * args.processes)


def run_timed(c: Contender, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Several processes log at a steady rate into one file that rotates every second."""
    return _processes_on_one_file("timed", c, work, args,
                                  {"seconds": args.timed_seconds, "rate": args.timed_rate})


def _contenders_for(scenario: str, contenders: list[Contender]) -> list[Contender | None]:
    if scenario == "stall":  # None: the same ticker with no logging, the floor
        return [None, *(c for c in contenders if c.shareable)]
    if scenario == "shared":
        return [c for c in contenders if c.rotates]
    if scenario == "timed":
        return [c for c in contenders if c.timed]
    return list(contenders)


# Scenario -> its runner; one more scenario is one more entry here and its name in SCENARIOS
# (report.table shows the scenarios it knows; results.json keeps every outcome).
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": run_throughput, "per_call": run_per_call, "stall": run_stall,
    "shared": run_shared, "timed": run_timed}


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
    if scenario in ("shared", "timed"):
        return {"records_per_s": statistics.median(run["records_per_s"] for run in runs),
                **{key: sum(run[key] for run in runs) for key in AUDITED},
                "misplaced_latest_s": max(run["misplaced_latest_s"] for run in runs),
                "runs": len(runs)}
    return runs[0]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="every scenario at smaller sizes, one round (a few minutes): "
                             "rough figures, not the README's")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes (the tests use it): checks that every scenario runs, "
                             "measures nothing")
    parser.add_argument("--only", nargs="+", metavar="CONTENDER",
                        help="run these contenders only (names as in the table)")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        help="run these scenarios only")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where results go (None: {LATEST.relative_to(ROOT)}, "
                             f"or {COMMITTED.relative_to(ROOT)} with --update-results)")
    parser.add_argument("--update-results", action="store_true",
                        help=f"write {COMMITTED.relative_to(ROOT)} and the README's benchmark "
                             "blocks: the run the README quotes")
    parser.add_argument("--update-readme", action="store_true",
                        help="run nothing: redraw the README's benchmark blocks and the chart "
                             f"from {COMMITTED.relative_to(ROOT)}/results.json")
    parser.add_argument("--records", type=int, default=50_000,
                        help="records of scenario 1, and log calls timed in scenario 2")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the throughput, stall, shared, timed and json "
                             "scenarios; medians kept")
    parser.add_argument("--max-bytes", type=int, default=1_000_000,
                        help="rotation size of scenario 1")
    parser.add_argument("--stall-seconds", type=float, default=3.0,
                        help="how long scenario 3 logs into the stalling sink")
    parser.add_argument("--stall-rate", type=int, default=5_000,
                        help="records per second in scenario 3")
    parser.add_argument("--processes", type=int, default=4,
                        help="processes sharing one file in scenarios 4 and 5")
    parser.add_argument("--shared-records", type=int, default=50_000,
                        help="records per process in scenario 4")
    parser.add_argument("--shared-max-bytes", type=int, default=1_000_000,
                        help="rotation size of scenario 4")
    parser.add_argument("--timed-seconds", type=float, default=5.0,
                        help="how long each process logs into the file rotated every second")
    parser.add_argument("--timed-rate", type=int, default=1_000,
                        help="records per second, per process")
    parser.add_argument("--json-records", type=int, default=100_000,
                        help="records per run of the JSON lines scenario")
    parser.add_argument("--syslog-records", type=int, default=20_000,
                        help="records per contender of the shipping logs scenario")
    parser.add_argument("--syslog-lag-seconds", type=float, default=6.0,
                        help="how long the loop logs while the collector is down 2 s of 3")
    parser.add_argument("--breakdown-calls", type=int, default=50_000,
                        help="calls per contender and round of the per-call breakdown")
    args = parser.parse_args(argv)
    if (args.quick or args.smoke) and args.update_results:
        parser.error("--quick and --smoke use other sizes: they must not replace the "
                     "committed results")
    if args.out is None:
        args.out = COMMITTED if args.update_results else LATEST
    if args.quick:
        args.records, args.repeats, args.max_bytes = 10_000, 1, 200_000
        args.stall_seconds = 2.0
        args.shared_records, args.shared_max_bytes = 10_000, 200_000
        args.timed_seconds = 3.0
        args.json_records = 20_000
    if args.smoke:
        args.records, args.repeats, args.max_bytes = 300, 1, 4_000
        args.stall_seconds, args.stall_rate = 0.3, 500
        args.shared_records, args.shared_max_bytes = 300, 4_000
        # Over 1 s, so at least one second boundary (one rotation) falls inside.
        args.timed_seconds, args.timed_rate = 1.2, 200
        args.json_records = 2_000
        args.syslog_records, args.syslog_lag_seconds = 1_000, 1.5
        args.breakdown_calls = 500
    return args


def _commit() -> str:
    """The checked-out commit, marked when the work tree differs from it (else "unknown")."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True, timeout=30,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+modified" if dirty else "")


def update_readme(results_json: Path, readme: Path = README) -> None:
    """Redraw the README's benchmark blocks and the chart beside ``results_json``."""
    document = json.loads(results_json.read_text())
    readme.write_text(report.update_readme(readme.read_text(), document))
    report.chart(document["results"], results_json.parent / "results.png",
                 report.run_name(document))


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.update_readme:
        update_readme(COMMITTED / "results.json")
        print(f"redrew the benchmark blocks of {README} and the chart from {COMMITTED}")
        return
    contenders = [c for c in CONTENDERS if c.available() and (not args.only or c.name in args.only)]
    plan = [(s, round_, c) for s in args.scenarios if s in RUNNERS
            for round_ in range(1, (args.repeats if s in REPEATED else 1) + 1)
            for c in _contenders_for(s, contenders)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in args.scenarios}
    spent = {s: 0.0 for s in args.scenarios}  # seconds per scenario, to budget the next run
    started_at = datetime.datetime.now(datetime.timezone.utc)
    commit = _commit()
    run_started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiolog-bench-") as work:
        for step, (scenario, round_, contender) in enumerate(plan, 1):
            name = contender.name if contender else "no logging"
            what = f"{scenario} ({round_}/{args.repeats})" if scenario in REPEATED else scenario
            print(f"[{step}/{len(plan)}] {what:<16} {name:<24}", end=" ", flush=True)
            started = time.monotonic()
            try:
                outcome = RUNNERS[scenario](contender, Path(work), args)
            except Exception as exc:  # one peer failing must not hide the others' results
                outcome = {"error": str(exc)}
            runs[scenario].setdefault(name, []).append(outcome)
            spent[scenario] += time.monotonic() - started
            print(f"{time.monotonic() - started:5.1f} s  {report.summary(scenario, outcome)}",
                  flush=True)
        if (Path(work) / STDERR).exists():
            shutil.copy(Path(work) / STDERR, args.out / STDERR)
    results = {scenario: {name: merge_runs(scenario, outcomes) for name, outcomes in by_name.items()}
               for scenario, by_name in runs.items() if scenario in RUNNERS}
    if "stall" in args.scenarios:  # its second part: a pipe whose reader stops for good
        print(f"[stall] a pipe whose reader stops, {args.stall_seconds:g} s", flush=True)
        started = time.monotonic()
        results["stopped_reader"] = stopped_reader.run(args.stall_seconds, args.stall_rate)
        spent["stall"] += time.monotonic() - started
    if "json" in args.scenarios:  # its own contenders (JSON formatters), rounds interleaved
        print(f"[json] JSON lines, {args.json_records:,} records x {args.repeats} rounds",
              flush=True)
        started = time.monotonic()
        results["json"] = json_lines.run(args.json_records, args.repeats)
        spent["json"] = time.monotonic() - started
    if "syslog" in args.scenarios:  # its own contenders (syslog handlers) and a real rsyslogd
        print(f"[syslog] shipping logs to rsyslogd, {args.syslog_records:,} records", flush=True)
        started = time.monotonic()
        results["syslog"] = syslog.run(args.syslog_records, args.syslog_lag_seconds)
        spent["syslog"] = time.monotonic() - started
    if "breakdown" in args.scenarios:  # its own contenders: what one call costs, with the floor
        print(f"[breakdown] one call, {args.breakdown_calls:,} calls x {args.repeats} rounds",
              flush=True)
        started = time.monotonic()
        results["breakdown"] = breakdown.run(args.breakdown_calls, args.repeats)
        spent["breakdown"] = time.monotonic() - started
    settings = {k: v for k, v in vars(args).items() if k not in ("update_results", "update_readme")}
    run = {"name": f"{started_at:%Y-%m-%d %H:%M} UTC at {commit}",
           "started": started_at.isoformat(timespec="seconds"), "commit": commit,
           "seconds": round(time.monotonic() - run_started, 1),
           "scenario_seconds": {s: round(t, 1) for s, t in spent.items()},
           "non_default": settings_differ(args)}
    document = {"run": run, "machine": report.machine(), "settings": settings | {"out": str(args.out)},
                "results": results, "runs": runs}
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(report.table(results))
    if "breakdown" in results:
        print("\n" + breakdown.table(results["breakdown"], args.breakdown_calls, args.repeats))
    report.chart(results, args.out / "results.png", run["name"])
    print(f"\nrun {run['name']}: {run['seconds']:,.0f} s; wrote results.json, results.png and the "
          f"contenders' {STDERR} to {args.out}")
    if args.update_results:
        update_readme(args.out / "results.json")
        print(f"updated the benchmark blocks of {README}")


def settings_differ(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of ``args`` that are not the defaults (what makes a run not a full one)."""
    defaults = vars(parse_args([]))
    ignored = ("out", "update_results", "update_readme")
    return {k: v for k, v in vars(args).items() if k not in ignored and v != defaults.get(k)}


if __name__ == "__main__":
    main(sys.argv[1:])
