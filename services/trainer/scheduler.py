"""One training per stream (stream, interval) at a time; triggers that arrive meanwhile become one more run.

A daily tick, a drift event and a manual request arriving during a run all ask for the same
thing, "a model trained on the latest data", so they are coalesced: when the run ends, one
more run starts with all their reasons, however many there were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shared.market.streams import Stream
from shared.messaging.runtime import cancel_and_wait

log = logging.getLogger(__name__)

#: One run: the stream, the reasons it serves, and when the first of them was asked (epoch ms).
Run = Callable[[Stream, list[str], int], Awaitable[object]]


class TrainingScheduler:
    def __init__(self, run: Run) -> None:
        self._run = run
        self._tasks: dict[Stream, asyncio.Task[None]] = {}
        self._pending: dict[Stream, list[str]] = {}
        self._started_ms: dict[Stream, int] = {}
        self._pending_since: dict[Stream, int] = {}

    def request(self, stream: Stream, reason: str) -> bool:
        """Ask for a run; True if it starts now, False if it joins the next one."""
        if stream in self._tasks:
            self._pending.setdefault(stream, []).append(reason)
            self._pending_since.setdefault(stream, int(time.time() * 1000))
            log.info("training of %s already running; %r will be served by the next run", stream, reason)
            return False
        self._started_ms[stream] = int(time.time() * 1000)
        name = f"train-{stream.symbol}-{stream.interval}"
        self._tasks[stream] = asyncio.create_task(self._loop(stream, [reason], self._started_ms[stream]), name=name)
        return True

    def busy(self, stream: Stream) -> bool:
        return stream in self._tasks

    def running_since(self, stream: Stream) -> int | None:
        """Wall-clock ms at which the current run of the stream started (None when idle)."""
        return self._started_ms.get(stream) if stream in self._tasks else None

    async def _loop(self, stream: Stream, reasons: list[str], requested_ms: int) -> None:
        try:
            while True:
                try:
                    await self._run(stream, reasons, requested_ms)
                except Exception:
                    log.exception("training run for %s failed", stream)
                next_reasons = self._pending.pop(stream, None)
                if not next_reasons:
                    return
                reasons = next_reasons
                self._started_ms[stream] = int(time.time() * 1000)
                requested_ms = self._pending_since.pop(stream, self._started_ms[stream])
        finally:
            self._tasks.pop(stream, None)

    async def idle(self) -> None:
        """Wait until no run is going or waiting."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the runs (a cancelled training stays `running`: the next start re-runs it); drop pending triggers."""
        self._pending.clear()
        self._pending_since.clear()
        await cancel_and_wait(list(self._tasks.values()))
