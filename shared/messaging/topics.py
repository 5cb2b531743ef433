"""The topic registry: every Kafka topic declared once, with its contract(s) and its key.

Publishers name a topic by these constants, subscribers decode with `decode`, and the gateway's
AsyncAPI document is generated from `REGISTRY`; so "which contract goes on which topic" is
written here and nowhere else. Every topic is keyed by symbol (one stream's events stay in one
partition, in order).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from pydantic import BaseModel, Field, TypeAdapter

from shared.config import Settings
from shared.messaging import events

log = logging.getLogger(__name__)

CANDLES = "candles"
CANDLES_LIVE = "candles-live"
PREDICTIONS = "predictions"
DRIFT = "drift"
TICKS = "ticks"
TRAIN_REQUESTS = "train-requests"
MODELS = "models"
DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Topic:
    """One topic: its name (before the settings' prefix), what travels on it, who writes it."""

    name: str
    contracts: tuple[type[BaseModel], ...]
    description: str
    key: str = "symbol"
    #: How long the broker keeps messages (None: forever). `Settings.topic_retention_hours` overrides.
    retention_hours: float | None = None

    @property
    def schema(self) -> Any:
        """The payload type: the contract, or a union told apart by its `kind` field."""
        if len(self.contracts) == 1:
            return self.contracts[0]
        union: Any = self.contracts[0]
        for contract in self.contracts[1:]:
            union = union | contract
        return union


REGISTRY: dict[str, Topic] = {
    topic.name: topic
    for topic in (
        # Kept forever: the record the recorder and the ingestor's resume read back.
        Topic(CANDLES, (events.Candle,), "Every closed kline, backfilled and live (ingestor)."),
        # Read live only (charts): a day is plenty.
        Topic(CANDLES_LIVE, (events.Candle,),
              "Klines still forming, as the websocket updates them, for live charts: never a closed "
              "candle; only with `publish_forming_candles` (ingestor).", retention_hours=24),
        # Read live (websocket clients, the gateway); Postgres `futures` holds them for good.
        Topic(PREDICTIONS, (events.Prediction, events.RealClose),
              "Next-candle predictions (`kind: prediction`), and the real close of each once known "
              "(`kind: real_close`) (predictor).", retention_hours=7 * 24),
        Topic(DRIFT, (events.DriftEvent,), "The model's rolling error crossed a threshold (predictor)."),
        Topic(TICKS, (events.DailyTick,), "The first candle of a new UTC day was recorded (ingestor)."),
        Topic(TRAIN_REQUESTS, (events.TrainRequest,), "Requests for a training run (gateway POST /train, CLI)."),
        Topic(MODELS, (events.ModelPromoted,), "A new champion model; predictors switch to it (trainer)."),
        # A month to look at what went wrong, and to replay it once fixed.
        Topic(DEAD_LETTER, (events.DeadLetter,),
              "Messages that could not be processed, with the reason (every service).", retention_hours=30 * 24),
    )
}

ALL_TOPICS = tuple(REGISTRY)

_PREDICTIONS_V2: TypeAdapter[events.Prediction | events.RealClose] = TypeAdapter(
    Annotated[events.Prediction | events.RealClose, Field(discriminator="kind")]
)


def decode(name: str, payload: bytes | str) -> BaseModel:
    """The payload as the contract of topic `name`; `pydantic.ValidationError` if it is none.

    On a topic with several contracts the `kind` field says which. Messages written before the
    discriminator existed (schema_version 1, no `kind`) are still read: the first contract they
    validate against wins, as the readers of that version did.
    """
    topic = REGISTRY[name]
    if len(topic.contracts) == 1:
        return topic.contracts[0].model_validate_json(payload)
    if name == PREDICTIONS and b'"kind"' in (payload.encode() if isinstance(payload, str) else payload):
        return _PREDICTIONS_V2.validate_json(payload)
    error: Exception | None = None
    for contract in topic.contracts:
        try:
            return contract.model_validate_json(payload)
        except ValueError as exc:
            error = exc
    assert error is not None
    raise error


def symbol_key(symbol: str) -> bytes:
    return symbol.upper().encode()


def retention_ms(settings: Settings, name: str) -> str:
    """The `retention.ms` of a topic: the settings' override, else the registry's (-1: forever)."""
    hours = settings.topic_retention_hours.get(name, REGISTRY[name].retention_hours)
    return "-1" if hours is None or hours <= 0 else str(int(hours * 3_600_000))


def topic_configs(settings: Settings, name: str, replicas: int) -> dict[str, str]:
    """The whole config a topic is created (and kept) with: AlterConfigs replaces a topic's set, so
    altering only the retention would drop `min.insync.replicas` of a replicated cluster."""
    return {"retention.ms": retention_ms(settings, name), **({"min.insync.replicas": "2"} if replicas >= 3 else {})}


async def ensure_topics(settings: Settings, wait_seconds: float = 60.0) -> list[str]:
    """Create the missing topics (with the prefix) and set every topic's retention; returns the created.

    Retention is set explicitly (the registry's, or `topic_retention_hours`), on existing topics
    too: a broker's default (7 days on Kafka's own images) would otherwise expire `candles`."""
    unknown = set(settings.topic_retention_hours) - set(REGISTRY)
    if unknown:
        raise ValueError(f"CANDLECAST_TOPIC_RETENTION_HOURS: unknown topics {sorted(unknown)}; "
                         f"known: {', '.join(REGISTRY)}")
    names = [settings.topic(t) for t in ALL_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=15000)
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("kafka at %s not reachable yet; retrying", settings.kafka)
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        replicas = min(3, settings.kafka_brokers)  # with acks=all and 2 in sync, one broker may fail
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(settings.topic(t), settings.kafka_partitions, replicas,
                              topic_configs=topic_configs(settings, t, replicas))
                     for t in ALL_TOPICS if settings.topic(t) in missing]
                )
            except TopicAlreadyExistsError:
                pass
        existing_ours = [t for t in ALL_TOPICS if settings.topic(t) in existing]
        if existing_ours:
            responses = await admin.alter_configs([
                ConfigResource(ConfigResourceType.TOPIC, settings.topic(t), topic_configs(settings, t, replicas))
                for t in existing_ours])
            refused = [f"{name}: {message or code}" for response in responses
                       for code, message, _, name in response.resources if code]
            if refused:
                raise RuntimeError(f"Kafka refused the topics' configs: {'; '.join(refused)}")
        return missing
    finally:
        await admin.close()


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The topic's partitions, in order (none if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    numbers = sorted(p["partition"] for t in described if t["error_code"] == 0 for p in t["partitions"])
    return [TopicPartition(topic, n) for n in numbers]
