"""The stand-in's `GET /api/v3/klines` behaves like Binance's, including its errors and refusals."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import httpx
import pytest

from services.sim import BinanceSim, Market
from shared.market.klines import candle_from_rest

DAY = 86_400_000
STEP = 300_000


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.generated(["BTCUSDT", "ETHUSDT"], "5m", days=10, seed=2)


@pytest.fixture
async def sim(market: Market) -> AsyncIterator[BinanceSim]:
    # Frozen 100 s into a candle, so the newest kline is forming.
    async with BinanceSim(market, speed=0, start_ms=market.start_ms + 4 * DAY + 100_000) as running:
        yield running


async def klines(sim: BinanceSim, **params: str | int) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        return await client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "5m", **params})


async def test_pages_forward_from_start_time(sim: BinanceSim, market: Market) -> None:
    start = market.start_ms + STEP * 10
    first = (await klines(sim, startTime=start, limit=1000)).json()
    assert len(first) == 1000 and first[0][0] == start
    assert {b[0] - a[0] for a, b in itertools.pairwise(first)} == {STEP}
    second = (await klines(sim, startTime=first[-1][0] + STEP, limit=1000)).json()
    assert second[0][0] == first[-1][0] + STEP
    assert all(len(row) == 12 and isinstance(row[1], str) and isinstance(row[8], int) for row in first)


async def test_without_start_the_most_recent_come_back_and_the_last_is_still_forming(
    sim: BinanceSim, market: Market
) -> None:
    now = sim.clock.now_ms()
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        assert (await client.get("/api/v3/time")).json() == {"serverTime": now}
    rows = (await klines(sim, limit=3)).json()
    assert [r[0] for r in rows] == [now - 100_000 - 2 * STEP, now - 100_000 - STEP, now - 100_000]
    forming, full = rows[-1], market.series["BTCUSDT"].candle(market.series["BTCUSDT"].index_of(rows[-1][0]) or 0)
    assert forming[6] >= now  # closes in the future
    assert float(forming[5]) < full.volume and forming[8] < full.trades  # a third of the candle so far
    assert float(forming[2]) - float(forming[3]) <= full.high - full.low
    candle_from_rest(forming, "BTCUSDT", "5m")  # still a well-formed kline: only the clock tells
    closed = candle_from_rest(rows[-2], "BTCUSDT", "5m")
    assert closed == market.series["BTCUSDT"].candle(market.series["BTCUSDT"].index_of(rows[-2][0]) or 0).model_copy(
        update={"first_trade_id": None, "last_trade_id": None}
    )


async def test_end_time_bounds_the_answer(sim: BinanceSim, market: Market) -> None:
    end = market.start_ms + DAY
    rows = (await klines(sim, endTime=end, limit=5)).json()
    assert [r[0] for r in rows][-1] == end and len(rows) == 5


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"symbol": ""}, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
        ({"symbol": "NOPEUSDT"}, -1121, "Invalid symbol."),
        ({"symbol": "btcusdt"}, -1100, "Illegal characters found in parameter 'symbol'"),
        ({"interval": "7m"}, -1120, "Invalid interval."),
        ({"interval": "1m"}, -1120, "this stand-in serves 5m, 15m, 30m, 1h"),  # finer than its data
        ({"limit": 1001}, -1130, "Data sent for parameter 'limit' is not valid."),
        ({"startTime": "soon"}, -1100, "Illegal characters found in parameter 'startTime'"),
        ({"startTime": 2, "endTime": 1}, -1023, "Start time is greater than end time."),
    ],
)
async def test_errors_are_binance_s(sim: BinanceSim, params: dict[str, str | int], code: int, msg: str) -> None:
    response = await klines(sim, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and msg in body["msg"]


async def test_rate_limit_on_command_is_a_429_with_retry_after(sim: BinanceSim) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        assert (await client.post("/_sim/rate-limit", params={"count": 2, "retry_after": 7})).status_code == 200
        refused = [await klines(sim) for _ in range(2)]
        assert all(r.status_code == 429 and r.headers["Retry-After"] == "7" for r in refused)
        assert refused[0].json()["code"] == -1003
        assert (await klines(sim)).status_code == 200
        await client.post("/_sim/rate-limit", params={"count": 1, "status": 418})
        assert (await klines(sim)).status_code == 418
        assert (await client.post("/_sim/rate-limit", params={"status": 500})).status_code == 400
        assert (await client.get("/_sim/stats")).json()["rate_limits_served"] == 3


async def test_the_clock_can_be_read_jumped_and_sped_up(sim: BinanceSim, market: Market) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        clock = (await client.get("/_sim/clock")).json()
        assert clock["speed"] == 0 and clock["symbols"] == ["BTCUSDT", "ETHUSDT"] and clock["interval"] == "5m"
        assert clock["data_start"] == market.start_ms and clock["data_end"] == market.end_ms
        jumped = (await client.post("/_sim/clock", params={"now": market.start_ms + DAY})).json()
        assert jumped["now"] == market.start_ms + DAY
        assert (await client.post("/_sim/clock", params={"speed": "-1"})).status_code == 400
