"""Floods at the gateway: POST /predict is capped per client and in flight; the reads stay up."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.limits import PredictLimiter, TooBusy
from shared.config import Settings
from tests.services.gateway.conftest import running


def test_the_limiter_caps_each_client_and_the_slots() -> None:
    now = [0.0]
    limiter = PredictLimiter(max_concurrent=2, rate_per_client=1.0, burst=2, clock=lambda: now[0])
    limiter.acquire("a")
    limiter.acquire("a")  # a burst of two
    with pytest.raises(TooBusy) as busy:
        limiter.acquire("b")  # two in flight already
    assert busy.value.retry_after == 1
    limiter.release()
    with pytest.raises(TooBusy) as empty:
        limiter.acquire("a")  # the bucket is empty
    assert "a second" in empty.value.reason
    now[0] = 1.0  # a token back
    limiter.acquire("a")
    limiter.release()
    limiter.release()
    assert limiter.in_flight == 0


async def test_a_flood_of_predictions_gets_429s_and_the_reads_still_answer(gateway_settings: Settings) -> None:
    # A bucket that does not refill during the test (0.001 a second): exactly the burst goes through.
    settings = gateway_settings.model_copy(update={"predict_max_concurrent": 1000, "predict_rate_per_client": 0.001,
                                                   "predict_burst": 10})
    async with running(create_app(settings)) as client:

        async def flood() -> httpx.Response:
            return await client.post("/predict", json={"candles": []})  # cheap to refuse, counted all the same

        async def health() -> float:
            started = time.perf_counter()
            response = await client.get("/health")
            assert response.status_code == 200
            return time.perf_counter() - started

        results = await asyncio.gather(*(flood() for _ in range(200)), *(health() for _ in range(20)))
    responses = [r for r in results if isinstance(r, httpx.Response)]
    codes = [r.status_code for r in responses]
    assert codes.count(422) == 10 and codes.count(429) == 190  # the burst went through (to its 422), no more
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "predictions" in refused.json()["detail"]
    assert len([r for r in results if isinstance(r, float)]) == 20  # every health check answered
