"""The read endpoints at wire speed: bodies encoded without per-row validation are still exactly
what their response models say, an unchanged page is a 304, and the newest prediction kept
between requests changes when a newer one is announced on Kafka."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
from pydantic import BaseModel

from services.gateway.app import create_app
from services.gateway.latest import LatestPredictions
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


async def test_an_unchanged_page_is_a_304_and_a_changed_one_is_not(client: httpx.AsyncClient, seeded: Seeded,
                                                                     db: asyncpg.Connection) -> None:
    params = {"start": seeded.live_times[0], "end": seeded.live_times[-1] + STEP}
    first = await client.get("/series", params=params)
    etag = first.headers["etag"]
    again = await client.get("/series", params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = await client.get("/candles", params=params, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag  # another page, another tag
    await db.execute("UPDATE candles SET close = close + 1 WHERE open_time = $1", seeded.live_times[-1])
    changed = await client.get("/series", params=params, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["items"][-1]["close"] == first.json()["items"][-1]["close"] + 1


async def test_the_kept_latest_prediction_changes_when_a_newer_one_is_announced(
    gateway_settings: Settings, seeded: Seeded, db: asyncpg.Connection
) -> None:
    app = create_app(gateway_settings)
    async with running(app) as client:
        latest: LatestPredictions = app.state.latest
        latest.ttl = 3600  # only the announcement may refresh it here
        await wait_kafka_connected(app.state)
        first = (await client.get("/predictions/latest")).json()
        assert first["time"] == seeded.next_time
        newer = seeded.next_time + STEP
        await db.execute(
            """INSERT INTO futures (symbol, interval, time, base_time, pred_open, pred_high, pred_low, pred_close,
                   pred_amplitude, p_up, model_version)
               VALUES ($1, $2, $3, $4, 1, 2, 0.5, 1.5, 0.1, 0.7, $5)""",
            seeded.symbol, seeded.interval, newer, seeded.next_time, CHAMPION)
        assert (await client.get("/predictions/latest")).json()["time"] == first["time"]  # kept: not announced
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


def test_a_read_begun_before_an_announcement_cannot_put_back_what_it_read() -> None:
    now = [0.0]
    latest = LatestPredictions(ttl=1.0, clock=lambda: now[0])
    stream = ("BTCUSDT", "5m")
    generation = latest.generation(stream)  # a request starts reading the store...
    latest.announced(stream)  # ...a newer prediction is announced meanwhile...
    latest.put(stream, generation, {"time": 1})  # ...and what it read is not kept
    assert latest.get(stream) is None
    latest.put(stream, latest.generation(stream), {"time": 2})
    assert latest.get(stream) == {"time": 2}
    now[0] = 1.5  # no news from Kafka for longer than the ttl: read the store again
    assert latest.get(stream) is None
