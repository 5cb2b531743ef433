"""Killing the predictor (SIGKILL, mid-stream) and starting it again leaves no hole and no duplicate,
with no recorder running: the predictor needs nothing from another consumer to rebuild."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import numpy as np

from services.predictor.handlers import group_id
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle
from shared.model.artifacts import load_model
from testkit.invariants import check_invariants
from testkit.kafka import committed
from testkit.waiting import eventually
from tests.services.predictor.support import (
    INTERVAL,
    STEP,
    SYMBOL,
    as_candles,
    candle_frame,
    futures_rows,
    make_champion,
    publish,
    start_predictor,
    store_candles,
)


async def test_a_killed_predictor_resumes_without_hole_or_duplicate(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path], tmp_path: Path
) -> None:
    await make_champion(db, tiny_models[0])
    frame = candle_frame(660, seed=11)
    candles = as_candles(frame)
    await store_candles(db, candles[:60])
    stream = candles[60:]
    await _kill_and_restart(settings, stream, tmp_path / "predictor.log")  # no recorder stores the candles

    rows = await futures_rows(db)
    assert [r["time"] for r in rows] == [c.open_time + STEP for c in stream]  # no hole, no extra
    # The same, as the fault tests check it: candles 61.. each have exactly one futures row.
    report = await check_invariants(db, SYMBOL, INTERVAL, STEP, candles[0].open_time, candles[-1].open_time, 61)
    assert report.ok and report.futures_expected == len(stream) - 1, str(report)
    assert all(r["real_close"] is not None for r in rows[:-1]) and rows[-1]["real_close"] is None
    expected = load_model(tiny_models[0]).predict_many(frame, list(range(60, 660)))
    assert np.allclose([r["pred_close"] for r in rows], [p.close for p in expected], rtol=1e-12)
    stored = await db.fetchval("SELECT count(*) FROM candles WHERE symbol = $1", SYMBOL)
    assert stored == len(candles)  # the history the restarted predictor read back: its own writes


async def _kill_and_restart(settings: Settings, stream: list[Candle], log: Path) -> None:
    async def consumed(n: int) -> bool:
        return await committed(settings, group_id(settings), topics.CANDLES) >= n

    first = start_predictor(settings, log, batch_size=50)
    second = None
    try:
        await publish(settings, topics.CANDLES, stream[:100])
        await eventually(lambda: consumed(100), "the first candles", within=90)
        feeding = asyncio.create_task(_feed(settings, stream[100:]))
        await eventually(lambda: consumed(200), "more candles")
        first.send_signal(signal.SIGKILL)  # no clean shutdown: whatever was in flight is lost
        assert first.wait(30) == -signal.SIGKILL
        killed_at = await committed(settings, group_id(settings), topics.CANDLES)
        assert killed_at < len(stream), "the kill came too late to be mid-stream"
        second = start_predictor(settings, log, batch_size=50)
        await feeding
        await eventually(lambda: consumed(len(stream)), "the rest of the stream", within=90)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)


async def _feed(settings: Settings, candles: list[Candle]) -> None:
    """A live-ish stream: ten candles at a time."""
    for i in range(0, len(candles), 10):
        await publish(settings, topics.CANDLES, candles[i : i + 10])
        await asyncio.sleep(0.05)
