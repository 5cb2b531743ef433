"""The stand-in's clock: a "now" inside the data that advances `speed` times faster than real time.

Everything the stand-in says about time (REST's newest kline, `/api/v3/time`, each websocket
event's `E`) comes from here, never from the machine's clock, so a 600x demo behaves like Binance
would in 600x less time. Speed 0 freezes the clock (tests that need an exact "now").
"""

from __future__ import annotations

import asyncio
import time


class SimClock:
    def __init__(self, start_ms: int, speed: float, end_ms: int | None = None) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        self.end_ms = end_ms
        self._anchor_sim = start_ms
        self._anchor_real = time.monotonic()
        self.speed = speed
        self._changed = asyncio.Event()

    def now_ms(self) -> int:
        """The simulated epoch milliseconds, clamped to the end of the data."""
        sim = self._anchor_sim + int((time.monotonic() - self._anchor_real) * 1000.0 * self.speed)
        return min(sim, self.end_ms) if self.end_ms is not None else sim

    def set(self, *, now_ms: int | None = None, speed: float | None = None) -> None:
        """Jump to `now_ms` and/or change speed from here on; sleepers re-plan."""
        current = self.now_ms()
        self._anchor_sim = current if now_ms is None else now_ms
        self._anchor_real = time.monotonic()
        if speed is not None:
            if speed < 0:
                raise ValueError("speed must not be negative")
            self.speed = speed
        self._changed.set()
        self._changed = asyncio.Event()

    def seconds_until(self, sim_ms: int) -> float | None:
        """Real seconds until the clock reaches `sim_ms`; None if it never will at this speed."""
        now = self.now_ms()
        if now >= sim_ms:
            return 0.0
        if self.speed == 0 or (self.end_ms is not None and sim_ms > self.end_ms):
            return None
        return (sim_ms - now) / 1000.0 / self.speed

    def wall_time_of(self, sim_ms: int) -> float:
        """The wall-clock time (`time.time()`) at which the clock shows `sim_ms`, at the current speed."""
        if self.speed == 0:
            raise ValueError("a frozen clock never reaches another time")
        real_offset = (sim_ms - self._anchor_sim) / 1000.0 / self.speed
        return time.time() - (time.monotonic() - self._anchor_real) + real_offset

    async def sleep_until(self, sim_ms: int) -> None:
        """Return once the clock shows at least `sim_ms` (re-planning when the clock is changed)."""
        while True:
            wait = self.seconds_until(sim_ms)
            if wait == 0.0:
                return
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=None if wait is None else wait + 0.0005)
            except TimeoutError:
                pass
