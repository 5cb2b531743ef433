"""Fault 6: garbage on every topic (not JSON, a future schema version, wrong types).

The whole pipeline runs as real processes. Each consumer dead-letters what it cannot read, with
the reason, counts it in `candlecast_dead_lettered_total`, and goes on: candles keep being
stored and predicted, the trainer still takes requests, the gateway still answers.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
from pydantic import BaseModel

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle, DailyTick, DriftEvent, ModelPromoted, Prediction, TrainRequest
from testkit.kafka import publish_raw, read_json
from testkit.metrics import metric
from testkit.waiting import eventually
from tests.faults.conftest import Spawn
from tests.faults.support import SYMBOL, against, binance, champion, settled, sim_now

EXAMPLES: dict[str, BaseModel] = {
    topics.CANDLES: Candle(symbol=SYMBOL, interval="5m", open_time=0, close_time=299_999, open=1, high=2, low=0.5,
                           close=1.5, volume=1, quote_volume=1, trades=1, taker_buy_base_volume=0,
                           taker_buy_quote_volume=0),
    topics.MODELS: ModelPromoted(symbol=SYMBOL, interval="5m", version="v-garbage", artifact_path="/nowhere"),
    topics.TICKS: DailyTick(symbol=SYMBOL, interval="5m", day="2024-01-02", candle_time=0),
    topics.DRIFT: DriftEvent(symbol=SYMBOL, interval="5m", window=10, mape=9, persistence_mape=1, threshold=1,
                             reason="garbage"),
    topics.TRAIN_REQUESTS: TrainRequest(symbol=SYMBOL, interval="5m", reason="garbage"),
    topics.PREDICTIONS: Prediction(symbol=SYMBOL, interval="5m", base_time=0, target_time=300_000, open=1, high=1,
                                   low=1, close=1, amplitude=0, p_up=0.5, model_version="v"),
}

#: Who reads each topic and dead-letters what it cannot read.
READERS = {
    topics.CANDLES: ("ingestor", "predictor"),
    topics.MODELS: ("predictor",),
    topics.TICKS: ("trainer",),
    topics.DRIFT: ("trainer",),
    topics.TRAIN_REQUESTS: ("trainer",),
}


def garbage(example: BaseModel) -> list[bytes]:
    """Not JSON; the right shape with a schema version nobody knows; the right version, wrong types."""
    body = json.loads(example.model_dump_json())
    future = {**body, "schema_version": 99}  # no contract knows it (Prediction and RealClose are at 2)
    wrong = {**body, "symbol": 12345, "interval": ["5m"]}
    return [b'{"schema_version": 1, "symbol": "BTC', json.dumps(future).encode(), json.dumps(wrong).encode()]


async def test_garbage_on_every_topic_is_dead_lettered_and_nothing_stops(
    settings: Settings, spawn: Spawn, tiny_model_5m: Path, db: asyncpg.Connection
) -> None:
    async with binance() as sim:
        config = against(settings, sim, train_config={"window": 12, "units": 4, "epochs": 1},
                         train_min_candles=1_000_000)
        await champion(config, tiny_model_5m)
        ingestor = await spawn("ingestor", config).started()
        predictor = await spawn("predictor", config).started()
        trainer = await spawn("trainer", config).started()
        gateway = await spawn("gateway", config).started()
        everyone = [ingestor, predictor, trainer, gateway]

        async def predictions_reach_the_gateway() -> bool:
            return await metric(gateway.port or 0, "candlecast_live_messages_total", kind="prediction") > 0

        await eventually(predictions_reach_the_gateway, "live predictions at the gateway", within=120, watch=everyone)

        sent: dict[str, list[bytes]] = {name: garbage(example) for name, example in EXAMPLES.items()}
        for name, values in sent.items():
            await publish_raw(config, name, values, key=SYMBOL.encode())
        after_garbage = await sim_now(sim)

        expected = Counter({(service, config.topic(name)): 3 for name, services in READERS.items()
                            for service in services})
        letters: list[dict[str, object]] = []

        async def all_dead_lettered() -> bool:
            letters[:] = await read_json(config, topics.DEAD_LETTER)
            return Counter((str(x["service"]), str(x["source_topic"])) for x in letters) == expected

        try:
            await eventually(all_dead_lettered, "every garbage message dead-lettered once per reader", within=60,
                             watch=everyone)
        except AssertionError:
            got = Counter((str(x["service"]), str(x["source_topic"])) for x in letters)
            raise AssertionError(f"dead letters {dict(got)}, expected {dict(expected)}") from None

        for letter in letters:
            name = str(letter["source_topic"]).removeprefix(config.topic_prefix)
            assert letter["payload"].encode() in sent[name]  # type: ignore[attr-defined]
            assert letter["key"] == SYMBOL
            reason = str(letter["reason"])
            if letter["payload"] == sent[name][0].decode():
                assert "JSON" in reason, reason
            elif letter["payload"] == sent[name][1].decode():
                assert "schema_version" in reason, reason
            else:
                assert "symbol" in reason and "interval" in reason, reason

        ports = {"ingestor": ingestor.port, "predictor": predictor.port, "trainer": trainer.port}
        for (service, source), count in expected.items():
            counted = await metric(ports[service] or 0, "candlecast_dead_lettered_total", service=service,
                                   source_topic=source)
            assert counted == count, f"{service} counted {counted} dead letters from {source}"
        # The gateway only fans predictions out to its websocket clients; every instance reads every
        # message, so it ignores (and counts) what it cannot read rather than dead-lettering it N times.
        assert await metric(gateway.port or 0, "candlecast_live_messages_total", kind="ignored") == 3

        # Nothing else stopped: candles are stored and predicted past the garbage, without a hole...
        final = await settled(db, until=after_garbage + 20 * 300_000, within=90, watch=everyone)
        assert final.futures_expected > 0
        # ...the trainer still takes a request...
        await publish_raw(config, topics.TRAIN_REQUESTS,
                          [TrainRequest(symbol=SYMBOL, interval="5m", reason="after the garbage").model_dump_json()
                           .encode()], key=SYMBOL.encode())

        async def training_started() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM job_logs WHERE message LIKE '%after the garbage%'"))

        await eventually(training_started, "a training run for the request sent after the garbage", within=60,
                         watch=everyone)
        # ...and the gateway still answers.
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"http://127.0.0.1:{gateway.port}/ready")).json() == {"status": "ready"}
        for process in everyone:
            process.check_alive()
