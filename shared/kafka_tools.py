"""Looking at Kafka from outside the services, for tests and benchmarks (and waiting on what they see).

Plain aiokafka clients with no consumer group, so looking never moves anybody's offsets. Tests
and benchmarks both import from here: a benchmark must not depend on the test suite.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import topics
from shared.config import Settings


def free_port() -> int:
    """A TCP port nothing listens on now (for a server a test or benchmark is about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    check: Callable[[], Awaitable[object]],
    what: str,
    *,
    within: float = 60.0,
    every: float = 0.1,
    task: asyncio.Task[Any] | None = None,
) -> float:
    """Poll `check` until it returns something true; returns the seconds it took.

    Fails naming `what` after `within` seconds, or at once when `task` (the service under test)
    has ended, with its exception: a timeout would hide why.
    """
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"the service stopped while waiting for {what}")
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(every)


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
