"""Binance's behaviours of 2025-2026 (`../shared/reference/binance.md`) met by the ingestor: a
`serverShutdown` notice means reconnect at once (the gap filled), pings are answered with their
payload, nothing floods the connection, and 403/418 are long back-offs said in one line each."""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import partial

import asyncpg
import pytest

from services.ingestor.binance import Backoff
from services.ingestor.metrics import REST_REFUSALS, WS_RECONNECTS
from services.sim import BinanceSim, Market
from shared.config import Settings
from testkit.waiting import eventually
from tests.services.ingestor.support import (
    FAST,
    STEP,
    against,
    assert_nothing_lost_or_doubled,
    recorded_as_published,
    running_ingestor,
    steps,
    stored_count,
)

DAY = 86_400_000
SPEED = 3000.0  # a 5m candle every 0.1 s


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT"], "5m", days=20, seed=12)


async def _more_than(db: asyncpg.Connection, n: int) -> bool:
    return await stored_count(db) > n


async def test_server_shutdown_reconnects_at_once_and_leaves_no_gap(
    settings: Settings, db: asyncpg.Connection, market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    reconnects = WS_RECONNECTS._value.get()
    slow_backoff = dataclasses.replace(FAST, backoff=Backoff(base=5.0, cap=5.0))  # a backoff would show
    async with BinanceSim(market, speed=SPEED, start_ms=market.start_ms + 5 * DAY + 1000,
                          ping_interval=0.3, pong_timeout=1.0) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        with caplog.at_level(logging.WARNING, logger="services.ingestor.stream"):
            async with running_ingestor(s, options=slow_backoff) as task:
                await eventually(lambda: _more_than(db, 288 + 20), "the backfill and live candles", task=task)

                async def connected() -> bool:
                    return bool(sim.hub.connections)

                for _ in range(2):
                    await eventually(connected, "the ingestor connected", task=task)
                    stored = await stored_count(db)
                    assert sim.server_shutdown() == 1
                    started = time.monotonic()
                    await eventually(partial(_more_than, db, stored + 30), "candles after the notice", task=task)
                    assert time.monotonic() - started < 5.0  # at once, not after the 5 s backoff
        assert sim.streams.dropped_for_pong == 0 and sim.streams.dropped_for_flood == 0  # pongs echoed, no flood
    assert WS_RECONNECTS._value.get() - reconnects == 2
    assert sum("announced a shutdown" in r.getMessage() for r in caplog.records) == 2
    assert steps(await recorded_as_published(s, db)) == {STEP}


@pytest.mark.parametrize("status", [403, 418])
async def test_a_firewall_refusal_or_a_ban_is_a_long_backoff_said_once(
    settings: Settings, db: asyncpg.Connection, market: Market, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    refusals = REST_REFUSALS.labels(str(status))._value.get()
    long_wait = dataclasses.replace(FAST, long_backoff=1.5)
    async with BinanceSim(market, speed=0, start_ms=market.start_ms + 5 * DAY + 1000) as sim:
        sim.rate_limit(1, retry_after=0, status=status)  # a 418 without a useful Retry-After
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        with caplog.at_level(logging.WARNING, logger="services.ingestor.binance"):
            started = time.monotonic()
            async with running_ingestor(s, options=long_wait) as task:
                await eventually(lambda: _more_than(db, 287), "the backfill after the refusal", task=task)
            waited = time.monotonic() - started
    lines = [r for r in caplog.records if f"Binance answered {status}" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and "backing off" in lines[0].getMessage()
    assert REST_REFUSALS.labels(str(status))._value.get() - refusals == 1
    assert status == 418 or waited >= 1.5  # 403: the long back-off, not the 0.05 s one
    assert steps(await assert_nothing_lost_or_doubled(db)) == {STEP}


async def test_the_backfill_stays_under_the_request_weight_limit(settings: Settings, db: asyncpg.Connection,
                                                                  market: Market) -> None:
    """A stand-in allowing 30 weight per 2 s window (6,000 a minute on Binance, scaled down), a
    backfill of 29 pages of 10 (58 weight): the ingestor reads `X-MBX-USED-WEIGHT-1M` and waits for
    the next window rather than run into a 429."""
    refusals = REST_REFUSALS.labels("429")._value.get()
    paced = dataclasses.replace(FAST, page_limit=10, weight_limit=30, weight_window=2.0)
    async with BinanceSim(market, speed=0, start_ms=market.start_ms + 5 * DAY + 1000, weight_limit=30,
                          weight_window=2.0) as sim:
        s = against(settings, sim, backfill_days=1, symbols=["BTCUSDT"])
        started = time.monotonic()
        async with running_ingestor(s, options=paced) as task:
            await eventually(lambda: _more_than(db, 287), "the paced backfill", task=task, within=60)
        took = time.monotonic() - started
        assert sim.weights.refused == 0
    assert REST_REFUSALS.labels("429")._value.get() == refusals
    assert took > 2.0  # it did wait for a window: 58 weight at 24 (80% of 30) a window is three windows
    assert steps(await assert_nothing_lost_or_doubled(db)) == {STEP}


def test_the_weight_budget_waits_for_the_next_window_only_past_its_share() -> None:
    from services.ingestor.binance import WeightBudget

    budget = WeightBudget(limit=100, window=60.0, share=0.8)
    assert budget.wait_before(2, now=121.0) == 0.0  # nothing known yet
    budget.observe(78, now=120.5)
    assert budget.wait_before(2, now=121.0) == 0.0  # 80 of 100: at the share, not past it
    budget.observe(80, now=121.0)
    assert budget.wait_before(2, now=121.0) == pytest.approx(59.05)  # to the next minute (and a margin)
    assert budget.wait_before(2, now=180.1) == 0.0  # a new window: the count starts again
