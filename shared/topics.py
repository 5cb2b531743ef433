"""Kafka topic names and their creation. Every topic is keyed by symbol."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.config import Settings

log = logging.getLogger(__name__)

CANDLES = "candles"
CANDLES_LIVE = "candles-live"
PREDICTIONS = "predictions"
DRIFT = "drift"
TICKS = "ticks"
TRAIN_REQUESTS = "train-requests"
MODELS = "models"
DEAD_LETTER = "dead-letter"

ALL_TOPICS = (CANDLES, CANDLES_LIVE, PREDICTIONS, DRIFT, TICKS, TRAIN_REQUESTS, MODELS, DEAD_LETTER)


def symbol_key(symbol: str) -> bytes:
    return symbol.upper().encode()


async def ensure_topics(settings: Settings, wait_seconds: float = 60.0) -> list[str]:
    """Create the missing topics (with the prefix); existing ones are left as they are."""
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
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(n, settings.kafka_partitions, 1) for n in missing]
                )
            except TopicAlreadyExistsError:
                pass
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
