"""Shadow challengers: the newest model of every other kind predicts every live candle beside the
champion, into `shadow_futures` only; the leaderboard scores them live against persistence."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from services.gateway.app import create_app
from services.predictor.handlers import group_id
from services.predictor.main import serve
from shared.config import Settings
from shared.messaging import topics
from shared.model.artifacts import save_model
from shared.model.training import train
from shared.storage.models_registry import ModelRecord, insert_candidate, reject
from testkit.kafka import committed
from testkit.waiting import eventually
from tests.services.gateway.conftest import running as gateway_running
from tests.services.predictor.support import (
    INTERVAL,
    SYMBOL,
    TINY,
    TRAIN_CANDLES,
    TRAIN_SEED,
    as_candles,
    candle_frame,
    make_champion,
    publish,
    store_candles,
)
from tests.support import running


async def challenger(db: asyncpg.Connection, model_dir: Path, kind: str, phi: float) -> str:
    """Train a `kind` model on AR(1) data with coefficient `phi` and register it as a rejected candidate."""
    result = train(kind, candle_frame(TRAIN_CANDLES, seed=TRAIN_SEED, phi=phi), replace(TINY, lags=3))
    path = save_model(result, model_dir, SYMBOL, INTERVAL)
    await insert_candidate(db, ModelRecord(version=path.name, symbol=SYMBOL, interval=INTERVAL,
                                           artifact_path=str(path), kind=kind, test_start=result.test_start))
    await reject(db, path.name)
    return path.name


async def test_challengers_predict_in_the_shadow_and_the_bad_one_ranks_last(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    champion = await make_champion(db, tiny_models[0])  # an lstm trained on phi 0.5
    # Saved beside the champion: versions are unique within one model folder, as in production.
    model_dir = tiny_models[0].parent
    good = await challenger(db, model_dir, "linear", phi=0.5)  # learned the same market
    bad = await challenger(db, model_dir, "gbm", phi=-0.5)  # learned the opposite: worse than persistence
    candles = as_candles(candle_frame(461, seed=3))
    await store_candles(db, candles[:200])
    await publish(settings, topics.CANDLES, candles[200:461])

    async def consumed() -> bool:
        return await committed(settings, group_id(settings), topics.CANDLES) >= 261

    async with running(serve, settings) as task:
        await eventually(consumed, "the candles to be consumed", task=task, within=120)

    served = await db.fetch("SELECT DISTINCT model_version FROM futures")
    assert [r["model_version"] for r in served] == [champion]  # a shadow's rows never reach futures
    shadow = await db.fetch("""SELECT model_version, count(*) AS n, count(real_close) AS filled
                               FROM shadow_futures GROUP BY model_version ORDER BY model_version""")
    by_version = {r["model_version"]: (r["n"], r["filled"]) for r in shadow}
    assert set(by_version) == {good, bad}
    futures_times = await db.fetch("SELECT time FROM futures ORDER BY time")
    for n, filled in by_version.values():
        assert n == len(futures_times) and filled == n - 1  # every candle, all but the last filled

    async with gateway_running(create_app(settings)) as client:
        response = await client.get("/models/leaderboard", params={"window": 100})
    assert response.status_code == 200, response.text
    board = response.json()
    ranking = [item["model_version"] for item in board["items"]]
    assert ranking[-1] == bad and set(ranking) == {champion, good, bad}
    items = {item["model_version"]: item for item in board["items"]}
    assert items[champion]["role"] == "champion" and items[good]["role"] == "challenger"
    assert items[bad]["kind"] == "gbm" and items[good]["kind"] == "linear"
    assert all(item["rows"] == 100 for item in board["items"])
    assert items[bad]["skill"] < 0 < items[good]["skill"]
    assert items[bad]["persistence_mae"] == pytest.approx(items[good]["persistence_mae"])  # the same rows
    assert all(0 <= item["coverage_80"] <= 1 for item in board["items"])
    assert json.loads(json.dumps(board))  # plain JSON


async def test_a_model_card_shows_the_importance_and_the_calibration(
    settings: Settings, db: asyncpg.Connection, tiny_models: list[Path]
) -> None:
    version = await make_champion(db, tiny_models[0])
    async with gateway_running(create_app(settings)) as client:
        card = (await client.get(f"/models/{version}")).json()
        missing = await client.get("/models/no-such-version")
        current = await client.get("/models/current")
    assert card["version"] == version and card["kind"] == "lstm"
    importance = card["feature_importance"]
    assert set(importance) == set(json.loads((tiny_models[0] / "preprocessing.json").read_text())["features"])
    # The tiny model learned AR(1) returns: it leans most on the last return, which the generated
    # candles carry twice (their open is the previous close, so the body is the return too).
    assert max(importance, key=lambda f: importance[f]["close_mae_increase"]) in ("ret_close", "body")
    assert card["interval_calibration"]["rows"] > 50
    assert card["interval_calibration"]["close_multiplier_95"] > card["interval_calibration"]["close_multiplier_80"]
    assert missing.status_code == 404 and current.status_code == 200 and current.json()["version"] == version
