"""Kafka as a fault test handles it, beyond what `shared.kafka_tools` reads: raw bytes in, end offsets.

Plain aiokafka clients with no consumer group, so looking never moves anybody's offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.config import Settings
from shared.kafka_tools import partitions


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of each partition of `topic` (what a caught-up consumer has committed)."""
    parts = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def publish_raw(settings: Settings, name: str, values: Sequence[bytes], key: bytes | None = None) -> None:
    """Publish bytes as they are (garbage included), confirmed by the broker, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic(name), value, key=key)
    finally:
        await producer.stop()
