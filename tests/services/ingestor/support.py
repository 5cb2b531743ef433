"""Helpers for the ingestor's tests: run it in-process against the stand-in, look at what it stored."""

from __future__ import annotations

import asyncio
import itertools
import json
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import asyncpg

from services.ingestor.binance import Backoff
from services.ingestor.main import serve
from services.ingestor.options import IngestOptions
from services.sim import BinanceSim
from shared.config import Settings
from shared.messaging import topics
from testkit.invariants import check_invariants
from testkit.kafka import read_topic
from testkit.waiting import eventually
from tests.support import running

# Short waits so a test spends its time on the behaviour, not on politeness towards Binance.
FAST = IngestOptions(backoff=Backoff(base=0.05, cap=0.5), idle_timeout=5.0)
STEP = 300_000  # 5m


def against(settings: Settings, sim: BinanceSim, **changes: Any) -> Settings:
    """The test's settings pointed at the stand-in."""
    return settings.model_copy(update={"binance_rest_url": sim.rest_url, "binance_ws_url": sim.ws_url, **changes})


def running_ingestor(
    settings: Settings, *, options: IngestOptions = FAST, ingest: bool = True, record: bool = True
) -> AbstractAsyncContextManager[asyncio.Task[None]]:
    """`serve()` in a task; stopped (as SIGTERM would) on exit, re-raising any failure."""
    return running(partial(serve, options=options, ingest=ingest, record=record), settings)


async def topic_open_times(settings: Settings, name: str, symbol: str = "BTCUSDT") -> list[int]:
    records = await read_topic(settings, name)
    return [body["open_time"] for body in (json.loads(r.value) for r in records) if body["symbol"] == symbol]


async def stored_open_times(db: asyncpg.Connection, symbol: str = "BTCUSDT") -> list[int]:
    rows = await db.fetch("SELECT open_time FROM candles WHERE symbol = $1 ORDER BY open_time", symbol)
    return [r["open_time"] for r in rows]


async def stored_count(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM candles"))


def steps(times: list[int]) -> set[int]:
    """The distinct differences between neighbours: {STEP} for a contiguous, duplicate-free series."""
    return {b - a for a, b in itertools.pairwise(times)}


async def assert_nothing_lost_or_doubled(db: asyncpg.Connection, symbol: str = "BTCUSDT") -> list[int]:
    """The project's data invariant over everything stored for `symbol`; returns the open times."""
    times = await stored_open_times(db, symbol)
    assert times, f"nothing stored for {symbol}"
    report = await check_invariants(db, symbol, "5m", STEP, times[0], times[-1])
    assert report.ok, str(report)
    return times


async def recorded_as_published(settings: Settings, db: asyncpg.Connection, symbol: str = "BTCUSDT") -> list[int]:
    """The stored open times of `symbol` once a recorder alone has caught up with the topic, checked
    equal to the topic's (each once, in order) and against the data invariant.

    A candle published just before the ingestor stopped is recorded by the next start (its offset
    was not committed): comparing the table with the topic right after a stop fails now and then
    (more often on a busy machine) without anything being lost."""
    published = {(body["symbol"], body["interval"], body["open_time"])
                 for body in (json.loads(r.value) for r in await read_topic(settings, topics.CANDLES))}

    async def recorded_all() -> bool:
        return await stored_count(db) == len(published)

    async with running_ingestor(settings, ingest=False) as task:
        await eventually(recorded_all, f"the recorder to catch up with {len(published)} published candles", task=task)
    stored = await assert_nothing_lost_or_doubled(db, symbol)
    assert await topic_open_times(settings, topics.CANDLES, symbol) == stored  # once each, in order
    return stored
