"""The predictor on the real Kafka and Postgres: fill, predict, store, publish; replays, switches, drift."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from services.predictor.handlers import group_id
from services.predictor.main import serve
from services.predictor.metrics import MODEL_INFO
from shared.config import Settings
from shared.messaging import topics
from shared.model.artifacts import load_model
from testkit.kafka import committed, read_json, read_topic
from testkit.waiting import eventually
from tests.services.predictor.support import (
    INTERVAL,
    STEP,
    SYMBOL,
    announce,
    as_candles,
    candle_frame,
    futures_rows,
    make_champion,
    publish,
    store_candles,
)
from tests.support import running


async def test_backlog_then_live_each_candle_fills_its_row_and_predicts_the_next_once(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    version = await make_champion(db, tiny_models[0])
    frame = candle_frame(401, seed=3)
    candles = as_candles(frame)
    await store_candles(db, candles[:200])  # history the recorder stored before this predictor started
    await publish(settings, topics.CANDLES, candles[200:400])  # a backlog

    async def count(n: int) -> bool:
        return len(await futures_rows(db)) >= n

    async with running(serve, settings) as task:
        await eventually(lambda: count(200), "200 predictions", task=task)
        rows = await futures_rows(db)
        times = [r["time"] for r in rows]
        assert times == [c.open_time + STEP for c in candles[200:400]]  # t+1 for each t, no hole, no extra
        assert all(r["model_version"] == version for r in rows)
        assert [r["real_close"] is not None for r in rows] == [True] * 199 + [False]
        for r, real in zip(rows[:-1], candles[201:400], strict=True):
            assert r["real_close"] == real.close and r["err_close"] == real.close - r["pred_close"]
            assert r["filled_at"] is not None
        assert [r["base_close"] for r in rows] == [c.close for c in candles[200:400]]

        # The predictions are the model's own, from the right history (warm-up + batch).
        model = load_model(tiny_models[0])
        expected = model.predict_many(frame, list(range(200, 400)))
        assert np.allclose([r["pred_close"] for r in rows], [p.close for p in expected], rtol=1e-12)
        assert np.allclose([r["p_up"] for r in rows], [min(1, max(0, p.p_up)) for p in expected])
        # Each row carries the model's calibrated intervals at the served levels, as predicted.
        for row, p in zip(rows, expected, strict=True):
            stored = {k: tuple(v) for k, v in json.loads(row["intervals"]).items()}
            assert set(stored) == {f"{t}_{level}" for t in ("close", "high", "low") for level in (80, 95)}
            assert stored["close_80"] == pytest.approx(p.intervals["close_80"], rel=1e-12)
            assert stored["close_95"][0] < row["pred_close"] < stored["close_95"][1]

        # Live: one candle alone fills the last row and predicts the next.
        await publish(settings, topics.CANDLES, [candles[400]])
        await eventually(lambda: count(201), "the live prediction", task=task)
        rows = await futures_rows(db)
        assert rows[-2]["real_close"] == candles[400].close
        assert rows[-1]["time"] == candles[400].open_time + STEP and rows[-1]["real_close"] is None

        # A replay of the whole stream changes no row.
        before = [dict(r) for r in rows]
        await publish(settings, topics.CANDLES, candles[200:401])

        async def replayed() -> bool:
            return await committed(settings, group_id(settings), topics.CANDLES) >= 402

        await eventually(replayed, "the replay to be consumed", task=task)
        assert [dict(r) for r in await futures_rows(db)] == before
    # The replay went on from memory (the store has only the first 200 candles): never refused.
    assert "neither in memory nor stored" not in caplog.text

    events = await read_json(settings, topics.PREDICTIONS)
    predictions = [e for e in events if "target_time" in e]
    closes = [e for e in events if "err_close" in e]
    assert {e["target_time"] for e in predictions} == {r["time"] for r in before}
    assert all(e["model_version"] == version for e in predictions)
    assert {e["time"] for e in closes} == {r["time"] for r in before if r["real_close"] is not None}
    first = next(e for e in closes if e["time"] == before[0]["time"])
    assert first["real_close"] == before[0]["real_close"] and first["pred_close"] == before[0]["pred_close"]


async def test_without_a_champion_it_consumes_then_predicts_once_one_is_promoted(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    MODEL_INFO.clear()  # process-wide: other tests used the same model versions
    candles = as_candles(candle_frame(200, seed=4))
    await publish(settings, topics.CANDLES, candles[:120])
    async with running(serve, settings) as task:

        async def consumed(n: int) -> bool:
            return await committed(settings, group_id(settings), topics.CANDLES) >= n

        await eventually(lambda: consumed(120), "the first candles to be consumed", task=task)
        assert await futures_rows(db) == []
        assert MODEL_INFO.labels(SYMBOL, INTERVAL, "none")._value.get() == 1

        version = await make_champion(db, tiny_models[0])
        await announce(settings, version, tiny_models[0])
        await eventually(lambda: _uses(version), "the predictor to load the champion", task=task)
        await publish(settings, topics.CANDLES, candles[120:])
        await eventually(lambda: consumed(200), "the next candles", task=task)
    rows = await futures_rows(db)
    # Candles 120..199 are predicted (their history came from the stream before the model existed).
    assert [r["time"] for r in rows] == [c.open_time + STEP for c in candles[120:]]
    assert {r["model_version"] for r in rows} == {version}


async def _uses(version: str) -> bool:
    return MODEL_INFO.labels(SYMBOL, INTERVAL, version)._value.get() == 1


async def test_a_promotion_switches_models_mid_stream_without_dropping_a_candle(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    MODEL_INFO.clear()
    first, second = tiny_models
    old = await make_champion(db, first)
    candles = as_candles(candle_frame(300, seed=5))
    await store_candles(db, candles[:60])
    async with running(serve, settings) as task:
        await publish(settings, topics.CANDLES, candles[60:180])

        async def consumed(n: int) -> bool:
            return await committed(settings, group_id(settings), topics.CANDLES) >= n

        await eventually(lambda: consumed(120), "the first half", task=task)
        new = await make_champion(db, second)
        await announce(settings, new, second)
        for i in range(180, 240, 10):  # keeps streaming while the new model loads
            await publish(settings, topics.CANDLES, candles[i : i + 10])
        await eventually(lambda: _uses(new), "the switch", task=task)
        for i in range(240, 300, 10):  # and after it: the last candles are the new model's at least
            await publish(settings, topics.CANDLES, candles[i : i + 10])
        await eventually(lambda: consumed(240), "the second half", task=task)
    rows = await futures_rows(db)
    assert [r["time"] for r in rows] == [c.open_time + STEP for c in candles[60:300]]  # no hole
    versions = [r["model_version"] for r in rows]
    switch = versions.index(new)
    assert switch >= 120 and set(versions[:switch]) == {old} and set(versions[switch:]) == {new}
    assert (await db.fetchval("SELECT count(*) FROM models WHERE status = 'champion'")) == 1


async def test_drift_is_recorded_and_published_once_per_cooldown(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    settings = settings.model_copy(update={"drift_window": 24, "drift_mape_threshold": 0.8,
                                           "drift_ratio_threshold": 0.0, "drift_cooldown_minutes": 24 * 60})
    version = await make_champion(db, tiny_models[0])
    calm = candle_frame(100, seed=6)
    # Ten times the volatility the model was trained on: ~1.5% moves, far over the 0.8% bound.
    wild = candle_frame(100, seed=7, sigma=0.02, start_ms=int(calm["open_time"].iloc[-1]) + STEP,
                        start_price=float(calm["close"].iloc[-1]))
    candles = as_candles(calm) + as_candles(wild)
    await store_candles(db, candles[:60])
    async with running(serve, settings) as task:
        await publish(settings, topics.CANDLES, candles[60:])

        async def consumed() -> bool:
            return await committed(settings, group_id(settings), topics.CANDLES) >= 140

        await eventually(consumed, "the candles", task=task)
    rows = await db.fetch("SELECT * FROM drift_events")
    assert len(rows) == 1  # the cool-down (a day) outlasts the 100 wild candles
    drift = rows[0]
    assert drift["model_version"] == version and drift["window_size"] == 24 and drift["threshold"] == 0.8
    assert drift["mape"] > 0.8 and drift["candle_time"] > candles[100].open_time
    events = await read_json(settings, topics.DRIFT)
    assert len(events) == 1 and events[0]["model_version"] == version and events[0]["mape"] == drift["mape"]
    assert events[0]["candle_time"] == drift["candle_time"]
    assert events[0]["window"] == 24 and "MAPE" in events[0]["reason"]


async def test_malformed_candles_are_dead_lettered_and_the_batch_goes_on(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    await make_champion(db, tiny_models[0])
    candles = as_candles(candle_frame(80, seed=8))
    await store_candles(db, candles[:60])
    broken = candles[60].model_dump()
    broken["high"] = broken["low"] - 1
    other_interval = candles[61].model_copy(update={"interval": "1m"})
    await publish(settings, topics.CANDLES,
                  [b"not json", json.dumps(broken).encode(), other_interval, *candles[60:80]])
    async with running(serve, settings) as task:

        async def dead() -> bool:
            return len(await read_topic(settings, topics.DEAD_LETTER)) >= 3

        await eventually(dead, "three dead letters", task=task)
        await eventually(lambda: _count(db, 20), "the valid candles' predictions", task=task)
    letters = await read_json(settings, topics.DEAD_LETTER)
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == 3 and all(letter["service"] == "predictor" for letter in letters)
    assert any("interval '1m'" in r for r in reasons)
    assert any("high must be" in r for r in reasons)
    assert any(letter["payload"] == "not json" for letter in letters)


async def _count(db: asyncpg.Connection, n: int) -> bool:
    return len(await futures_rows(db)) >= n


async def test_a_poison_candle_is_dead_lettered_and_the_partition_goes_on(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real Kafka and Postgres: a candle whose write fails (not the infrastructure) every
    time is dead-lettered after the configured attempts; the candles after it are predicted."""
    from services.predictor import store

    settings = settings.model_copy(update={"handler_attempts": 2, "handler_backoff_seconds": 0.05})
    await make_champion(db, tiny_models[0])
    candles = as_candles(candle_frame(261, seed=5))
    poison = candles[230]
    insert = store.insert_predictions

    async def refusing(conn, parts, *rest):  # type: ignore[no-untyped-def]
        if any(p.base_time == poison.open_time for part in parts for p in part.predictions):
            raise ValueError("a value the database refuses")
        return await insert(conn, parts, *rest)

    monkeypatch.setattr(store, "insert_predictions", refusing)
    await store_candles(db, candles[:200])
    await publish(settings, topics.CANDLES, candles[200:261])

    async def consumed() -> bool:
        return await committed(settings, group_id(settings), topics.CANDLES) >= 61

    async with running(serve, settings) as task:
        await eventually(consumed, "every candle, the poison included, to be consumed", task=task)
    times = [r["time"] for r in await futures_rows(db)]
    assert times == [c.open_time + STEP for c in candles[200:261] if c is not poison]
    letters = await read_json(settings, topics.DEAD_LETTER)
    assert len(letters) == 1
    assert letters[0]["reason"] == "handler failed: ValueError: a value the database refuses"
    assert json.loads(letters[0]["payload"])["open_time"] == poison.open_time
