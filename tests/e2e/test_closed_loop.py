"""The closed loop, end to end: stand-in -> ingestor -> Kafka -> predictor / trainer -> Postgres.

The stand-in serves candles whose returns are AR(1) (something a model can learn), then a regime
change: a 5% jump, three times the volatility, and the autocorrelation flipped (0.8 to -0.8). Days of history
are backfilled, the trainer trains and promotes a first model by itself, the predictor predicts
each new candle and fills the previous one; after the change the model does worse than
persistence, drift is declared, retraining follows (candidates may be rejected while the new
regime is still a small part of the training days), until a candidate trained on the new regime
wins and the predictor's rows carry it.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from functools import partial

import asyncpg
import pandas as pd
import pytest

from services.ingestor.binance import Backoff
from services.ingestor.main import serve as ingestor_serve
from services.ingestor.options import IngestOptions
from services.predictor.main import serve as predictor_serve
from services.sim.market import Market, Series
from services.sim.server import BinanceSim
from services.trainer.main import serve as trainer_serve
from shared.config import Settings
from shared.messaging import topics
from shared.storage import models_registry as registry
from testkit.invariants import check_invariants
from testkit.kafka import read_json
from testkit.waiting import eventually
from tests.services.predictor.support import INTERVAL, STEP, SYMBOL, TINY, candle_frame
from tests.support import running

DAY = 288  # 5m candles
SPEED = 4000.0  # a 5m candle every 75 ms
HISTORY_DAYS = 3  # backfilled before the stand-in's "now"
REGIME_AT = HISTORY_DAYS * DAY + DAY * 5 // 4  # 30 hours after "now": away from a day boundary


def regime_change(after_days: float = 8.0) -> pd.DataFrame:
    """Eight days after the change: room for slow trainings on a loaded machine before the data ends."""
    calm = candle_frame(REGIME_AT, seed=21, phi=0.8, sigma=0.002)
    start = int(calm["open_time"].iloc[-1]) + STEP
    price = float(calm["close"].iloc[-1]) * math.exp(0.05)
    wild = candle_frame(int(after_days * DAY), seed=22, phi=-0.8, sigma=0.006, start_ms=start, start_price=price)
    return pd.concat([calm, wild], ignore_index=True)


async def _champion(db: asyncpg.Connection) -> str | None:
    record = await registry.get_champion(db, SYMBOL, INTERVAL)
    return record.version if record else None


@pytest.mark.slow
async def test_stream_predict_drift_retrain_promote(
    settings: Settings, db: asyncpg.Connection, worker: Executor
) -> None:
    frame = regime_change()
    regime_ms = int(frame["open_time"].iloc[REGIME_AT])
    now = int(frame["open_time"].iloc[0]) + HISTORY_DAYS * DAY * STEP
    market = Market([Series.from_frame(SYMBOL, INTERVAL, frame)])
    fast = IngestOptions(backoff=Backoff(base=0.05, cap=0.5), idle_timeout=5.0)

    async with BinanceSim(market, speed=SPEED, start_ms=now) as sim:
        settings = settings.model_copy(update={
            "binance_rest_url": sim.rest_url, "binance_ws_url": sim.ws_url, "backfill_days": HISTORY_DAYS,
            "train_min_candles": 800, "train_days": HISTORY_DAYS, "drift_window": 36, "drift_cooldown_minutes": 120,
            # Before the change the model's MAPE is ~0.2%, after it ~0.8%: the absolute bound is the
            # robust signal here (a tiny model's ratio to persistence moves less, and is tested apart).
            "drift_mape_threshold": 0.5, "drift_ratio_threshold": 0.0,
        })
        async with (
            running(partial(ingestor_serve, options=fast), settings) as ingestor,
            running(predictor_serve, settings) as predictor,
            running(partial(trainer_serve, config=TINY, executor=worker, bootstrap_period=0.5), settings) as trainer,
        ):
            tasks = (ingestor, predictor, trainer)

            async def first_model() -> bool:
                await _alive(*tasks)
                return await _champion(db) is not None

            await eventually(first_model, "the first model", within=90)
            first = await _champion(db)

            async def promoted_after_drift() -> bool:
                await _alive(*tasks)
                version = await db.fetchval(
                    "SELECT model_version FROM job_logs WHERE job_name = 'train' AND status = 'success' "
                    "AND message LIKE '%drift:%' ORDER BY id DESC LIMIT 1")
                if version is None:
                    return False
                filled = await db.fetchval(
                    "SELECT count(*) FROM futures WHERE model_version = $1 AND real_close IS NOT NULL", version)
                return bool(filled >= 5)

            await eventually(promoted_after_drift, "a model promoted after drift, in use", within=180)

    # The first model: trained by the trainer itself on the backfilled days, before the change.
    jobs = await db.fetch("SELECT * FROM job_logs WHERE job_name = 'train' ORDER BY id")
    assert "first model" in jobs[0]["message"] and jobs[0]["status"] == "success"
    assert jobs[0]["model_version"] == first
    first_record = await registry.get_model(db, first or "")
    assert first_record is not None and first_record.data_end is not None and first_record.data_end < regime_ms

    # Each candle got a prediction and the previous one its real close: no hole, all filled.
    rows = await db.fetch(
        "SELECT f.time, f.real_close, f.model_version, c.close FROM futures f "
        "LEFT JOIN candles c ON c.symbol = f.symbol AND c.interval = f.interval AND c.open_time = f.time "
        "ORDER BY f.time")
    times = [r["time"] for r in rows]
    assert times == list(range(times[0], times[-1] + STEP, STEP))
    assert all(r["real_close"] is not None for r in rows[:-1])
    assert all(r["real_close"] == r["close"] for r in rows if r["close"] is not None and r["real_close"] is not None)
    assert rows[0]["model_version"] == first and times[0] < regime_ms
    last_stored = await db.fetchval("SELECT max(open_time) FROM candles")
    report = await check_invariants(db, SYMBOL, INTERVAL, STEP, times[0], min(times[-1], last_stored), 0)
    assert report.ok and report.futures_expected > 100, str(report)  # as the fault tests check it

    # The change raised drift against the model in use, and a retrain for drift was promoted.
    drifts = await db.fetch("SELECT * FROM drift_events ORDER BY id")
    assert drifts and drifts[0]["candle_time"] >= regime_ms and drifts[0]["mape"] > 0.5
    published = await read_json(settings, topics.DRIFT)
    assert len(published) == len(drifts) and published[0]["model_version"] == drifts[0]["model_version"]
    winner = next(j for j in reversed(jobs) if j["status"] == "success" and "drift:" in j["message"])
    assert winner["model_version"] != first
    winner_record = await registry.get_model(db, winner["model_version"])
    assert winner_record is not None and winner_record.data_end is not None and winner_record.data_end > regime_ms
    beaten = winner_record.metrics.get("champion_close_mae")
    assert beaten is None or winner_record.metrics["close_mae"] < beaten

    # The predictor switched: the newest rows carry a version promoted after the drift.
    versions = [r["model_version"] for r in rows]
    assert winner["model_version"] in versions
    assert versions.index(winner["model_version"]) > versions.index(first or "")
    assert (await registry.get_model(db, first or "")).status == "retired"  # type: ignore[union-attr]
    announced = [e["version"] for e in await read_json(settings, topics.MODELS)]
    assert announced[0] == first and winner["model_version"] in announced
    # The series of the newest champion was rebuilt over the stored history.
    champion = await _champion(db)
    await eventually(lambda: _series_of(db, champion), "the champion's series", within=60)


async def _series_of(db: asyncpg.Connection, version: str | None) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM series WHERE model_version = $1", version))


async def _alive(*tasks: object) -> None:
    """Fail at once, with the service's own error, if any service stopped."""
    import asyncio

    for task in tasks:
        assert isinstance(task, asyncio.Task)
        if task.done():
            task.result()
            raise AssertionError(f"{task.get_coro()} stopped")
