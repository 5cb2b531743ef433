"""One training per symbol at a time; triggers that arrive meanwhile become one more run.

A daily tick, a drift event and a manual request arriving during a run all ask for the same
thing, "a model trained on the latest data", so they are coalesced: when the run ends, one
more run starts with all their reasons, however many there were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shared.messaging.runtime import cancel_and_wait

log = logging.getLogger(__name__)

Run = Callable[[str, list[str]], Awaitable[object]]


class TrainingScheduler:
    def __init__(self, run: Run) -> None:
        self._run = run
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, list[str]] = {}
        self._started_ms: dict[str, int] = {}

    def request(self, symbol: str, reason: str) -> bool:
        """Ask for a run; True if it starts now, False if it joins the next one."""
        if symbol in self._tasks:
            self._pending.setdefault(symbol, []).append(reason)
            log.info("training of %s already running; %r will be served by the next run", symbol, reason)
            return False
        self._started_ms[symbol] = int(time.time() * 1000)
        self._tasks[symbol] = asyncio.create_task(self._loop(symbol, [reason]), name=f"train-{symbol}")
        return True

    def busy(self, symbol: str) -> bool:
        return symbol in self._tasks

    def running_since(self, symbol: str) -> int | None:
        """Wall-clock ms at which the current run of `symbol` started (None when idle)."""
        return self._started_ms.get(symbol) if symbol in self._tasks else None

    async def _loop(self, symbol: str, reasons: list[str]) -> None:
        try:
            while True:
                try:
                    await self._run(symbol, reasons)
                except Exception:
                    log.exception("training run for %s failed", symbol)
                next_reasons = self._pending.pop(symbol, None)
                if not next_reasons:
                    return
                reasons = next_reasons
                self._started_ms[symbol] = int(time.time() * 1000)
        finally:
            self._tasks.pop(symbol, None)

    async def idle(self) -> None:
        """Wait until no run is going or waiting."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the runs (a cancelled training stays `running`: the next start re-runs it); drop pending triggers."""
        self._pending.clear()
        await cancel_and_wait(list(self._tasks.values()))
