"""`POST /predict` with history from any source on a 5m + 1d deployment: a Yahoo Finance CSV of
daily candles gets tomorrow's candle from the champion's OHLC variant, plain JSON (time and
prices) works, the interval comes from the spacing (an unserved one is a 422 naming the served),
and query parameters mean what form fields mean."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pandas as pd
import pytest

from services.gateway.app import create_app
from services.trainer.jobs import VariantJob, train_variant
from shared.config import Settings
from shared.model.artifacts import save_model
from shared.model.synthetic import synthetic_candles
from shared.model.training import TrainConfig, train
from shared.storage import models_registry as registry
from tests.services.gateway.conftest import running

DAY = 86_400_000
START = 1_640_995_200_000  # 2022-01-01
CONFIG = TrainConfig(window=20, interval_ms=DAY, gbm_rounds=40, gbm_min_data_in_leaf=20)


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return synthetic_candles(1200, interval_ms=DAY, start_ms=START, sigma=0.03, seed=21)


@pytest.fixture(scope="module")
def daily_models(daily: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A daily gbm champion trained on Binance's fields, and its OHLC variant, as the trainer makes them."""
    folder = tmp_path_factory.mktemp("daily-models")
    champion = save_model(train("gbm", daily, CONFIG), folder, "BTCUSDT", "1d")
    variant = train_variant(VariantJob("BTCUSDT", "1d", daily, CONFIG, folder, "gbm"))
    return champion, variant


@pytest.fixture
async def deployment(settings: Settings, db: asyncpg.Connection, daily_models: tuple[Path, dict[str, Any]]
                     ) -> AsyncIterator[httpx.AsyncClient]:
    champion, variant = daily_models
    await registry.insert_candidate(db, registry.ModelRecord(
        version=champion.name, symbol="BTCUSDT", interval="1d", artifact_path=str(champion), kind="gbm"))
    await registry.promote(db, champion.name)
    await registry.set_variant(db, champion.name, "ohlc", variant)
    two = settings.model_copy(update={"intervals": ["5m", "1d"], "interval": "5m", "window": 20})
    async with running(create_app(two)) as client:
        yield client


def yahoo_csv(candles: pd.DataFrame) -> bytes:
    """Yahoo Finance's daily download: Date,Open,High,Low,Close,Adj Close,Volume."""
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for row in candles.itertuples():
        day = datetime.fromtimestamp(row.open_time / 1000, UTC).strftime("%Y-%m-%d")
        lines.append(f"{day},{row.open:.6f},{row.high:.6f},{row.low:.6f},{row.close:.6f},{row.close:.6f},"
                     f"{int(row.quote_volume)}")
    return ("\n".join(lines) + "\n").encode()


async def test_a_yahoo_csv_of_400_days_gets_tomorrow_from_the_ohlc_variant(
    deployment: httpx.AsyncClient, daily: pd.DataFrame, daily_models: tuple[Path, dict[str, Any]]
) -> None:
    champion, variant = daily_models
    last400 = daily.iloc[-400:]
    response = await deployment.post("/predict?horizon=2", files={"file": ("BTC-USD.csv", yahoo_csv(last400),
                                                                           "text/csv")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["interval"], body["variant"]) == ("1d", "ohlc")
    assert body["model_version"] == champion.name and body["variant_version"] == variant["version"] != champion.name
    assert body["base_time"] == int(last400["open_time"].iloc[-1])
    assert body["next"]["time"] == body["base_time"] + DAY and 0 <= body["next"]["p_up"] <= 1
    assert len(body["steps"]) == 2  # ?horizon=2 on a multipart upload is heard
    assert body["next"]["intervals"]["close_80"][0] < body["next"]["close"] < body["next"]["intervals"]["close_80"][1]
    # The same rows as text/csv, and the same prices with Binance's fields: the champion answers.
    again = await deployment.post("/predict", content=yahoo_csv(last400), headers={"content-type": "text/csv"})
    assert again.json()["next"] == body["next"]
    fields = ["open_time", "open", "high", "low", "close", "volume", "trades", "taker_buy_base_volume"]
    full = await deployment.post("/predict", json={"candles": last400[fields].to_dict("records")})
    assert full.status_code == 200, full.text
    assert (full.json()["variant"], full.json()["variant_version"]) == ("full", champion.name)


async def test_plain_json_with_iso_or_epoch_times_works(deployment: httpx.AsyncClient, daily: pd.DataFrame) -> None:
    rows = daily.iloc[-120:]
    iso = [{"time": datetime.fromtimestamp(r.open_time / 1000, UTC).strftime("%Y-%m-%d"), "open": r.open,
            "high": r.high, "low": r.low, "close": r.close} for r in rows.itertuples()]
    epoch = [{**c, "time": int(r.open_time)} for c, r in zip(iso, rows.itertuples(), strict=True)]
    first = await deployment.post("/predict", json={"candles": iso})
    second = await deployment.post("/predict", json={"candles": epoch, "horizon": 1})
    assert first.status_code == 200, first.text
    assert first.json()["variant"] == "ohlc" and first.json()["next"] == second.json()["next"]
    volume = [{**c, "volume": float(r.volume)} for c, r in zip(epoch, rows.itertuples(), strict=True)]
    assert (await deployment.post("/predict", json={"candles": volume})).json()["variant"] == "ohlc"


async def test_an_hourly_history_on_a_5m_and_1d_deployment_is_a_422_naming_both(
    deployment: httpx.AsyncClient,
) -> None:
    hourly = synthetic_candles(150, interval_ms=3_600_000, start_ms=START, seed=2)
    candles = [{"time": int(r.open_time), "open": r.open, "high": r.high, "low": r.low, "close": r.close}
               for r in hourly.itertuples()]
    response = await deployment.post("/predict", json={"candles": candles})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "interval_not_served" and "1h apart" in error["msg"] and "5m, 1d" in error["msg"]


async def test_bad_rows_of_a_generic_csv_and_conflicting_parameters_are_named(
    deployment: httpx.AsyncClient, daily: pd.DataFrame
) -> None:
    lines = yahoo_csv(daily.iloc[-120:]).decode().splitlines()
    lines[5] = lines[5].split(",")[0] + ",null,null,null,null,null,0"  # Yahoo's way of saying "no data"
    response = await deployment.post("/predict", files={"file": ("x.csv", "\n".join(lines).encode(), "text/csv")})
    errors = response.json()["detail"]
    assert response.status_code == 422 and {(e["row"], e["type"]) for e in errors} == {(6, "csv_format")}
    assert {e["loc"][-1] for e in errors} == {"open", "high", "low", "close"}
    headless = "\n".join(["when,o,h,l,c", "2024-01-01,1,2,0.5,1.5"]).encode()
    response = await deployment.post("/predict", files={"file": ("y.csv", headless, "text/csv")})
    assert response.status_code == 422 and "no a time column" in response.json()["detail"][0]["msg"]
    good = yahoo_csv(daily.iloc[-120:])
    response = await deployment.post("/predict?horizon=3", files={"file": ("z.csv", good, "text/csv")},
                                     data={"horizon": "2"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "conflict"
    rows = [{"time": int(r.open_time), "open": r.open, "high": r.high, "low": r.low, "close": r.close}
            for r in daily.iloc[-120:].itertuples()]
    rows[7]["volume"] = 5.0  # a volume on one row only
    response = await deployment.post("/predict", json={"candles": rows})
    assert response.status_code == 422 and response.json()["detail"][0]["row"] == 1
    both = [{**rows[0], "open_time": 1}]
    response = await deployment.post("/predict", json={"candles": both})
    assert response.status_code == 422 and "one of them" in response.json()["detail"][0]["msg"]


def test_the_variant_is_the_same_kind_on_the_same_rows(daily_models: tuple[Path, dict[str, Any]]) -> None:
    _, variant = daily_models
    assert variant["kind"] == "gbm" and variant["features"] == "ohlc"
    assert "close_mae" in variant["metrics"] and "persistence" in variant["baseline_metrics"]
    assert dataclasses.replace(CONFIG, features="ohlc").features == "ohlc"
