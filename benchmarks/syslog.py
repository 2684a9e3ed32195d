"""Scenario 7, shipping logs: ``python -m benchmarks.syslog [--quick] [--records N] [--out DIR]``.

Into a real rsyslogd on 127.0.0.1 (``tests/rsyslogd.py``: the test fixture, main queue Direct,
so a RELP ``200`` means the record is in the collector's file), for each contender:

- throughput: N records logged in one burst. ``call_per_s`` is what the logging code sees
  (N over the time its calls took); ``delivered_per_s`` counts until every record is handed
  over (aiolog: ``flush()``, which over RELP means acknowledged; a QueueHandler: its listener
  stopped); ``lost`` is what never reached the collector's file.
- restart: N records over a few seconds, rsyslogd stopped halfway and started 1 s later;
  ``lost`` and ``duplicated`` as counted in its files.
- the ceiling: the same N records through a stdlib Logger with only a ``NullHandler``. No
  handler that the stdlib Logger calls can take fewer calls/s than this, so
  "SysLogHandler TCP per call / Logger alone per call" is the most any such handler can gain
  over SysLogHandler on calls/s; the table prints it beside the ratio aiolog reached.
- loop lag: an event loop logging 1,000 records/s for 6 s while the collector is stopped 2 s
  out of every 3; the worst and 99th-percentile delay of a 1 ms ticker while it is down,
  beside the same ticker's floor with no logging at all.

Needs rsyslogd with imrelp and TLS (``apt-get install rsyslog rsyslog-relp rsyslog-openssl``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import queue
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiolog
from tests.rsyslogd import Rsyslogd, missing

# name -> (rsyslogd input the records reach, whether it runs on an event loop's terms)
CONTENDERS = ("aiolog RELP", "aiolog TCP", "SysLogHandler TCP", "SysLogHandler UDP",
              "rfc5424-logging-handler TCP", "QueueHandler + SysLogHandler TCP")
LOGGER_ALONE = "stdlib Logger alone (NullHandler)"
LAG_CONTENDERS = ("aiolog RELP", "aiolog TCP", "SysLogHandler TCP",
                  "QueueHandler + SysLogHandler TCP")


class _Built:
    """A contender's handler, the input it reaches, and how to wait until it handed all over."""

    def __init__(self, handler: logging.Handler, input_name: str,
                 finish: Callable[[], None]) -> None:
        self.handler = handler
        self.input = input_name
        self.finish = finish


def build(name: str, server: Rsyslogd) -> _Built:
    if name.startswith("aiolog"):
        transport = "relp" if "RELP" in name else "tcp"
        handler = aiolog.AsyncSyslogHandler(server.address(transport), transport=transport,
                                            max_queue=1_000_000, delivery_timeout=30.0)
        return _Built(handler, transport, handler.flush)
    if name == "SysLogHandler TCP":
        handler = logging.handlers.SysLogHandler(server.address("tcp"), socktype=socket.SOCK_STREAM)
        return _Built(handler, "tcp", lambda: None)
    if name == "SysLogHandler UDP":
        return _Built(logging.handlers.SysLogHandler(server.address("udp")), "udp", lambda: None)
    if name == "rfc5424-logging-handler TCP":
        from rfc5424logging import Rfc5424SysLogHandler

        handler = Rfc5424SysLogHandler(server.address("tcp"), socktype=socket.SOCK_STREAM)
        return _Built(handler, "tcp", lambda: None)
    if name == "QueueHandler + SysLogHandler TCP":
        inner = logging.handlers.SysLogHandler(server.address("tcp"), socktype=socket.SOCK_STREAM)
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(records, inner)
        listener.start()

        def finish() -> None:
            listener.stop()
            inner.close()
        return _Built(logging.handlers.QueueHandler(records), "tcp", finish)
    raise ValueError(name)


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.syslog.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def _count(server: Rsyslogd, built: _Built, marker: str, n: int) -> tuple[int, int]:
    # Until all arrived, or nothing more came for a while (a short while in a --quick run).
    found = server.wait_for(built.input, marker, n, settle=1.5 if n >= 10_000 else 0.5)
    return n - len(set(found)), len(found) - len(set(found))


def logger_alone(n: int) -> dict[str, Any]:
    """The calls/s of the stdlib Logger itself: the same records, to a ``NullHandler`` (the
    best of three runs, so a cold first run does not make the ceiling look higher)."""
    logger = _logger(logging.NullHandler())
    marker = "n" + uuid.uuid4().hex[:10]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for i in range(n):
            logger.info("record %s=%d", marker, i)
        best = min(best, time.perf_counter() - started)
    return {"call_per_s": round(n / best)}


def throughput(name: str, server: Rsyslogd, n: int) -> dict[str, Any]:
    built = build(name, server)
    marker = "t" + uuid.uuid4().hex[:10]
    logger = _logger(built.handler)
    started = time.perf_counter()
    for i in range(n):
        logger.info("record %s=%d", marker, i)
    called = time.perf_counter()
    built.finish()
    delivered = time.perf_counter()
    built.handler.close()
    lost, duplicated = _count(server, built, marker, n)
    return {"call_per_s": round(n / (called - started)),
            "delivered_per_s": round(n / (delivered - started)), "lost": lost,
            "duplicated": duplicated}


def restart(name: str, server: Rsyslogd, n: int) -> dict[str, Any]:
    built = build(name, server)
    marker = "r" + uuid.uuid4().hex[:10]
    logger = _logger(built.handler)
    timer = threading.Timer(1.0, server.start)
    try:
        for i in range(n):
            if i == n // 2:
                server.stop()
                timer.start()
            logger.info("record %s=%d", marker, i)
            if i % 500 == 0:
                time.sleep(0.02)
        timer.join()
        time.sleep(1.0)
        built.finish()
    finally:
        timer.join()
        if server.process is None:
            server.start()
    built.handler.close()
    lost, duplicated = _count(server, built, marker, n)
    return {"lost": lost, "duplicated": duplicated}


async def _lag(name: str | None, server: Rsyslogd, seconds: float) -> dict[str, Any]:
    """The ticker's delays while the collector is down (with no contender: the floor)."""
    built = build(name, server) if name else None
    logger = _logger(built.handler) if built else None
    down = threading.Event()
    delays: list[float] = []
    stop = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            if down.is_set():
                delays.append(now - last - 0.001)
            last = now

    tick = asyncio.ensure_future(ticker())
    started = time.monotonic()
    i = 0
    while (elapsed := time.monotonic() - started) < seconds:
        phase = elapsed % 3
        if phase >= 1 and not down.is_set():  # down from 1 s to 3 s of every 3
            await asyncio.to_thread(server.stop)
            down.set()
        elif phase < 1 and down.is_set():
            down.clear()
            await asyncio.to_thread(server.start)
        if logger is not None:
            logger.info("lag record %d", i)
            i += 1
        await asyncio.sleep(0.001)
    stop = True
    await tick
    if down.is_set():
        await asyncio.to_thread(server.start)
    if built is not None:
        await asyncio.to_thread(built.finish)
        built.handler.close()
    delays.sort()
    return {"lag_max_ms": round(max(delays) * 1000, 2),
            "lag_p99_ms": round(delays[int(len(delays) * 0.99)] * 1000, 2)}


def run(records: int, lag_seconds: float) -> dict[str, Any]:
    why = missing()
    if why is not None:
        return {"error": why}
    server = Rsyslogd()
    server.start()
    results: dict[str, Any] = {LOGGER_ALONE: {"throughput": logger_alone(records)}}
    try:
        for name in CONTENDERS:
            print(f"[syslog] {name}", end=" ", flush=True)
            try:
                row = {"throughput": throughput(name, server, records),
                       "restart": restart(name, server, records)}
                if name in LAG_CONTENDERS:
                    row["down"] = asyncio.run(_lag(name, server, lag_seconds))
            except Exception as exc:  # one peer failing must not hide the others' results
                row = {"error": f"{type(exc).__name__}: {exc}"}
            results[name] = row
            print(json.dumps(row), flush=True)
        results["floor"] = {"down": asyncio.run(_lag(None, server, lag_seconds))}
    finally:
        server.close()
    return results


TITLE = ("7. Shipping logs into a local rsyslogd (main queue Direct): records/s the logging "
         "calls took and until all were handed over (RELP: acknowledged), records lost steady "
         "and across a 1 s collector restart, event-loop lag while the collector is down 2 s "
         "of every 3")


def table(results: dict[str, Any]) -> str:
    if "error" in results:
        return f"skipped: {results['error']}"
    lines = ["| contender | calls/s | delivered/s | lost (steady) | lost across a restart | "
             "loop lag while down, worst / p99 ms |", "|---|---|---|---|---|---|"]
    for name, row in results.items():
        if "error" in row:
            lines.append(f"| {name} | error: {row['error']} | | | | |")
            continue
        t, r, d = row.get("throughput"), row.get("restart"), row.get("down")
        lag = f"{d['lag_max_ms']} / {d['lag_p99_ms']}" if d else "-"
        if t is None:
            lines.append(f"| {name} (no logging) | | | | | {lag} |")
            continue
        if name == LOGGER_ALONE:
            lines.append(f"| {name} | {t['call_per_s']:,} | | | | |")
            continue
        lines.append(f"| {name} | {t['call_per_s']:,} | {t['delivered_per_s']:,} | {t['lost']} | "
                     f"{r['lost']} (duplicated {r['duplicated']}) | {lag} |")
    return "\n".join(lines + _ratios(results))


def _ratios(results: dict[str, Any]) -> list[str]:
    """aiolog's calls/s over SysLogHandler's, beside the most a stdlib-based handler can get."""
    def calls(name: str) -> float | None:
        row = results.get(name, {})
        return row["throughput"]["call_per_s"] if "throughput" in row else None

    stdlib, alone = calls("SysLogHandler TCP"), calls(LOGGER_ALONE)
    if not stdlib or not alone:
        return []
    lines = ["", f"ceiling (SysLogHandler TCP per call / Logger alone per call): "
                 f"{alone / stdlib:.2f}x"]
    for name in ("aiolog RELP", "aiolog TCP"):
        own = calls(name)
        if own:
            lines.append(f"{name} calls/s / SysLogHandler TCP calls/s: {own / stdlib:.2f}x")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.syslog")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--lag-seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=None, help="write syslog.json here")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.lag_seconds = 1_000, 1.5
    results = run(args.records, args.lag_seconds)
    print(table(results))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "syslog.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
