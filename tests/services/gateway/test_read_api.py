"""The read endpoints on real Postgres (the gateway's read-only role) with seeded rows."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.services.gateway.seed import BASELINES, CHAMPION, METRICS, OLD_MODEL, STEP, Seeded


async def test_health_ready_and_the_pool_is_read_only(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}
    pool: asyncpg.Pool = client._transport.app.state.pool  # type: ignore[attr-defined]
    assert await pool.fetchval("SELECT current_user") == "candlecast_reader"


async def test_candles_latest_page_then_paging_both_ways(client: httpx.AsyncClient, seeded: Seeded) -> None:
    page = (await client.get("/candles", params={"limit": 100})).json()
    times = [c["open_time"] for c in page["items"]]
    assert times == seeded.times[-100:]
    assert page["symbol"] == "BTCUSDT" and page["interval"] == "5m" and page["count"] == 100
    assert page["prev_end"] == seeded.times[-100] and page["next_start"] is None
    older = (await client.get("/candles", params={"limit": 100, "end": page["prev_end"]})).json()
    assert [c["open_time"] for c in older["items"]] == seeded.times[-200:-100]

    forward = (await client.get("/candles", params={"start": seeded.times[0], "limit": 250})).json()
    assert [c["open_time"] for c in forward["items"]] == seeded.times[:250]
    rest = (await client.get("/candles", params={"start": forward["next_start"], "limit": 250})).json()
    assert [c["open_time"] for c in rest["items"]] == seeded.times[250:]
    assert rest["next_start"] is None

    window = (await client.get("/candles", params={"start": seeded.times[10], "end": seeded.times[13]})).json()
    assert [c["open_time"] for c in window["items"]] == seeded.times[10:13]
    first = window["items"][0]
    assert first["high"] >= max(first["open"], first["close"]) and first["trades"] > 0


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"symbol": "ETHUSDT"}, 404),
        ({"symbol": "BTC-USDT"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 5001}, 422),
        ({"start": 10, "end": 10}, 422),
        ({"start": -1}, 422),
        ({"end": "yesterday"}, 422),
    ],
)
async def test_bad_query_parameters_are_4xx_with_a_message(
    client: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    response = await client.get("/candles", params=params)
    assert response.status_code == status
    assert response.json()["detail"]
    if status == 404:
        assert "served: BTCUSDT" in response.json()["detail"]


async def test_series_joins_the_champion_then_live_futures_and_flags_the_test_period(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    page = (await client.get("/series", params={"start": seeded.times[0], "limit": 5000})).json()
    assert page["model_version"] == CHAMPION
    assert page["test_start"] == seeded.test_start and page["test_end"] == seeded.data_end
    items = {p["time"]: p for p in page["items"]}
    assert len(items) == seeded.n

    first = items[seeded.times[0]]  # no prediction for the first candle
    assert first["pred_close"] is None and first["direction_hit"] is None and first["split"] is None
    train = items[seeded.times[1]]
    assert train["split"] == "train" and train["test"] is False and train["model_version"] == CHAMPION
    test = items[seeded.test_start]
    assert test["split"] == "test" and test["test"] is True
    live = items[seeded.live_times[0]]
    assert live["split"] == "live" and live["test"] is False

    for p in page["items"]:
        if p["pred_close"] is None:
            continue
        assert p["err_close"] == pytest.approx((p["close"] - p["pred_close"]) / p["close"])
        assert p["err_high"] == pytest.approx((p["high"] - p["pred_high"]) / p["high"])
        assert p["direction_hit"] == ((p["p_up"] >= 0.5) == (p["close"] > p["open"]))
    tests = [p for p in page["items"] if p["test"]]
    assert {p["split"] for p in tests} == {"test"}
    assert min(p["time"] for p in tests) == seeded.test_start
    hits = [p["direction_hit"] for p in page["items"] if p["direction_hit"] is not None]
    assert page["hit_rate"] == pytest.approx(sum(hits) / len(hits))


async def test_series_of_another_model_and_of_an_unknown_one(client: httpx.AsyncClient, seeded: Seeded) -> None:
    page = (await client.get("/series", params={"model_version": OLD_MODEL, "limit": 5000})).json()
    assert page["model_version"] == OLD_MODEL
    # The retired model has no series rows: only the live futures predict anything.
    predicted = [p for p in page["items"] if p["pred_close"] is not None]
    assert {p["split"] for p in predicted} == {"live"}
    assert len(predicted) == len(seeded.live_times)
    missing = await client.get("/series", params={"model_version": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


async def test_series_without_any_model_has_candles_only(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    from tests.services.gateway.seed import candle_rows

    await db.copy_records_to_table(
        "candles",
        records=[("BTCUSDT", "5m", *r) for r in candle_rows(5)],
        columns=["symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume",
                 "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume"],
    )
    page = (await client.get("/series")).json()
    assert page["count"] == 5 and page["model_version"] is None and page["hit_rate"] is None
    assert all(p["pred_close"] is None and p["test"] is False for p in page["items"])


async def test_futures_and_latest_prediction(client: httpx.AsyncClient, seeded: Seeded) -> None:
    page = (await client.get("/futures", params={"limit": 5000})).json()
    assert [f["time"] for f in page["items"]] == [*seeded.live_times, seeded.next_time]
    filled = page["items"][:-1]
    assert all(f["real_close"] is not None for f in filled)
    assert all(f["err_close"] == pytest.approx(f["real_close"] - f["pred_close"]) for f in filled)
    assert page["items"][-1]["real_close"] is None and page["items"][-1]["filled_at"] is None
    assert all(f["base_time"] == f["time"] - STEP and f["model_version"] == CHAMPION for f in page["items"])

    latest = (await client.get("/predictions/latest")).json()
    assert latest["time"] == seeded.next_time and latest["real_close"] is None
    assert latest["symbol"] == "BTCUSDT" and 5 <= latest["age_seconds"] < 3600


async def test_latest_prediction_and_current_model_404_when_there_is_none(client: httpx.AsyncClient) -> None:
    for path in ("/predictions/latest", "/models/current"):
        response = await client.get(path)
        assert response.status_code == 404
        assert "yet" in response.json()["detail"]
    assert (await client.get("/models")).json()["items"] == []


async def test_models_with_metrics_beside_baselines(client: httpx.AsyncClient, seeded: Seeded) -> None:
    models = (await client.get("/models")).json()["items"]
    assert [m["version"] for m in models] == [CHAMPION, OLD_MODEL]  # newest first
    champions = (await client.get("/models", params={"status": "champion"})).json()["items"]
    assert [m["version"] for m in champions] == [CHAMPION]
    current = (await client.get("/models/current")).json()
    assert current["version"] == CHAMPION and current["status"] == "champion"
    assert current["metrics"] == METRICS and current["baseline_metrics"] == BASELINES
    assert current["test_start"] == seeded.test_start
    assert current["data_start"] == seeded.times[0] and current["data_end"] == seeded.data_end
    assert current["promoted_at"] is not None
    assert (await client.get("/models", params={"status": "bogus"})).status_code == 422


async def test_drift_and_jobs(client: httpx.AsyncClient, seeded: Seeded) -> None:
    drift = (await client.get("/drift")).json()
    assert [d["reason"] for d in drift["items"]] == ["mape above threshold", "mape/persistence above ratio"]
    assert drift["items"][0]["detected_at"] < drift["items"][1]["detected_at"]
    newest = (await client.get("/drift", params={"limit": 1})).json()
    assert newest["count"] == 1 and newest["items"][0]["mape"] == 1.1
    assert newest["prev_end"] == newest["items"][0]["detected_at"]
    older = (await client.get("/drift", params={"end": newest["prev_end"]})).json()
    assert [d["mape"] for d in older["items"]] == [0.9]

    jobs = (await client.get("/jobs")).json()["items"]
    assert [j["status"] for j in jobs] == ["success", "rejected", "running"]
    assert jobs[-1]["finished_at"] is None
    trains = (await client.get("/jobs", params={"job": "train BTCUSDT 5m", "status": "rejected"})).json()
    assert [j["message"] for j in trains["items"]] == ["worse than champion"]


async def test_symbols_docs_asyncapi_dashboard_and_metrics(client: httpx.AsyncClient, seeded: Seeded) -> None:
    assert (await client.get("/symbols")).json() == {
        "symbols": ["BTCUSDT"], "interval": "5m", "intervals": ["5m"],
        "streams": [{"symbol": "BTCUSDT", "interval": "5m"}], "window": 60}
    missing = await client.get("/candles", params={"interval": "1h"})
    assert missing.status_code == 404 and missing.json()["detail"] == "interval 1h is not served here; served: 5m"
    assert "swagger" in (await client.get("/docs")).text.lower()
    spec = (await client.get("/openapi.json")).json()
    assert {"/candles", "/series", "/futures", "/predictions/latest", "/models", "/models/current", "/drift", "/jobs",
            "/predict", "/train"} <= set(spec["paths"])
    assert set(spec["paths"]["/predict"]["post"]["requestBody"]["content"]) == {"application/json",
                                                                                "multipart/form-data", "text/csv"}
    assert {p["name"] for p in spec["paths"]["/predict"]["post"]["parameters"]} == {"horizon", "symbol"}

    asyncapi = (await client.get("/asyncapi")).json()
    assert asyncapi["asyncapi"].startswith("3.")
    prefix = client._transport.app.state.settings.topic_prefix  # type: ignore[attr-defined]
    assert {f"{prefix}{t}" for t in ("candles", "predictions", "train-requests", "dead-letter")} <= set(
        asyncapi["channels"]
    )
    assert {"Candle", "Prediction", "RealClose", "TrainRequest"} <= set(asyncapi["components"]["schemas"])

    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/vendor/lightweight-charts.standalone.production.js" in page.text
    assert "https://" not in page.text and "http://" not in page.text  # nothing from a CDN
    vendored = await client.get("/static/vendor/lightweight-charts.standalone.production.js")
    assert vendored.status_code == 200 and "Lightweight Charts" in vendored.text[:300]

    await client.get("/nowhere/at/all")
    metrics = (await client.get("/metrics")).text
    assert 'candlecast_http_requests_total{method="GET",route="/symbols",status="200"}' in metrics
    assert 'route="/nowhere/at/all"' not in metrics and 'route="unmatched",status="404"' in metrics
    assert 'candlecast_http_request_seconds_count{method="GET",route="/symbols"}' in metrics
    assert "process_resident_memory_bytes" in metrics
