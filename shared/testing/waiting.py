"""Waiting for a condition with a deadline while watching the service processes under test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from shared import kafka_tools


class Watched(Protocol):
    def check_alive(self) -> None:
        """Raise if the process ended when it should still run."""


async def eventually(
    check: Callable[[], Awaitable[object]],
    what: str,
    *,
    within: float = 60.0,
    every: float = 0.2,
    watch: Iterable[Watched] = (),
) -> float:
    """`shared.kafka_tools.eventually`, failing at once when a watched process has died (its log
    says why, which a timeout would hide)."""
    watched = list(watch)

    async def alive_and_true() -> object:
        for process in watched:
            process.check_alive()
        return await check()

    return await kafka_tools.eventually(alive_and_true, what, within=within, every=every)
