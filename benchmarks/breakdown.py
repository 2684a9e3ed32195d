"""What one log call costs, per contender: ``python -m benchmarks.breakdown [--quick]``.

Every contender logs the same call, ``info("request %d done in %s ms", i, 3.2)`` with 3
``extra`` fields (each in its own spelling), in a fresh process, to a file, in the same text
format (``FORMAT``) or as JSON lines. Per call is the time from the first call until every
record is on disk (the contender closed the way its documentation says), divided by the
calls: what a service pays per record, the background writer's share included. The stdlib
Logger with a ``NullHandler`` is the floor every ``logging``-based contender stands on.

Rounds are interleaved (every contender once, then again) so a noisy minute on a shared
machine hurts all alike; the median of the rounds is reported. The numbers establish a
comparison within one run, not a performance gate.

``--instructions`` counts instead, with valgrind's callgrind, the CPU instructions one call
costs (every thread's, the background writer's included; the same run with no calls is
subtracted): slow, but the same on a busy machine as on a quiet one. Under callgrind a call
takes about 80 times as long, so each record would start a new millisecond and a formatter's
cache of the last millisecond's time text would never hit (aiolog's formatted the time for
1,997 of 2,000 calls, against 662 of 50,000 in a real run): the counted process reads a wall
clock slowed by the same factor (``CALLGRIND_SLOWDOWN``), which puts the hit rate back where a
real run has it (55 of 3,000).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MESSAGE = "request %d done in %s ms"
EXTRA = {"method": "GET", "path": "/items/42", "status": 200}
WARMUP = 1_000
# How much slower these calls run under callgrind than natively (1,450 against 18 µs per call).
CALLGRIND_SLOWDOWN = 80

Log = Callable[[int], None]
# log record i; get everything on disk and close; wait until what was logged is on disk
Opened = tuple[Log, Callable[[], None], Callable[[], None]]


def _nothing() -> None:
    pass

# name -> module that must import for it to run
CONTENDERS: dict[str, str | None] = {
    "Logger alone (NullHandler)": None,
    "Logger alone, aiolog's lean records": None,
    "aiolog text": None,
    "aiolog JSON": None,
    "aiolog text, records='no_caller'": None,
    "aiolog JSON, records='no_caller'": None,
    "python-json-logger + FileHandler": "pythonjsonlogger",
    "picologging FileHandler": "picologging",
    "loguru to a file": "loguru",
    "structlog to a file (fastest)": "structlog",
}
JSON_BASELINE = "python-json-logger + FileHandler"
TEXT_BASELINE = "picologging FileHandler"


def _logger() -> logging.Logger:
    """Handlers go on the root logger, as configure() and basicConfig() put them."""
    logging.getLogger().setLevel(logging.INFO)
    return logging.getLogger("bench")


def _stdlib_log(logger: Any) -> Log:
    def log(i: int) -> None:
        logger.info(MESSAGE, i, 3.2, extra=EXTRA)

    return log


def _open_null(path: str) -> Opened:
    logging.getLogger().addHandler(logging.NullHandler())
    return _stdlib_log(_logger()), _nothing, _nothing


def _open_null_lean(path: str) -> Opened:
    from aiolog import _record

    if not _record.install():
        raise RuntimeError("aiolog's lean records are not available on this Python")
    return _open_null(path)


def _open_aiolog(path: str, format: str, records: str = "lean") -> Opened:
    import aiolog

    # The default passed as no option, so this runs against versions without it too. The
    # handlers need no loop afterwards.
    options: dict[str, Any] = {} if records == "lean" else {"records": records}
    asyncio.run(aiolog.configure(path, format=format, **options))

    def close() -> None:
        asyncio.run(aiolog.shutdown())

    return _stdlib_log(_logger()), close, aiolog.flush_sync


def _open_pjl(path: str) -> Opened:
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return _stdlib_log(_logger()), handler.close, handler.flush


def _open_picologging(path: str) -> Opened:
    import picologging

    handler = picologging.FileHandler(path)
    handler.setFormatter(picologging.Formatter(FORMAT))
    root = picologging.getLogger()
    root.addHandler(handler)
    root.setLevel(picologging.INFO)
    return _stdlib_log(picologging.getLogger("bench")), handler.close, handler.flush


def _open_loguru(path: str) -> Opened:
    from loguru import logger

    logger.remove()
    logger.add(path, format="{time:YYYY-MM-DD HH:mm:ss,SSS} {level} {name}: {message}")

    def log(i: int) -> None:
        logger.info("request {} done in {} ms", i, 3.2, **EXTRA)

    return log, logger.remove, _nothing


def _open_structlog(path: str) -> Opened:
    """structlog's own advice for speed (its "Performance" page): a filtering bound logger,
    cached on first use, bytes straight to the file, orjson rendering."""
    import orjson
    import structlog

    out = open(path, "wb")
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=False),
                    structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(file=out),
        cache_logger_on_first_use=True)
    logger = structlog.get_logger("bench")

    def log(i: int) -> None:
        logger.info(MESSAGE, i, 3.2, **EXTRA)

    return log, out.close, out.flush


OPENERS: dict[str, Callable[[str], Opened]] = {
    "Logger alone (NullHandler)": _open_null,
    "Logger alone, aiolog's lean records": _open_null_lean,
    "aiolog text": lambda p: _open_aiolog(p, FORMAT),
    "aiolog JSON": lambda p: _open_aiolog(p, "json"),
    "aiolog text, records='no_caller'": lambda p: _open_aiolog(p, FORMAT, "no_caller"),
    "aiolog JSON, records='no_caller'": lambda p: _open_aiolog(p, "json", "no_caller"),
    JSON_BASELINE: _open_pjl,
    TEXT_BASELINE: _open_picologging,
    "loguru to a file": _open_loguru,
    "structlog to a file (fastest)": _open_structlog,
}


def measure(name: str, path: str, n: int) -> dict[str, float]:
    """One contender in this process: µs per call, first call until on disk."""
    log, close, settle = OPENERS[name](path)
    for i in range(WARMUP):  # lazy imports and caches out of the way
        log(i)
    settle()
    start = time.perf_counter()
    for i in range(n):
        log(i)
    close()
    elapsed = time.perf_counter() - start
    return {"us_per_call": elapsed / max(n, 1) * 1e6}


def available() -> list[str]:
    return [name for name, module in CONTENDERS.items()
            if module is None or importlib.util.find_spec(module)]


def _run_one(name: str, n: int, directory: str) -> dict[str, Any]:
    path = os.path.join(directory, f"{len(os.listdir(directory))}.log")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", "--one", name,
                           "--n", str(n), "--path", path], capture_output=True, text=True,
                          timeout=600, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    if proc.returncode != 0:
        return {"error": f"exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _instructions(name: str, n: int, directory: str) -> dict[str, Any]:
    """CPU instructions per call: callgrind's total for n calls minus that for none."""
    root = Path(__file__).resolve().parent.parent
    totals = []
    for calls in (0, n):
        path = os.path.join(directory, f"{len(os.listdir(directory))}.log")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             "-m", "benchmarks.breakdown", "--one", name, "--n", str(calls), "--path", path],
            capture_output=True, text=True, timeout=1800, cwd=root,
            env={**os.environ, "PYTHONPATH": str(root), "BREAKDOWN_SLOW_CLOCK": "1"})
        found = re.findall(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not found:
            return {"error": f"valgrind exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"}
        totals.append(sum(map(int, found)))
    return {"instructions_per_call": round((totals[1] - totals[0]) / n)}


def _slow_wall_clock(factor: int) -> None:
    """Make time.time() and time.time_ns() advance ``factor`` times slower from now on."""
    real, real_ns = time.time, time.time_ns
    start, start_ns = real(), real_ns()
    time.time = lambda: start + (real() - start) / factor
    time.time_ns = lambda: start_ns + (real_ns() - start_ns) // factor


def run_instructions(n: int) -> dict[str, dict[str, Any]]:
    """Every available contender once under callgrind: instructions per call."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="aiolog-breakdown-") as directory:
        return {name: _instructions(name, n, directory) for name in available()}


def run(n: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Every available contender, ``rounds`` times interleaved: median µs per call."""
    names = available()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="aiolog-breakdown-") as directory:
        for _ in range(rounds):
            for name in names:
                runs[name].append(_run_one(name, n, directory))
    results: dict[str, dict[str, Any]] = {}
    for name, outcomes in runs.items():
        failed = next((o for o in outcomes if "error" in o), None)
        results[name] = failed or {
            "us_per_call": statistics.median(o["us_per_call"] for o in outcomes),
            "runs_us_per_call": [round(o["us_per_call"], 3) for o in outcomes]}
    return results


def _cost(r: dict[str, Any]) -> float | None:
    value = r.get("us_per_call", r.get("instructions_per_call"))
    return None if value is None else float(value)


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The two target ratios: python-json-logger / aiolog JSON and aiolog text / picologging."""
    cost = {name: c for name, r in results.items() if (c := _cost(r)) is not None}
    out = {}
    if JSON_BASELINE in cost and "aiolog JSON" in cost:
        out["python-json-logger / aiolog JSON"] = cost[JSON_BASELINE] / cost["aiolog JSON"]
    if TEXT_BASELINE in cost and "aiolog text" in cost:
        out["aiolog text / picologging"] = cost["aiolog text"] / cost[TEXT_BASELINE]
    return out


def table(results: dict[str, dict[str, Any]], n: int, rounds: int) -> str:
    counted = any("instructions_per_call" in r for r in results.values())
    floor = _cost(results.get("Logger alone (NullHandler)", {}))
    unit = "instructions" if counted else "µs"
    title = (f"Breakdown: CPU instructions per call (callgrind, {n:,} calls)" if counted else
             f"Breakdown: µs per call until on disk, {n:,} calls, median of {rounds} rounds")
    rows = [f"{title}; ratio to the stdlib Logger alone", "",
            f"| contender | {unit}/call | ratio |", "| --- | ---: | ---: |"]
    for name, r in results.items():
        cost = _cost(r)
        if cost is None:
            rows.append(f"| {name} | error: {r.get('error')} | |")
            continue
        ratio = f"{cost / floor:.2f}x" if floor else "-"
        rows.append(f"| {name} | {cost:,.0f} | {ratio} |" if counted else
                    f"| {name} | {cost:.2f} | {ratio} |")
    rows.append("")
    rows += [f"{what}: {value:.2f}x" for what, value in ratios(results).items()]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--n", type=int, default=None, help="calls per contender and round")
    parser.add_argument("--out", help="write breakdown.json into this directory")
    parser.add_argument("--instructions", action="store_true",
                        help="count CPU instructions per call with valgrind instead of timing")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        if os.environ.get("BREAKDOWN_SLOW_CLOCK"):
            _slow_wall_clock(CALLGRIND_SLOWDOWN)
        print(json.dumps(measure(args.one, args.path, args.n)))
        return
    if args.instructions:
        n, rounds = args.n or (200 if args.quick else 5_000), 1
        results = run_instructions(n)
    else:
        n = args.n or (500 if args.quick else 50_000)
        rounds = args.rounds or (1 if args.quick else 3)
        results = run(n, rounds)
    print(table(results, n, rounds))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "breakdown.json"), "w") as f:
            json.dump({"calls": n, "rounds": rounds, "results": results,
                       "ratios": ratios(results)}, f, indent=2)


if __name__ == "__main__":
    main()
