"""`POST /predict`: every input rule is a 422 naming the row and the rule; with a real (tiny)
model trained through the model package, JSON and CSV histories give the next candles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pandas as pd
import pytest

from shared.market.binance_csv import write_archive_csv
from tests.services.gateway.seed import STEP, candle_rows

FIELDS = ("open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
          "taker_buy_base_volume", "taker_buy_quote_volume")
ENOUGH = 120  # the settings' window (60) + the features' lookback (48) = 108


def history(n: int = ENOUGH) -> list[dict[str, Any]]:
    return [dict(zip(FIELDS, row, strict=True)) for row in candle_rows(n)]


def frame(candles: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(candles)


async def post(client: httpx.AsyncClient, candles: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return await client.post("/predict", json={"candles": candles, **extra})


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail: list[dict[str, Any]] = response.json()["detail"]
    return detail


def has(errors: list[dict[str, Any]], rule_type: str, row: int | None) -> dict[str, Any]:
    for err in errors:
        if err["type"] == rule_type and err["row"] == row:
            assert err["rule"] and err["msg"]
            return err
    raise AssertionError(f"no {rule_type} error for row {row} in {errors}")


def _swap(c: list[dict[str, Any]]) -> None:
    c[10], c[11] = c[11], c[10]


def _duplicate(c: list[dict[str, Any]]) -> None:
    c[11]["open_time"] = c[10]["open_time"]


def _gap(c: list[dict[str, Any]]) -> None:
    del c[30]


def _off_grid(c: list[dict[str, Any]]) -> None:
    for row in c[40:]:
        row["open_time"] += 1000


def _high(c: list[dict[str, Any]]) -> None:
    c[20]["high"] = max(c[20]["open"], c[20]["close"]) - 5


def _low(c: list[dict[str, Any]]) -> None:
    c[21]["low"] = min(c[21]["open"], c[21]["close"]) + 5


def _negative_volume(c: list[dict[str, Any]]) -> None:
    c[7]["volume"] = -1.0


def _negative_trades(c: list[dict[str, Any]]) -> None:
    c[8]["trades"] = -3


def _zero_price(c: list[dict[str, Any]]) -> None:
    c[9]["low"] = 0.0


@pytest.mark.parametrize(
    ("mutate", "rule_type", "row", "field"),
    [
        (_swap, "not_ascending", 12, "open_time"),
        (_duplicate, "not_ascending", 12, "open_time"),
        (_gap, "not_evenly_spaced", 31, "open_time"),
        (_off_grid, "not_evenly_spaced", 41, "open_time"),
        (_high, "high_below_open_close", 21, "high"),
        (_low, "low_above_open_close", 22, "low"),
        (_negative_volume, "negative_volume", 8, "volume"),
        (_negative_trades, "negative_volume", 9, "trades"),
        (_zero_price, "price_not_positive", 10, "low"),
    ],
)
async def test_each_rule_is_a_422_naming_the_row_and_the_rule(
    client: httpx.AsyncClient, mutate: Any, rule_type: str, row: int, field: str
) -> None:
    candles = history()
    mutate(candles)
    err = has(errors_of(await post(client, candles)), rule_type, row)
    assert err["loc"] == ["body", "candles", row - 1, field]
    assert err["msg"].startswith(f"row {row}: ")


async def test_too_few_candles(client: httpx.AsyncClient) -> None:
    errors = errors_of(await post(client, history(50)))
    err = has(errors, "too_few_candles", None)
    assert "108" in err["msg"] and "got 50" in err["msg"]
    assert [e["type"] for e in errors] == ["too_few_candles"]  # evenly spaced: nothing else to say
    has(errors_of(await post(client, [])), "too_few_candles", None)


async def test_nan_and_infinity_are_named(client: httpx.AsyncClient) -> None:
    candles = history()
    body = json.dumps({"candles": candles})
    # JSON has no NaN, but Python's encoder (and many clients) write the bare token anyway.
    body = body.replace(str(candles[4]["close"]), "NaN", 1).replace(str(candles[6]["volume"]), "Infinity", 1)
    errors = errors_of(await client.post("/predict", content=body, headers={"content-type": "application/json"}))
    assert has(errors, "not_finite", 5)["loc"][-1] == "close"
    assert has(errors, "not_finite", 7)["loc"][-1] == "volume"


async def test_missing_and_malformed_fields_name_the_row(client: httpx.AsyncClient) -> None:
    candles = history()
    del candles[2]["close"]
    candles[3]["high"] = "lots"
    candles[4]["colour"] = "green"
    errors = errors_of(await post(client, candles))
    assert has(errors, "missing", 3)["loc"] == ["body", "candles", 2, "close"]
    assert has(errors, "float_parsing", 4)["loc"] == ["body", "candles", 3, "high"]
    assert has(errors, "extra_forbidden", 5)["loc"] == ["body", "candles", 4, "colour"]


async def test_every_violation_is_listed_at_once(client: httpx.AsyncClient) -> None:
    candles = history()
    _high(candles)
    _negative_volume(candles)
    _gap(candles)
    errors = errors_of(await post(client, candles))
    assert {e["type"] for e in errors} == {"high_below_open_close", "negative_volume", "not_evenly_spaced"}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"candles": "many"}', b'{"horizon": 1}', b'{"candles": [], "horizon": 0}'],
)
async def test_malformed_bodies_are_422(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"]


@pytest.mark.parametrize("horizon", [0, 49, "two"])
async def test_horizon_bounds(client: httpx.AsyncClient, horizon: object) -> None:
    errors = errors_of(await post(client, history(), horizon=horizon))
    assert errors[0]["loc"] == ["body", "horizon"]


async def test_unknown_symbol_and_wrong_content_type(client: httpx.AsyncClient) -> None:
    response = await post(client, history(), symbol="DOGEUSDT")
    assert response.status_code == 404 and "DOGEUSDT" in response.json()["detail"]
    response = await client.post("/predict", content=b"<a/>", headers={"content-type": "application/xml"})
    assert response.status_code == 415 and "multipart" in response.json()["detail"]


async def test_csv_upload_errors_name_the_file_line(client: httpx.AsyncClient, tmp_path: Path) -> None:
    path = write_archive_csv(tmp_path / "h.csv", frame(history()))
    lines = path.read_text().splitlines()
    broken = lines.copy()
    broken[6] = broken[6].replace(",", ",abc,", 1).replace(",abc,", ",", 1).replace(",", ",x", 1)
    response = await client.post("/predict", files={"file": ("h.csv", "\n".join(broken).encode(), "text/csv")})
    err = has(errors_of(response), "csv_format", 7)
    assert err["loc"] == ["body", "file", 7] and "line 7" in err["msg"]

    header = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
              "taker_buy_quote_volume,ignore")
    gap = [header, *lines[:50], *lines[51:]]  # line 52 (with the header) follows a missing candle
    response = await client.post("/predict", files={"file": ("g.csv", "\n".join(gap).encode(), "text/csv")})
    err = has(errors_of(response), "not_evenly_spaced", 52)
    assert err["loc"] == ["body", "file", 52, "open_time"]

    response = await client.post("/predict", files={"file": ("b.bin", b"\xff\xfe\x00", "application/octet-stream")})
    assert errors_of(response)[0]["type"] == "utf8"
    response = await client.post("/predict", files={"history": ("h.csv", b"", "text/csv")}, data={"horizon": "2"})
    assert errors_of(response)[0]["loc"] == ["body", "file"]


async def test_valid_history_without_a_model_is_503(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    response = await post(client, history())
    assert response.status_code == 503 and "no model" in response.json()["detail"]
    await db.execute("""INSERT INTO models (version, symbol, interval, status, artifact_path)
                        VALUES ('ghost', 'BTCUSDT', '5m', 'champion', '/nowhere/ghost')""")
    response = await post(client, history())
    assert response.status_code == 503 and "missing" in response.json()["detail"]


# --- with a real model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small LSTM trained for one epoch through the model package (seconds, not minutes)."""
    from shared.model.artifacts import load_model, save_model
    from shared.model.synthetic import synthetic_candles
    from shared.model.training import TrainConfig, train_model

    config = TrainConfig(window=8, units=4, epochs=1, batch_size=128, patience=1)
    result = train_model(synthetic_candles(1500, seed=3), config)
    path = save_model(result, tmp_path_factory.mktemp("tiny-model"), "BTCUSDT", "5m")
    return path, load_model(path)


async def register(db: asyncpg.Connection, path: Path, version: str) -> None:
    await db.execute("""INSERT INTO models (version, symbol, interval, status, artifact_path)
                        VALUES ($1, 'BTCUSDT', '5m', 'champion', $2)""", version, str(path))


async def test_predict_json_and_csv_with_a_trained_model(
    client: httpx.AsyncClient, db: asyncpg.Connection, tiny_model: tuple[Path, Any], tmp_path: Path
) -> None:
    path, loaded = tiny_model
    await register(db, path, loaded.version)
    candles = history()
    response = await post(client, candles, horizon=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == loaded.version and body["symbol"] == "BTCUSDT"
    assert body["base_time"] == candles[-1]["open_time"] and body["base_close"] == candles[-1]["close"]
    assert [s["time"] for s in body["steps"]] == [candles[-1]["open_time"] + STEP * k for k in (1, 2, 3)]
    assert body["next"] == body["steps"][0]
    for step in body["steps"]:
        assert step["high"] >= max(step["open"], step["close"]) and step["low"] <= min(step["open"], step["close"])
        assert 0 <= step["p_up"] <= 1 and step["amplitude"] >= 0
    # The same numbers as the model package's own fast path on the same history.
    direct = loaded.predict_next(frame(candles)[list(FIELDS)].astype({"open_time": "int64"}))
    assert body["next"]["close"] == pytest.approx(direct.close, rel=1e-9)
    assert body["next"]["p_up"] == pytest.approx(direct.p_up, rel=1e-9)
    # Each step says how it was made; step 3 also carries the direct 3-candle head's close.
    assert [s["method"] for s in body["steps"]] == ["model", "fed back", "fed back"]
    heads = loaded.forecast_horizons(frame(candles)[list(FIELDS)].astype({"open_time": "int64"}), [len(candles) - 1])
    assert [s["direct_close"] for s in body["steps"]] == [None, None, pytest.approx(float(heads[3][0]), rel=1e-9)]
    assert set(body["next"]["intervals"]) == {f"{t}_{lv}" for t in ("close", "high", "low") for lv in (80, 95)}
    assert body["steps"][1]["intervals"] == {}

    csv = write_archive_csv(tmp_path / "h.csv", frame(candles)).read_bytes()
    response = await client.post("/predict", files={"file": ("h.csv", csv, "text/csv")}, data={"horizon": "2"})
    assert response.status_code == 200, response.text
    from_csv = response.json()
    assert len(from_csv["steps"]) == 2
    assert from_csv["next"]["close"] == pytest.approx(body["next"]["close"], rel=1e-6)
