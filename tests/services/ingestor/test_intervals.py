"""Several intervals on one ingestor: each stream backfills its own history, one websocket carries
them all, and a restart leaves no hole and no duplicate in any of them."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest

from services.sim import BinanceSim, Market
from shared.config import Settings, interval_ms
from shared.messaging import topics
from shared.storage.candle_store import caught_up_through
from testkit.invariants import check_invariants
from testkit.kafka import read_topic
from testkit.waiting import eventually
from tests.services.ingestor.support import against, running_ingestor

DAY = 86_400_000
SPEED = 12_000.0  # a 5m candle every 25 ms, an hour every 0.3 s, a day every 7.2 s
INTERVALS = ["5m", "1h", "1d"]


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT"], "5m", days=40, seed=5)


async def stored(db: asyncpg.Connection, interval: str) -> list[int]:
    rows = await db.fetch("SELECT open_time FROM candles WHERE symbol = 'BTCUSDT' AND interval = $1 "
                          "ORDER BY open_time", interval)
    return [r["open_time"] for r in rows]


async def test_three_intervals_backfill_stream_and_survive_a_restart(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    start = market.start_ms + 20 * DAY + 1_000
    async with BinanceSim(market, speed=SPEED, start_ms=start) as sim:
        s = against(settings, sim, intervals=INTERVALS, interval="5m", symbols=["BTCUSDT"],
                    history_candles={"5m": 288, "1h": 72, "1d": 0})
        async with running_ingestor(s) as task:
            async def backfilled() -> bool:  # published through the mark, and recorded
                for interval in INTERVALS:
                    mark, times = await caught_up_through(db, "BTCUSDT", interval), await stored(db, interval)
                    if mark is None or not times or times[-1] < mark:
                        return False
                return True

            await eventually(backfilled, "every stream's backfill", task=task)
            first_days = await stored(db, "1d")

            async def days_after(n: int) -> bool:
                return len(await stored(db, "1d")) >= len(first_days) + n

            await eventually(lambda: days_after(1), "a live daily candle", task=task, within=30)
        await asyncio.sleep(1.0)  # stopped while candles of every interval keep closing
        async with running_ingestor(s) as task:
            await eventually(lambda: days_after(2), "another daily candle after the restart", task=task, within=30)
        sim_now = sim.clock.now_ms()

    async def recorded_all() -> bool:  # candles published just before the stop are recorded by the next start
        return len(await read_topic(s, topics.CANDLES)) == await db.fetchval("SELECT count(*) FROM candles")

    async with running_ingestor(s, ingest=False) as task:
        await eventually(recorded_all, "the recorder caught up with the topic", task=task)

    # Backfill depth per interval: 288 of 5m, 72 of 1h, every day the data has (all of 1d).
    assert first_days[0] == market.start_ms and len(first_days) == 20
    for interval in INTERVALS:
        step = interval_ms(interval)
        times = await stored(db, interval)
        assert {b - a for a, b in itertools.pairwise(times)} == {step}, interval  # no hole, no duplicate
        assert times[-1] + step - 1 < sim_now, interval  # closed candles only
        report = await check_invariants(db, "BTCUSDT", interval, step, times[0], times[-1])
        assert report.ok, f"{interval}: {report}"
        published = [r for r in await read_topic(s, topics.CANDLES) if f'"interval":"{interval}"' in r.value.decode()]
        assert len(published) == len(times), interval  # once each in the topic too
    # The clock ran on while the ingestor started (12,000x: 20 minutes of it per 0.1 s).
    hours, fives = await stored(db, "1h"), await stored(db, "5m")
    assert 0 <= hours[0] - (start // 3_600_000 - 72) * 3_600_000 <= 3_600_000
    assert 0 <= fives[0] - (start // 300_000 - 288) * 300_000 <= 30 * 300_000
    # The 1d rows are the 5m rows aggregated: check one day against the stored 5m candles.
    day = first_days[-1] + DAY
    agg = await db.fetchrow("SELECT max(high) AS high, min(low) AS low, sum(trades) AS trades FROM candles "
                            "WHERE symbol = 'BTCUSDT' AND interval = '5m' AND open_time >= $1 AND open_time < $2",
                            day, day + DAY)
    row = await db.fetchrow("SELECT high, low, trades FROM candles WHERE symbol = 'BTCUSDT' AND interval = '1d' "
                            "AND open_time = $1", day)
    assert row is not None and (row["high"], row["low"], row["trades"]) == (agg["high"], agg["low"], agg["trades"])
