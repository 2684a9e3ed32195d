"""JSON lines side by side: ``python -m benchmarks.json_lines [--quick] [--rounds N] [--out DIR]``.

Every contender logs the same records inside a running asyncio loop: the message
``"request handled"``, 3 ``extra`` fields (method, path, status) and 2 fields bound to the
task's context (request_id, user_id), each the way its documentation shows. Each run is a fresh
process. Reported per contender (median over rounds):

- records/s: records divided by the time from the first call until every record is on disk
  (the contender closed or flushed the way its documentation says);
- loop µs/call: the time the event loop spent inside the logging calls, per call;
- lost: records not found in the file as valid JSON lines (must be 0).

The machine these run on is shared and noisy: the numbers establish a comparison within one run,
not a performance gate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BATCH = 100  # calls timed together, then one await asyncio.sleep(0), as a busy service would
EXTRA = {"method": "GET", "path": "/items/42", "status": 200}
CONTEXT = {"request_id": "9b2c6f0e", "user_id": 1234}

# name -> module that must import for it to run
CONTENDERS: dict[str, str] = {
    "aiolog JSON (orjson)": "orjson",
    "aiolog JSON (stdlib json)": "aiolog",
    "python-json-logger + FileHandler": "pythonjsonlogger",
    "structlog JSONRenderer to a file": "structlog",
    "loguru serialize=True": "loguru",
}

Log = Callable[[int], None]  # log record number i
Opened = tuple[Log, Callable[[], Awaitable[None]]]  # and how to get everything on disk


def _stdlib_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("bench")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


async def _open_aiolog(path: str, encoder: str) -> Opened:
    import aiolog

    handler = aiolog.AsyncFileHandler(path)
    handler.setFormatter(aiolog.JsonFormatter(encoder=encoder))  # type: ignore[arg-type]
    logger = _stdlib_logger(handler)
    aiolog.bind(**CONTEXT)

    def log(i: int) -> None:
        logger.info("request handled", extra=EXTRA)

    return log, handler.aclose


_pjl_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("ctx", default={})


class _PjlContextFilter(logging.Filter):
    """The usual recipe for request context with python-json-logger: a filter copying a
    contextvar onto the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.update(_pjl_context.get())
        return True


async def _open_pjl(path: str) -> Opened:
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_PjlContextFilter())
    logger = _stdlib_logger(handler)
    _pjl_context.set(dict(CONTEXT))

    def log(i: int) -> None:
        logger.info("request handled", extra=EXTRA)

    async def close() -> None:
        handler.close()

    return log, close


async def _open_structlog(path: str) -> Opened:
    import structlog

    out = open(path, "w")
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"),
                    structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=True)
    structlog.contextvars.bind_contextvars(**CONTEXT)
    logger = structlog.get_logger("bench")

    def log(i: int) -> None:
        logger.info("request handled", **EXTRA)

    async def close() -> None:
        out.close()

    return log, close


async def _open_loguru(path: str) -> Opened:
    from loguru import logger

    logger.remove()
    logger.add(path, serialize=True)

    def log(i: int) -> None:
        logger.info("request handled", **EXTRA)

    async def close() -> None:
        logger.remove()

    return log, close


def _context_scope(name: str) -> contextlib.AbstractContextManager[Any]:
    """loguru binds context with a ``with`` block (its contextvar-backed ``contextualize``)."""
    if name.startswith("loguru"):
        from loguru import logger

        return logger.contextualize(**CONTEXT)
    return contextlib.nullcontext()


OPENERS: dict[str, Callable[[str], Awaitable[Opened]]] = {
    "aiolog JSON (orjson)": lambda p: _open_aiolog(p, "orjson"),
    "aiolog JSON (stdlib json)": lambda p: _open_aiolog(p, "json"),
    "python-json-logger + FileHandler": _open_pjl,
    "structlog JSONRenderer to a file": _open_structlog,
    "loguru serialize=True": _open_loguru,
}


async def _measure(name: str, path: str, n: int) -> dict[str, float]:
    log, close = await OPENERS[name](path)
    in_calls = 0.0
    start = time.perf_counter()
    with _context_scope(name):
        for base in range(0, n, BATCH):
            t0 = time.perf_counter()
            for i in range(base, min(base + BATCH, n)):
                log(i)
            in_calls += time.perf_counter() - t0
            await asyncio.sleep(0)
    await close()
    elapsed = time.perf_counter() - start
    return {"records_per_s": n / elapsed, "loop_us_per_call": in_calls / n * 1e6,
            "lost": n - _count_json_records(path)}


def _count_json_records(path: str) -> int:
    """Lines that are whole JSON objects carrying the record's fields."""
    found = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            flat = {**data, **data.get("record", {}).get("extra", {})}  # loguru nests its fields
            if flat.get("status") == 200 and flat.get("request_id") == CONTEXT["request_id"]:
                found += 1
    return found


def _run_one(name: str, n: int, directory: str) -> dict[str, float]:
    """One run of one contender in a fresh interpreter."""
    path = os.path.join(directory, f"{len(os.listdir(directory))}.jsonl")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.json_lines", "--one", name,
                           "--n", str(n), "--path", path], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        return {"error": f"exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(n: int, rounds: int) -> dict[str, dict[str, Any]]:
    names = [name for name, module in CONTENDERS.items() if importlib.util.find_spec(module)]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(rounds):  # interleaved, so a noisy minute hurts every contender alike
            for name in names:
                runs[name].append(_run_one(name, n, directory))
    results: dict[str, dict[str, Any]] = {}
    for name, outcomes in runs.items():
        errors = [o["error"] for o in outcomes if "error" in o]
        if errors:
            results[name] = {"error": errors[0]}
            continue
        results[name] = {
            "records_per_s": statistics.median(o["records_per_s"] for o in outcomes),
            "loop_us_per_call": statistics.median(o["loop_us_per_call"] for o in outcomes),
            "lost": sum(int(o["lost"]) for o in outcomes)}
    return results


def table(results: dict[str, dict[str, Any]], n: int, rounds: int) -> str:
    baseline = results.get("python-json-logger + FileHandler", {}).get("records_per_s")
    rows = [f"JSON lines: {n} records per run, 3 extra + 2 context fields, median of {rounds}",
            "", "| contender | records/s | vs python-json-logger | loop µs/call | lost |",
            "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        if "error" in r:
            rows.append(f"| {name} | error: {r['error']} | | | |")
            continue
        ratio = f"{r['records_per_s'] / baseline:.2f}x" if baseline else "-"
        rows.append(f"| {name} | {r['records_per_s']:,.0f} | {ratio} | "
                    f"{r['loop_us_per_call']:.2f} | {r['lost']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.json_lines")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", help="write json_lines.json into this directory")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(_measure(args.one, args.path, args.n))))
        return
    n = args.n or (2_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 3)
    results = run(n, rounds)
    print(table(results, n, rounds))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "json_lines.json"), "w") as f:
            json.dump({"records": n, "rounds": rounds, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
