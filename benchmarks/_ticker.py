"""The loop-lag ticker of the benchmarks (scenario 3's stall runs and stopped reader)."""

from __future__ import annotations

import asyncio
import time

TICK = 0.001  # seconds the lag ticker sleeps


class LagTicker:
    """A task on the running loop that sleeps ``TICK`` at a time and keeps how late each
    wake-up came: the loop's lag, whatever else runs on it."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        clock = time.perf_counter
        while not self._stop.is_set():
            start = clock()
            await asyncio.sleep(TICK)
            self.lags.append(clock() - start - TICK)

    async def stop(self) -> list[float]:
        """Stop ticking; the lags, sorted."""
        self._stop.set()
        await self._task
        self.lags.sort()
        return self.lags
