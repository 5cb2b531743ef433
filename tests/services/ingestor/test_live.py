"""The live stream at high speed: it keeps adding candles, survives drops and restarts, and parks
malformed klines in dead-letter, with no gap and no duplicate in the topic or the table."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import asyncpg
import httpx
import pytest

from services.ingestor.binance import Backoff
from services.ingestor.metrics import GAP_FILLED, WS_RECONNECTS
from services.sim import BinanceSim, Market
from shared.config import Settings
from shared.messaging import topics
from testkit.kafka import read_topic
from testkit.waiting import eventually
from tests.services.ingestor.support import (
    FAST,
    STEP,
    against,
    recorded_as_published,
    running_ingestor,
    steps,
    stored_count,
    topic_open_times,
)

DAY = 86_400_000
SPEED = 3000.0  # a 5m candle every 0.1s


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT", "ETHUSDT"], "5m", days=30, seed=11)


def _start(market: Market) -> int:
    return market.start_ms + 5 * DAY + 1_000


async def _more_than(db: asyncpg.Connection, n: int) -> bool:
    return await stored_count(db) > n


async def _wait_for_more(db: asyncpg.Connection, n: int, task: asyncio.Task[None]) -> None:
    count = await stored_count(db)
    await eventually(lambda: _more_than(db, count + n), f"{n} more stored candles", task=task)


async def test_live_stream_keeps_adding_contiguous_candles_for_every_symbol(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    async with BinanceSim(market, speed=SPEED, start_ms=_start(market)) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT", "ETHUSDT"])
        async with running_ingestor(s) as task:
            await eventually(lambda: _more_than(db, 2 * 288), "the backfill", task=task)
            after_backfill = await stored_count(db)
            await eventually(lambda: _more_than(db, after_backfill + 2 * 40), "40 live candles per symbol", task=task)
        sim_now = sim.clock.now_ms()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        stored = await recorded_as_published(s, db, symbol)
        assert steps(stored) == {STEP}, symbol
        assert stored[-1] + STEP - 1 < sim_now  # only closed candles
    live = await read_topic(s, topics.CANDLES_LIVE)
    assert live, "in-progress candles go to candles-live"


async def test_dropped_websocket_leaves_no_gap_and_no_duplicate(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    reconnects = WS_RECONNECTS._value.get()
    filled = GAP_FILLED._value.get()
    # Reconnecting takes 0.3-0.6 s: at least three candles close while the socket is down.
    slow_reconnect = dataclasses.replace(FAST, backoff=Backoff(base=0.6, cap=0.6))
    async with BinanceSim(market, speed=SPEED, start_ms=_start(market)) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        async with running_ingestor(s, options=slow_reconnect) as task:
            await eventually(lambda: _more_than(db, 288), "the backfill", task=task)

            async def connected() -> bool:
                return bool(sim.hub.connections)

            for round_ in range(3):
                await _wait_for_more(db, 20, task)
                await eventually(connected, "the ingestor connected", task=task)
                async with httpx.AsyncClient() as client:
                    dropped = (await client.post(f"{sim.rest_url}/_sim/drop-connections")).json()["dropped"]
                assert dropped == 1, round_
            await _wait_for_more(db, 20, task)
    stored = await recorded_as_published(s, db)
    assert steps(stored) == {STEP}
    assert WS_RECONNECTS._value.get() - reconnects >= 3
    assert GAP_FILLED._value.get() > filled  # candles closed while disconnected came over REST


async def test_restarted_ingestor_resumes_without_duplicates(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    async with BinanceSim(market, speed=SPEED, start_ms=_start(market)) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        # First run publishes but does not record: the restart must resume from the topic,
        # not re-backfill from the (empty) table.
        async with running_ingestor(s, record=False) as task:

            async def published_some() -> bool:
                return len(await topic_open_times(s, topics.CANDLES)) > 288 + 20

            await eventually(published_some, "a backfill and some live candles", task=task)
        published = await topic_open_times(s, topics.CANDLES)
        async with running_ingestor(s) as task:
            await eventually(lambda: _more_than(db, len(published) + 20), "candles after the restart", task=task)
        async with running_ingestor(s) as task:  # and once more, now resuming from the table
            count = await stored_count(db)
            await eventually(lambda: _more_than(db, count + 20), "candles after the second restart", task=task)
    in_topic = await recorded_as_published(s, db)
    assert in_topic[: len(published)] == published
    assert steps(in_topic) == {STEP}


async def test_malformed_klines_go_to_dead_letter_and_the_stream_goes_on(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    kinds = {
        "high_low": "below low",
        "nan": "not a finite number",
        "negative_volume": "volume is negative",
        "unknown_symbol": "unknown symbol 'NOSUCHCOIN'",
        "misaligned": "not on the 5m grid",
        "not_json": "not JSON",
    }
    async with BinanceSim(market, speed=SPEED, start_ms=_start(market)) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        async with running_ingestor(s) as task:
            await eventually(lambda: _more_than(db, 288 + 5), "the backfill and a few live candles", task=task)
            async with httpx.AsyncClient() as client:
                for kind in kinds:
                    response = await client.post(f"{sim.rest_url}/_sim/malformed", params={"kind": kind})
                    assert response.status_code == 200, response.text

            async def all_dead_lettered() -> bool:
                return len(await read_topic(s, topics.DEAD_LETTER)) >= len(kinds)

            await eventually(all_dead_lettered, "six dead letters", task=task)
            count = await stored_count(db)
            await eventually(lambda: _more_than(db, count + 10), "candles after the bad ones", task=task)
    letters = [json.loads(r.value) for r in await read_topic(s, topics.DEAD_LETTER)]
    assert len(letters) == len(kinds)
    reasons = [letter["reason"] for letter in letters]
    for expected in kinds.values():
        assert sum(expected in reason for reason in reasons) == 1, (expected, reasons)
    assert all(letter["source_topic"].startswith("binance-ws") and letter["payload"] for letter in letters)
    stored = await recorded_as_published(s, db)
    assert steps(stored) == {STEP}


@pytest.mark.parametrize("who", ["server", "client"])
async def test_connection_lifetime_limits_and_pings_leave_no_gap(
    settings: Settings, db: asyncpg.Connection, market: Market, who: str
) -> None:
    """Binance closes a connection after 24 hours and pings every 20 s; here both are squeezed into
    a second: the server cuts (or the ingestor rotates) connections and pings fast, without loss."""
    reconnects = WS_RECONNECTS._value.get()
    server_age = 1.0 if who == "server" else 3600.0
    options = FAST if who == "server" else dataclasses.replace(FAST, max_connection_age=1.0)
    async with BinanceSim(market, speed=SPEED, start_ms=_start(market), max_connection_age=server_age,
                          ping_interval=0.2) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        async with running_ingestor(s, options=options) as task:

            async def reconnected_twice() -> bool:
                return WS_RECONNECTS._value.get() - reconnects >= 2

            await eventually(reconnected_twice, "two reconnects", task=task)
            await _wait_for_more(db, 10, task)
        assert sim.hub.total_connections >= 3
    stored = await recorded_as_published(s, db)
    assert steps(stored) == {STEP}
