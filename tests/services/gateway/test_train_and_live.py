"""`POST /train` (admin token, publishes a TrainRequest on real Kafka) and `WS /ws/predictions`
(live from the predictions topic, through a real server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from aiokafka import AIOKafkaConsumer

from services.gateway.app import create_app
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Prediction, RealClose, TrainRequest
from shared.messaging.runtime import make_broker
from tests.services.gateway.conftest import ADMIN_TOKEN, running, serve, wait_kafka_connected


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "admin token is required"),
        ({"Authorization": "Bearer not-the-token"}, "wrong admin token"),
        ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "admin token is required"),
    ],
)
async def test_train_without_the_token_is_401(client: httpx.AsyncClient, headers: dict[str, str], why: str) -> None:
    response = await client.post("/train", headers=headers)
    assert response.status_code == 401
    assert why in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_train_is_closed_when_no_token_is_configured(settings: Settings) -> None:
    assert settings.admin_token == ""
    async with running(create_app(settings)) as client:
        response = await client.post("/train", headers={"Authorization": "Bearer "})
        assert response.status_code == 401 and "no admin token" in response.json()["detail"]


async def test_train_with_the_token_publishes_a_train_request(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    await wait_kafka_connected(client._transport.app.state)  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    unknown = await client.post("/train", headers=auth, json={"symbol": "NOPEUSDT"})
    assert unknown.status_code == 404
    response = await client.post("/train", headers=auth, json={"reason": "a test asked"})
    assert response.status_code == 202, response.text
    assert response.json()["symbol"] == "BTCUSDT" and response.json()["reason"] == "a test asked"
    bare = await client.post("/train", headers=auth)
    assert bare.status_code == 202 and bare.json()["reason"] == "manual"

    consumer = AIOKafkaConsumer(gateway_settings.topic(topics.TRAIN_REQUESTS), bootstrap_servers=gateway_settings.kafka,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000, max_records=10)
        records = [r for batch in batches.values() for r in batch]
        while len(records) < 2:
            more = await consumer.getmany(timeout_ms=10_000, max_records=10)
            assert more, "the train requests did not arrive"
            records += [r for batch in more.values() for r in batch]
    finally:
        await consumer.stop()
    requests = [TrainRequest.model_validate_json(r.value) for r in records]
    assert [(r.symbol, r.interval, r.reason) for r in requests] == [("BTCUSDT", "5m", "a test asked"),
                                                                     ("BTCUSDT", "5m", "manual")]
    assert all(r.key == b"BTCUSDT" for r in records)


def _prediction(symbol: str, version: str, close: float = 100.0) -> Prediction:
    return Prediction(symbol=symbol, interval="5m", base_time=0, target_time=300_000, open=100.0, high=101.0,
                      low=99.0, close=close, amplitude=0.02, p_up=0.55, model_version=version)


async def _next(ws: Any, skip_probes: bool = True) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if not (skip_probes and message["data"].get("model_version") == "probe"):
            return message


async def test_websocket_pushes_predictions_and_real_closes_live(gateway_settings: Settings) -> None:
    broker = make_broker(gateway_settings, "test")
    await broker.start()
    topic = gateway_settings.topic(topics.PREDICTIONS)
    try:
        async with serve(gateway_settings) as url:
            ws_url = url.replace("http", "ws") + "/ws/predictions"
            async with websockets.connect(ws_url + "?symbol=btcusdt") as btc, websockets.connect(ws_url) as every:
                # The gateway reads from the latest offset: probe until its consumer is assigned.
                for _ in range(120):
                    await broker.publish(_prediction("BTCUSDT", "probe"), topic, key=b"BTCUSDT")
                    try:
                        await asyncio.wait_for(btc.recv(), 0.5)
                        break
                    except TimeoutError:
                        continue
                else:
                    pytest.fail("no probe came through the websocket")
                real = RealClose(symbol="BTCUSDT", interval="5m", time=300_000, pred_close=100.0, real_close=101.0,
                                 err_close=1.0, model_version="v7")
                await broker.publish(real, topic, key=b"BTCUSDT")
                await broker.publish(b'{"neither": "prediction nor real close"}', topic, key=b"BTCUSDT")
                await broker.publish(_prediction("ETHUSDT", "v7", 5.0), topic, key=b"ETHUSDT")
                await broker.publish(_prediction("BTCUSDT", "v7", 102.0), topic, key=b"BTCUSDT")

                first, second = await _next(btc), await _next(btc)
                assert first == {"type": "real_close", "data": real.model_dump(mode="json")}
                assert second["type"] == "prediction" and second["data"]["close"] == 102.0
                seen = [await _next(every) for _ in range(3)]
                assert [(m["type"], m["data"]["symbol"]) for m in seen] == [
                    ("real_close", "BTCUSDT"), ("prediction", "ETHUSDT"), ("prediction", "BTCUSDT")]

                async with httpx.AsyncClient() as http:
                    metrics = (await http.get(url + "/metrics")).text
                assert "candlecast_ws_clients 2.0" in metrics
                assert 'candlecast_live_messages_total{kind="ignored"}' in metrics

            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(ws_url + "?symbol=NOPE"):
                    pass
    finally:
        await broker.stop()
