"""More streams than Binance allows on one connection (1024): the ingestor splits them over
connections, names a part in each URL and subscribes the rest by paced SUBSCRIBE requests, and
every stream's live candles arrive, none missing."""

from __future__ import annotations

import asyncpg
import pytest

from services.ingestor.stream import URL_STREAMS, split
from services.sim import BinanceSim, Market
from shared.config import Settings
from shared.market.rate_limits import MAX_STREAMS_PER_CONNECTION
from shared.market.streams import Stream
from testkit.waiting import eventually
from tests.services.ingestor.support import against, running_ingestor

SYMBOLS = [f"M{i:04d}USDT" for i in range(MAX_STREAMS_PER_CONNECTION + 76)]
MINUTE = 60_000


def test_streams_are_split_into_connections_of_at_most_1024() -> None:
    streams = [Stream(s, "1m") for s in SYMBOLS]
    parts = split(streams)
    assert [len(p) for p in parts] == [550, 550]
    assert sorted(s for p in parts for s in p) == sorted(streams)
    assert [len(p) for p in split(streams[:1024])] == [1024]
    assert [len(p) for p in split(streams * 2)] == [734, 733, 733]


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(SYMBOLS, "1m", days=0.1, seed=3)


async def test_1100_streams_over_two_connections_each_with_every_candle(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    start = market.start_ms + 20 * MINUTE + 1_000
    async with BinanceSim(market, speed=120, start_ms=start, updates=0) as sim:  # a 1m close every 0.5 s
        s = against(settings, sim, symbols=SYMBOLS, interval="1m", intervals=["1m"], history_candles={"1m": 5})
        async with running_ingestor(s) as task:
            async def live() -> bool:
                count = await db.fetchval("SELECT count(DISTINCT symbol) FROM candles WHERE open_time >= $1",
                                          start + 2 * MINUTE)
                return bool(count == len(SYMBOLS))

            await eventually(live, "live candles of every symbol", within=120, task=task)
            connections = list(sim.hub.connections)
    assert sorted(len(c.streams) for c in connections) == [550, 550]  # URL_STREAMS in the URL, the rest subscribed
    assert URL_STREAMS < 550
    rows = await db.fetch("SELECT symbol, count(*) AS n, min(open_time) AS first, max(open_time) AS last "
                          "FROM candles GROUP BY symbol")
    assert len(rows) == len(SYMBOLS)
    for row in rows:  # contiguous from the backfill through the live candles: none missing in any stream
        assert row["n"] == (row["last"] - row["first"]) // MINUTE + 1, row["symbol"]
