"""What runs inside one measured process: ``python -m benchmarks.workloads SCENARIO ...``.

Each measurement gets a fresh interpreter, so no contender inherits another's handlers, threads
or warmed caches. The result is one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from ._ticker import LagTicker
from .contenders import BY_NAME, Contender, Opened, run_on_loop

# The same message in each contender's style of taking arguments.
MESSAGE = {"percent": "request %d handled in %.3f ms by %s",
           "brace": "request {} handled in {:.3f} ms by {}",
           "mapping": "request %(a)d handled in %(b).3f ms by %(c)s"}
RECORD_MARK = b" handled in "  # in every rendering of MESSAGE
SHARED_MESSAGE = {"percent": "w%d seq %d at %.6f", "brace": "w{} seq {} at {:.6f}",
                  "mapping": "w%(a)d seq %(b)d at %(c).6f"}
YIELD_EVERY = 100  # records between yields to the loop, as a service's handlers would interleave
BATCH_PERIOD = 0.01  # seconds between batches of the steady producer


async def _log_burst(opened: Opened, records: int) -> None:
    info, message = opened.info, MESSAGE[opened.style]
    for i in range(records):
        if opened.awaits:
            await info(message, i, i * 0.001, "worker-1")
        else:
            info(message, i, i * 0.001, "worker-1")
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)


async def throughput(contender: Contender, path: str, records: int, max_bytes: int) -> dict[str, Any]:
    """Seconds from the first call until every record is on disk and the handler is closed."""
    opened = await contender.open(path, max_bytes)
    start = time.perf_counter()
    await _log_burst(opened, records)
    await opened.close()
    return {"seconds": time.perf_counter() - start}


async def per_call(contender: Contender, path: str, records: int) -> dict[str, Any]:
    """How long each log call keeps the loop, in microseconds."""
    opened = await contender.open(path, 0)
    info, message = opened.info, MESSAGE[opened.style]
    clock = time.perf_counter_ns
    costs = []
    for i in range(records):
        if opened.awaits:
            start = clock()
            await info(message, i, i * 0.001, "worker-1")
        else:
            start = clock()
            info(message, i, i * 0.001, "worker-1")
        costs.append(clock() - start)
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    await opened.close()
    costs.sort()
    return {"p50_us": _pick(costs, 0.50) / 1000, "p99_us": _pick(costs, 0.99) / 1000,
            "max_us": costs[-1] / 1000}


async def stall(contender: Contender | None, path: str, seconds: float, rate: int) -> dict[str, Any]:
    """Loop lag while ``rate`` records/s go to a FIFO whose reader keeps pausing.

    ``contender=None`` measures the floor: the same ticker with nothing logged.
    """
    if contender is None:
        fifo = open(path, "ab")  # the reader waits for a writer to come and go
        opened = None
    else:
        opened = await contender.open(path, 0)
    ticker = LagTicker()
    sent = 0
    per_batch = max(1, round(rate * BATCH_PERIOD))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(BATCH_PERIOD)
        if opened is None:
            continue
        message = MESSAGE[opened.style]
        for _ in range(per_batch):
            if opened.awaits:
                await opened.info(message, sent, sent * 0.001, "worker-1")
            else:
                opened.info(message, sent, sent * 0.001, "worker-1")
            sent += 1
    lags = await ticker.stop()
    if opened is None:
        fifo.close()
    else:
        await opened.close()
    return {"sent": sent, "lag_p99_ms": _pick(lags, 0.99) * 1000, "lag_max_ms": lags[-1] * 1000}


async def shared(contender: Contender, path: str, records: int, max_bytes: int, worker: int,
                 start_at: float) -> dict[str, Any]:
    """One of several processes writing one rotating file; records carry their creation time."""
    opened = await contender.open(path, max_bytes)
    info, message = opened.info, SHARED_MESSAGE[opened.style]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    start = time.time()
    for i in range(records):
        if opened.awaits:
            await info(message, worker, i, time.time())
        else:
            info(message, worker, i, time.time())
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    await opened.close()
    return {"start": start, "end": time.time()}


async def timed(contender: Contender, path: str, seconds: float, rate: int, worker: int,
                start_at: float) -> dict[str, Any]:
    """One of several processes logging ``rate`` records/s into one file rotated every second.

    The producer is paced like a service's traffic, not a burst: the question is where each
    record lands when rotations happen under steady load, so a peer whose calls wait logs fewer.
    """
    opened = await contender.open(path, 0, when="S")
    info, message = opened.info, SHARED_MESSAGE[opened.style]
    per_batch = max(1, round(rate * BATCH_PERIOD))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    sent = 0
    start = time.time()
    end = start + seconds
    while time.time() < end:
        await asyncio.sleep(BATCH_PERIOD)
        for _ in range(per_batch):
            if opened.awaits:
                await info(message, worker, sent, time.time())
            else:
                info(message, worker, sent, time.time())
            sent += 1
    await opened.close()
    return {"sent": sent, "start": start, "end": time.time()}


def fifo_reader(path: str, stall_seconds: float, period: float) -> int:
    """Read a FIFO, pausing ``stall_seconds`` in every ``period``; return the records received.

    A record is a whole line carrying the message: a contender that writes stray newlines
    (picologging's corrupt ``asctime``) must not be credited with extra records.
    """
    fd = os.open(path, os.O_RDONLY)
    start = time.monotonic()
    count = 0
    partial = b""
    while True:
        phase = (time.monotonic() - start) % period
        if phase >= period - stall_seconds:
            time.sleep(period - phase)
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            return count
        *lines, partial = (partial + data).split(b"\n")
        count += sum(RECORD_MARK in line for line in lines)


def _pick(values: list[Any], quantile: float) -> Any:
    return values[min(len(values) - 1, int(len(values) * quantile))]


def main(argv: list[str]) -> None:
    scenario, name, params = argv[0], argv[1], json.loads(argv[2])
    if scenario == "fifo-reader":
        print(json.dumps({"received": fifo_reader(**params)}))
        return
    contender = BY_NAME.get(name)
    workload = {"throughput": throughput, "per_call": per_call, "stall": stall,
                "shared": shared, "timed": timed}[scenario]
    runner = contender or BY_NAME["aiolog"]  # the floor runs on the default loop
    result = run_on_loop(runner, lambda: workload(contender, **params))  # type: ignore[operator]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
