"""Waiting for the writer's progress without a lock that a signal handler could re-enter.

A ``threading.Condition`` or ``Event`` takes an internal lock in ``wait()`` and ``set()``; a
signal handler that runs while its own thread is inside one of those would deadlock on it (the
``logging`` docs warn about exactly this). Here each wait makes a fresh lock of its own, and the
list of waiters is changed only by ``append`` and ``pop``, which are atomic.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class Progress:
    """Wake-ups from the writer to everyone waiting for a condition to become true."""

    def __init__(self) -> None:
        self._waiters: list[Callable[[], None]] = []

    def notify(self) -> None:
        """Wake every waiter; each looks at its condition again."""
        waiters = self._waiters
        while waiters:
            try:
                wake = waiters.pop()
            except IndexError:  # another thread took the last one
                return
            wake()

    def wait(self, ready: Callable[[], bool], recheck: float = -1) -> None:
        """Block this thread until ``ready()``, looking again every ``recheck`` seconds too
        (for conditions that become true with time alone: a sink stuck for too long).

        A wait that times out leaves its gate in the list; the next ``notify()`` opens it.
        """
        while not ready():
            gate = threading.Lock()
            gate.acquire()
            self._waiters.append(gate.release)
            # Looked at after registering: a notify() between our first look and the append
            # found no waiter, but what it announced is visible now.
            if ready():
                return
            gate.acquire(timeout=recheck)

    async def wait_async(self, ready: Callable[[], bool], recheck: float | None = None) -> None:
        """Await ``ready()`` on the running loop; notify() may come from any thread.

        With ``recheck``, it looks again every ``recheck`` seconds too, as ``wait()`` does.
        """
        loop = asyncio.get_running_loop()
        while not ready():
            woken = loop.create_future()

            def wake(woken: asyncio.Future[None] = woken) -> None:
                try:
                    loop.call_soon_threadsafe(_resolve, woken)
                except RuntimeError:  # the loop closed: nobody awaits this any more
                    pass

            self._waiters.append(wake)
            if ready():
                return
            timer = None if recheck is None else loop.call_later(recheck, _resolve, woken)
            await woken
            if timer is not None:
                timer.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
