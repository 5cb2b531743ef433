"""Waiting for a condition with a deadline while watching the service under test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol


class Watched(Protocol):
    def check_alive(self) -> None:
        """Raise if the process ended when it should still run."""


async def eventually(
    check: Callable[[], Awaitable[object]],
    what: str,
    *,
    within: float = 60.0,
    every: float = 0.1,
    task: asyncio.Task[Any] | None = None,
    watch: Iterable[Watched] = (),
) -> float:
    """Poll `check` until it returns something true; returns the seconds it took.

    Fails naming `what` after `within` seconds, or at once when `task` (a service run in this
    process) has ended, with its exception, or when a watched process has died (its log says
    why, which a timeout would hide).
    """
    watched = list(watch)
    started = time.monotonic()
    while True:
        for process in watched:
            process.check_alive()
        if await check():
            return time.monotonic() - started
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"the service stopped while waiting for {what}")
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(every)
