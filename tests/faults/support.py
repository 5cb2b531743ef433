"""What the fault tests share: the Binance stand-in, the pipeline's settings, the invariant wait."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from services.sim import BinanceSim, Market
from shared.config import Settings
from shared.market.binance_csv import frame_to_candles
from shared.messaging import topics
from shared.messaging.events import Candle
from shared.model.synthetic import synthetic_candles
from testkit.invariants import InvariantReport, check_invariants
from testkit.kafka import read_json, read_topic
from testkit.models import make_champion
from testkit.waiting import Watched, eventually

SYMBOL = "BTCUSDT"
INTERVAL = "5m"
STEP = 300_000
DAY_MS = 86_400_000
#: Candles before the first one the tiny model can predict (its window plus the features' lookback).
HISTORY = 60


@asynccontextmanager
async def binance(*, speed: float = 600.0, symbols: tuple[str, ...] = (SYMBOL,)) -> AsyncIterator[BinanceSim]:
    """The stand-in, in this process, two days into five days of 5m data: at 600x, 2 candles a second."""
    market = Market.generated(list(symbols), INTERVAL, days=5, seed=3)
    async with BinanceSim(market, speed=speed, start_ms=market.start_ms + 2 * DAY_MS) as sim:
        yield sim


def against(settings: Settings, sim: BinanceSim, **changes: object) -> Settings:
    """The pipeline's settings: the stand-in as Binance, one day of backfill, 5m candles."""
    return settings.model_copy(update={
        "binance_rest_url": sim.rest_url,
        "binance_ws_url": sim.ws_url,
        "backfill_days": 1,
        "interval": INTERVAL,
        "symbols": [SYMBOL],
        "publish_forming_candles": False,
        **changes,
    })


async def champion(settings: Settings, model: Path, symbol: str = SYMBOL) -> str:
    conn = await asyncpg.connect(settings.database)
    try:
        return await make_champion(conn, model, symbol, INTERVAL)
    finally:
        await conn.close()


async def span(conn: asyncpg.Connection, symbol: str = SYMBOL) -> tuple[int, int | None, int | None]:
    row = await conn.fetchrow(
        "SELECT count(*) AS n, min(open_time) AS lo, max(open_time) AS hi FROM candles WHERE symbol = $1", symbol
    )
    assert row is not None
    return int(row["n"]), row["lo"], row["hi"]


async def report(conn: asyncpg.Connection, *, until: int | None = None, predicted: bool = True,
                 symbol: str = SYMBOL) -> InvariantReport:
    """The invariant over everything stored for `symbol` (up to `until`)."""
    _, first, last = await span(conn, symbol)
    assert first is not None and last is not None, f"nothing stored for {symbol}"
    end = last if until is None else min(until, last)
    return await check_invariants(conn, symbol, INTERVAL, STEP, first, end, HISTORY if predicted else None)


async def reaches(conn: asyncpg.Connection, open_time: int, *, within: float, watch: Sequence[Watched],
                  symbol: str = SYMBOL) -> None:
    """Wait until a candle at or after `open_time` is stored."""
    async def stored() -> bool:
        last = (await span(conn, symbol))[2]
        return last is not None and last >= open_time

    await eventually(stored, f"{symbol} candles up to {open_time} in Postgres", within=within, watch=watch)


async def settled(conn: asyncpg.Connection, *, until: int, within: float, watch: Sequence[Watched],
                  predicted: bool = True) -> InvariantReport:
    """Wait until the invariant holds up to `until` (the pipeline catches up); returns the report."""
    await reaches(conn, until, within=within, watch=watch)
    latest: list[InvariantReport] = []

    async def holds() -> bool:
        latest[:] = [await report(conn, until=until, predicted=predicted)]
        return latest[0].ok

    try:
        await eventually(holds, "the invariant", within=within, every=1.0, watch=watch)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {latest[0] if latest else 'no report'}") from None
    return latest[0]


async def topic_duplicates(settings: Settings, symbol: str = SYMBOL) -> list[int]:
    """Open times that appear more than once in the `candles` topic."""
    counts = Counter(c["open_time"] for c in await read_json(settings, topics.CANDLES) if c.get("symbol") == symbol)
    return sorted(t for t, n in counts.items() if n > 1)


async def sim_now(sim: BinanceSim) -> int:
    """Open time of the newest candle the stand-in has closed."""
    await asyncio.sleep(0)
    return (sim.clock.now_ms() // STEP) * STEP - STEP


def backlog(symbol: str, count: int, *, seed: int = 5) -> list[Candle]:
    """`count` consecutive generated 5m candles of `symbol`."""
    return frame_to_candles(synthetic_candles(count, seed=seed), symbol, INTERVAL)


async def publish_candles(settings: Settings, candles: list[Candle]) -> None:
    """Into `candles` as the ingestor would (keyed by symbol, in order), as fast as Kafka takes them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, acks="all", enable_idempotence=True,
                                linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(settings.topic(topics.CANDLES), c.model_dump_json().encode(),
                                    key=topics.symbol_key(c.symbol)) for c in candles]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def offsets_of(settings: Settings, symbol: str) -> dict[int, int]:
    """Offset -> open time of `symbol`'s candles in the (one-partition) `candles` topic."""
    records = await read_topic(settings, topics.CANDLES)
    found = {}
    for record in records:
        body = json.loads(record.value)
        if isinstance(body, dict) and body.get("symbol") == symbol:
            found[record.offset] = int(body["open_time"])
    return found
