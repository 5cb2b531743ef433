"""Backfill over REST from the stand-in: exactly the closed candles, contiguous, never the forming one."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from services.ingestor.metrics import REST_REFUSALS
from services.sim import BinanceSim, Market
from shared.config import Settings
from shared.market.klines import align_down
from testkit.waiting import eventually
from tests.services.ingestor.support import STEP, against, running_ingestor, steps, stored_count, stored_open_times

DAY = 86_400_000


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT"], "5m", days=10, seed=3)


async def test_three_day_backfill_gives_864_contiguous_closed_rows(
    settings: Settings, db: asyncpg.Connection, market: Market
) -> None:
    # A frozen clock in the middle of a candle: that candle is forming, with partial values.
    now = market.start_ms + 5 * DAY + 150_000
    async with BinanceSim(market, speed=0, start_ms=now) as sim:
        s = against(settings, sim, backfill_days=3)
        async with running_ingestor(s) as task:
            await eventually(lambda: _count_is(db, 864), "864 stored candles", task=task)
    times = await stored_open_times(db)
    assert len(times) == 864
    assert steps(times) == {STEP}
    assert times[0] == align_down(now - 3 * DAY, STEP)
    assert times[-1] == align_down(now, STEP) - STEP  # the forming candle was not stored
    # Stored values are the full candle, not a half-built one.
    series = market.series["BTCUSDT"]
    last = series.candle(series.index_of(times[-1]) or 0)
    row = await db.fetchrow("SELECT * FROM candles WHERE open_time = $1", times[-1])
    assert (row["high"], row["low"], row["close"], row["volume"]) == (last.high, last.low, last.close, last.volume)
    assert row["trades"] == last.trades and row["close_time"] == last.close_time


async def test_rate_limit_is_waited_out(settings: Settings, db: asyncpg.Connection, market: Market,
                                        caplog: pytest.LogCaptureFixture) -> None:
    now = market.start_ms + 5 * DAY + 10_000
    refusals_before = REST_REFUSALS.labels("429")._value.get()
    async with BinanceSim(market, speed=0, start_ms=now) as sim:
        sim.rate_limit(2, retry_after=1)
        s = against(settings, sim, backfill_days=1)
        with caplog.at_level(logging.WARNING, logger="services.ingestor.binance"):
            async with running_ingestor(s) as task:
                await eventually(lambda: _count_is(db, 288), "288 stored candles", task=task)
        assert sim.faults.served_rate_limits == 2
    assert REST_REFUSALS.labels("429")._value.get() - refusals_before == 2
    assert sum("Retry-After" in r.getMessage() for r in caplog.records) == 2
    assert steps(await stored_open_times(db)) == {STEP}


async def test_a_symbol_binance_rejects_is_left_out_and_the_rest_flows(
    settings: Settings, db: asyncpg.Connection, market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    now = market.start_ms + 5 * DAY
    async with BinanceSim(market, speed=0, start_ms=now) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["NOPEUSDT", "BTCUSDT"])
        with caplog.at_level(logging.ERROR):
            async with running_ingestor(s) as task:
                await eventually(lambda: _count_is(db, 288), "288 stored candles", task=task)
    assert any("NOPEUSDT" in r.getMessage() and "Invalid symbol" in r.getMessage() for r in caplog.records)


async def test_unreachable_binance_is_logged_and_retried(settings: Settings, unused_tcp_port: int,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    s = settings.model_copy(update={"binance_rest_url": f"http://127.0.0.1:{unused_tcp_port}",
                                    "binance_ws_url": f"ws://127.0.0.1:{unused_tcp_port}"})

    async def retried_three_times() -> bool:
        return sum("cannot be reached" in r.getMessage() for r in caplog.records) >= 3

    with caplog.at_level(logging.WARNING, logger="services.ingestor.binance"):
        async with running_ingestor(s) as task:
            await eventually(retried_three_times, "three retry log lines", task=task)
            assert not task.done()
    line = next(r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage())
    assert f"127.0.0.1:{unused_tcp_port}" in line and "retrying in" in line


async def _count_is(db: asyncpg.Connection, n: int) -> bool:
    count = await stored_count(db)
    assert count <= n, f"{count} rows stored, expected {n}"
    return count == n

