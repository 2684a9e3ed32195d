"""Scenario 3, second part: the log goes to a pipe whose reader stops for good.

Part of scenario 3 of ``python -m benchmarks`` (alone: ``python -m benchmarks.stopped_reader
[--seconds 3] [--rate 5000]``). It runs, each in a fresh
process whose stdout is a pipe that this process reads for 0.5 s and then never again (a
container's log driver that stalls): the floor (the ticker alone), aiolog's
``AsyncStreamHandler(sys.stdout)`` on asyncio and on uvloop, ``logging.StreamHandler`` and
``QueueHandler`` + ``QueueListener`` (whose listener thread writes to the same stream). A ticker
task measures the event loop's lag while ``rate`` records/s are logged in batches every 10 ms,
as in scenario 3. It prints, side by side from one run: the lag (p99, max), the records waiting
in memory at the end (aiolog's ``stats()``; the ``QueueHandler``'s queue), and how the process
ends without any shutdown call. A loop that froze is reported as such (no lag can be measured
from inside a frozen loop); a process still running 30 s after its work is killed.
Like the other scenarios, the numbers describe this machine; they gate nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._ticker import LagTicker

BATCH_PERIOD = 0.01
CONTENDERS = ("floor", "aiolog", "aiolog-uvloop", "StreamHandler", "QueueHandler")
READ_FOR = 0.5  # seconds the reader reads before it stops for good
FROZEN_AFTER = 15.0  # seconds past the logging time without a result: the loop froze
EXIT_WITHIN = 30.0  # seconds after the result to end by itself, else "hangs"


# -- the child: one contender ------------------------------------------------------------------

async def _child(name: str, seconds: float, rate: int, out: str) -> None:
    log = logging.getLogger("bench")
    log.propagate = False
    log.setLevel(logging.INFO)
    waiting: Any = lambda: 0  # noqa: E731 (records held in memory, where the contender says)
    if name.startswith("aiolog"):
        import aiolog
        handler: logging.Handler = aiolog.AsyncStreamHandler(sys.stdout)
        waiting = lambda: handler.stats()["queued"]  # type: ignore[attr-defined]  # noqa: E731
        log.addHandler(handler)
    elif name == "StreamHandler":
        log.addHandler(logging.StreamHandler(sys.stdout))
    elif name == "QueueHandler":
        records: queue.Queue[logging.LogRecord] = queue.Queue()
        listener = logging.handlers.QueueListener(records, logging.StreamHandler(sys.stdout))
        listener.start()
        log.addHandler(logging.handlers.QueueHandler(records))
        waiting = records.qsize
    for handler in log.handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ticker = LagTicker()
    per_batch = max(1, round(rate * BATCH_PERIOD))
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(BATCH_PERIOD)
        if name == "floor":
            continue
        for _ in range(per_batch):
            log.info("request %d handled in %.3f ms by %s", sent, sent * 0.001, "worker-1")
            sent += 1
    lags = await ticker.stop()
    result = {"sent": sent, "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
              "lag_max_ms": lags[-1] * 1000, "waiting": waiting()}
    Path(out).write_text(json.dumps(result))
    # And now end without shutdown(), close() or stop(), as a program that returns does.


def _run_child(name: str, seconds: float, rate: int, out: str) -> None:
    if name == "aiolog-uvloop":
        import uvloop
        uvloop.run(_child(name, seconds, rate, out))
    else:
        asyncio.run(_child(name, seconds, rate, out))


# -- the parent: one run, every contender ------------------------------------------------------

def measure(name: str, seconds: float, rate: int, work: Path) -> dict[str, Any]:
    out = work / f"{name}.json"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.stopped_reader", "--child", name,
                             "--seconds", str(seconds), "--rate", str(rate), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    reader = proc.stdout

    def read_then_stop() -> None:
        until = time.monotonic() + READ_FOR
        fd = reader.fileno()
        os.set_blocking(fd, False)
        while time.monotonic() < until:
            try:
                os.read(fd, 1 << 16)
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                return  # the contender was done first (a short run) and its pipe closed
        # ... and never again; the pipe stays open, full.

    threading.Thread(target=read_then_stop, daemon=True).start()
    deadline = time.monotonic() + seconds + FROZEN_AFTER
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not out.exists():
        proc.kill()
        proc.wait()
        reader.close()
        return {"froze": True, "end": "killed (its loop never ran again)"}
    result: dict[str, Any] = json.loads(out.read_text())
    done = time.monotonic()
    try:
        proc.wait(timeout=EXIT_WITHIN)
        result["end"] = f"exited by itself after {time.monotonic() - done:.1f} s"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        result["end"] = f"hangs at exit (killed after {EXIT_WITHIN:.0f} s)"
    reader.close()
    return result


TITLE = ("3b. The sink stops for good: stdout is a pipe whose reader stops after 0.5 s, "
         "5,000 records/s for 3 s, no shutdown call (event-loop lag in ms; records held in memory "
         "at the end; how the process ended)")


def run(seconds: float, rate: int) -> dict[str, dict[str, Any]]:
    """Every contender in turn, one fresh process each."""
    with tempfile.TemporaryDirectory() as work:
        return {name: measure(name, seconds, rate, Path(work)) for name in CONTENDERS}


def table(results: dict[str, dict[str, Any]]) -> str:
    from .report import _rows

    rows = [[name, "frozen", "frozen", "-", "-", r["end"]] if r.get("froze") else
            [name, f"{r['lag_p99_ms']:.2f}", f"{r['lag_max_ms']:.2f}", str(r["sent"]),
             str(r["waiting"]), r["end"]] for name, r in results.items()]
    return _rows(["contender", "lag p99", "lag max", "sent", "in memory", "end"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=5_000, help="records per second")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _run_child(args.child, args.seconds, args.rate, args.out)
        return
    print(TITLE + "\n" + table(run(args.seconds, args.rate)))


if __name__ == "__main__":
    main()
