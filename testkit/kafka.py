"""Looking at Kafka from outside the services, for tests and benchmarks: read a topic, committed
offsets, end offsets, raw bytes in, clean-up.

Plain aiokafka clients with no consumer group, so looking never moves anybody's offsets.
Benchmarks import from here too: a benchmark must not depend on the test suite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.topics import partitions


async def read_topic(settings: Settings, name: str, *, within: float = 30.0) -> list[ConsumerRecord[Any, Any]]:
    """Every record now in the topic `settings.topic(name)`, partition by partition, oldest first."""
    topic = settings.topic(name)
    parts = await partitions(settings.kafka, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        for tp in parts:
            consumer.seek(tp, begins[tp])  # explicit: seek_to_beginning right after assign() may never fetch
        records: list[ConsumerRecord[Any, Any]] = []
        remaining = {tp for tp in parts if ends[tp] > begins[tp]}
        deadline = time.monotonic() + within
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, items in batch.items():
                records.extend(items)
                if items and items[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"could not read {topic} to its end within {within:.0f}s")
        return records
    finally:
        await consumer.stop()


async def read_json(settings: Settings, name: str) -> list[dict[str, Any]]:
    """The bodies of every record now in `settings.topic(name)`."""
    return [json.loads(r.value) for r in await read_topic(settings, name)]


async def committed(settings: Settings, group: str, name: str) -> int:
    """Offsets `group` has committed on `settings.topic(name)`, summed over its partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    topic = settings.topic(name)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def delete_topics(settings: Settings) -> None:
    """Remove every topic of `settings`' prefix; best effort, as a leftover topic only costs disk."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(t) for t in topics.ALL_TOPICS])
    except Exception:
        pass
    finally:
        await admin.close()



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
