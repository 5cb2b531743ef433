"""The read endpoints at wire speed: bodies encoded without per-row validation are still exactly
what their response models say, an unchanged page is a 304, and the newest prediction kept
between requests, and the pages kept, change when a newer one is announced on Kafka."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
from pydantic import BaseModel

from services.gateway.app import create_app
from services.gateway.cache import StreamCache
from services.gateway.schemas import CandlePage, FuturePage, LatestPrediction, SeriesPage
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Prediction
from testkit.waiting import eventually
from tests.services.gateway.conftest import running, wait_kafka_connected
from tests.services.gateway.seed import CHAMPION, STEP, Seeded
from tests.services.predictor.support import publish


def as_the_model_says(model: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """The body through its response model and back: any missing, extra or mistyped field differs."""
    return model.model_validate(body, strict=False).model_dump(mode="json")


async def test_fast_bodies_are_exactly_their_response_models(client: httpx.AsyncClient, seeded: Seeded,
                                                             db: asyncpg.Connection) -> None:
    await db.execute("UPDATE futures SET intervals = $1::jsonb WHERE time = $2",
                     json.dumps({"close_80": [1.5, 2.5], "close_95": [1.0, 3.0]}), seeded.live_times[-1])
    for path, model in (("/candles", CandlePage), ("/series", SeriesPage), ("/futures", FuturePage),
                        ("/predictions/latest", LatestPrediction)):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body == as_the_model_says(model, body), path
    futures = (await client.get("/futures")).json()["items"]
    assert [row["intervals"] for row in futures if row["time"] == seeded.live_times[-1]] == [
        {"close_80": [1.5, 2.5], "close_95": [1.0, 3.0]}]


async def test_an_unchanged_page_is_a_304_and_a_changed_one_is_not(gateway_settings: Settings, seeded: Seeded,
                                                                     db: asyncpg.Connection) -> None:
    app = create_app(gateway_settings)
    now = [0.0]
    app.state.cache = StreamCache(clock=lambda: now[0])
    async with running(app) as client:
        params = {"start": seeded.live_times[0], "end": seeded.live_times[-1] + STEP}
        first = await client.get("/series", params=params)
        etag = first.headers["etag"]
        again = await client.get("/series", params=params, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = await client.get("/candles", params=params, headers={"If-None-Match": etag})
        assert other.status_code == 200 and other.headers["etag"] != etag  # another page, another tag
        await db.execute("UPDATE candles SET close = close + 1 WHERE open_time = $1", seeded.live_times[-1])
        kept = await client.get("/series", params=params, headers={"If-None-Match": etag})
        assert kept.status_code == 304  # kept up to a second, unless a prediction is announced
        now[0] += 2.5  # past twice the ttl, not even while it is read again
        changed = await client.get("/series", params=params, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.json()["items"][-1]["close"] == first.json()["items"][-1]["close"] + 1


async def test_the_kept_latest_prediction_and_pages_change_when_a_newer_one_is_announced(
    gateway_settings: Settings, seeded: Seeded, db: asyncpg.Connection
) -> None:
    app = create_app(gateway_settings)
    async with running(app) as client:
        cache: StreamCache = app.state.cache
        cache.ttl = 3600  # only the announcement may refresh them here
        await wait_kafka_connected(app.state)
        first = (await client.get("/predictions/latest")).json()
        assert first["time"] == seeded.next_time
        page = (await client.get("/series")).json()
        await db.execute("UPDATE candles SET close = close + 1 WHERE open_time = $1", seeded.live_times[-1])
        newer = seeded.next_time + STEP
        await db.execute(
            """INSERT INTO futures (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close,
                   pred_amplitude, p_up, model_version)
               VALUES ($1, $2, $3, $4, 1, 2, 0.5, 1.5, 0.1, 0.7, $5)""",
            seeded.symbol, seeded.interval, newer, seeded.next_time, CHAMPION)
        assert (await client.get("/predictions/latest")).json()["time"] == first["time"]  # kept: not announced
        assert (await client.get("/series")).json() == page
        announced = Prediction(symbol=seeded.symbol, interval=seeded.interval, base_time=seeded.next_time,
                               target_time=newer, open=1, high=2, low=0.5, close=1.5, amplitude=0.1, p_up=0.7,
                               model_version=CHAMPION, predicted_at=0)

        async def refreshed() -> bool:
            return bool((await client.get("/predictions/latest")).json()["time"] == newer)

        async def announce_until_heard() -> bool:  # the live consumer starts at the latest offset
            await publish(gateway_settings, topics.PREDICTIONS, [announced])
            await asyncio.sleep(0.5)
            return await refreshed()

        await eventually(announce_until_heard, "the announced prediction to be served")
        assert (await client.get("/series")).json()["items"][-1]["close"] == page["items"][-1]["close"] + 1


def test_a_read_begun_before_an_announcement_cannot_put_back_what_it_read() -> None:
    now = [0.0]
    latest = StreamCache(ttl=1.0, clock=lambda: now[0])
    stream = ("BTCUSDT", "5m")
    generation = latest.generation(stream)  # a request starts reading the store...
    latest.announced(stream)  # ...a newer prediction is announced meanwhile...
    latest.put(stream, generation, {"time": 1})  # ...and what it read is not kept
    assert latest.get(stream) is None
    latest.put(stream, latest.generation(stream), {"time": 2})
    assert latest.get(stream) == {"time": 2}
    now[0] = 1.5  # no news from Kafka for longer than the ttl: read the store again
    assert latest.get(stream) is None


def test_pages_are_kept_per_stream_and_key_and_the_oldest_goes_past_the_bound() -> None:
    cache = StreamCache(ttl=1.0, clock=lambda: 0.0, max_per_stream=2)
    btc, eth = ("BTCUSDT", "5m"), ("ETHUSDT", "5m")
    for n in range(3):
        cache.put(btc, cache.generation(btc), f"page {n}", key=n)
    cache.put(eth, cache.generation(eth), "eth page", key=0)
    assert [cache.get(btc, n) for n in range(3)] == [None, "page 1", "page 2"] and cache.get(btc) is None
    cache.announced(btc)
    assert [cache.get(btc, n) for n in range(3)] == [None, None, None] and cache.get(eth, 0) == "eth page"


async def test_requests_missing_one_entry_at_once_share_one_read() -> None:
    cache = StreamCache(ttl=1.0)
    stream, calls = ("BTCUSDT", "5m"), [0]
    release = asyncio.Event()

    async def make() -> str:
        calls[0] += 1
        await release.wait()
        if calls[0] == 2:
            raise LookupError("no such page")
        return f"page read {calls[0]}"

    waiters = [asyncio.create_task(cache.get_or_make(stream, "day", make)) for _ in range(5)]
    await asyncio.sleep(0.01)
    waiters[0].cancel()  # a client that goes away does not take the read with it
    release.set()
    assert await asyncio.gather(*waiters[1:]) == ["page read 1"] * 4 and calls == [1]
    assert await cache.get_or_make(stream, "day", make) == "page read 1"  # kept
    cache.announced(stream)
    failing = [asyncio.create_task(cache.get_or_make(stream, "day", make)) for _ in range(3)]
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert [type(r) for r in results] == [LookupError] * 3 and calls == [2]  # one read, its error to all


async def test_an_expired_entry_answers_while_it_is_read_again_but_not_after_twice_its_ttl() -> None:
    now = [0.0]
    cache = StreamCache(ttl=1.0, clock=lambda: now[0])
    stream, reads = ("BTCUSDT", "5m"), [0]
    release = asyncio.Event()

    async def make() -> str:
        reads[0] += 1
        if reads[0] > 1:
            await release.wait()
        return f"read {reads[0]}"

    assert await cache.get_or_make(stream, "day", make) == "read 1"
    now[0] = 1.5  # expired: the old page answers at once while one read runs
    assert [await cache.get_or_make(stream, "day", make) for _ in range(3)] == ["read 1"] * 3
    await asyncio.sleep(0.01)
    assert reads == [2]  # one read again, still running
    release.set()
    await asyncio.sleep(0.01)
    assert await cache.get_or_make(stream, "day", make) == "read 2"
    now[0] = 1.5 + 2.5  # older than twice the ttl: wait for the read
    assert await cache.get_or_make(stream, "day", make) == "read 3"
    cache.announced(stream)  # a newer prediction: no old page at all
    assert await cache.get_or_make(stream, "day", make) == "read 4"
