"""Floods at the gateway: POST /predict is capped per client and in flight; the reads stay up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.limits import PredictLimiter, TooBusy
from shared.config import Settings
from testkit.flood import flood_from_another_process
from testkit.ports import free_port
from testkit.services import ServiceProcess
from tests.services.gateway.conftest import running
from tests.services.gateway.seed import seed
from tests.services.gateway.test_predict import history
from tests.services.predictor.support import make_champion


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


async def test_a_flood_of_real_predictions_leaves_the_reads_fast(
        gateway_settings: Settings, db: asyncpg.Connection, tiny_models: list[Path], tmp_path: Path) -> None:
    """200 concurrent POST /predict (horizon 12) from another process at a gateway process with a
    real champion, default limits: the flood is refused with 429s and Retry-After beyond the
    limits, and GET /health and GET /predictions/latest answer every time meanwhile.

    The speed itself (p99 <= 50 ms) is the gateway benchmark's figure, not a timed test; here the
    bound is one that only a read queued behind the predictions would cross (200 predictions of
    ~60 ms one after another: 12 s)."""
    await seed(db)
    await make_champion(db, tiny_models[0])
    candles = history()
    gateway = ServiceProcess("gateway", gateway_settings.model_copy(update={"gateway_port": free_port()}), tmp_path)
    base = f"http://127.0.0.1:{gateway.settings.gateway_port}"
    try:
        await gateway.started(within=60)
        async with httpx.AsyncClient(timeout=60) as client:
            first = await client.post(f"{base}/predict", json={"candles": candles})
            assert first.status_code == 200, first.text
            stop = asyncio.Event()

            async def reads(path: str) -> list[float]:
                times = []
                while not stop.is_set():
                    started = time.perf_counter()
                    response = await client.get(base + path)
                    times.append(time.perf_counter() - started)
                    assert response.status_code == 200, (path, response.text)
                return sorted(times)

            readers = [asyncio.create_task(reads(path)) for path in ("/health", "/predictions/latest")]
            try:
                summary = await flood_from_another_process(base, candles, requests=200, horizon=12)
            finally:
                stop.set()
            health, latest = await asyncio.gather(*readers)
    finally:
        gateway.stop()
    codes = summary["codes"]
    assert set(codes) <= {"200", "429"}, codes
    assert codes.get("429", 0) >= 200 - gateway_settings.predict_burst and summary["retry_after_on_every_429"]
    assert 1 <= codes.get("200", 0) <= gateway_settings.predict_burst
    for times in (health, latest):
        assert len(times) >= 10 and times[int(0.99 * (len(times) - 1))] < 1.0, times[-5:]
