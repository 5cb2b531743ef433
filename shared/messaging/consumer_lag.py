"""Consumer lag as a Prometheus gauge: how far a consumer group is behind the end of its topics.

Measured from outside the consumer (committed offsets against end offsets), so it keeps telling
the truth while the consumer itself is stuck — exactly when the number matters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Gauge

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "candlecast_consumer_lag",
    "Messages a consumer group has not yet committed, by topic and partition",
    ["service", "topic", "partition"],
)


async def group_lag(bootstrap: str, group_id: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """Lag per (topic, partition) for one group; partitions it never committed count from the start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
        partitions = [
            TopicPartition(t["topic"], p["partition"]) for t in described for p in t.get("partitions", [])
        ]
        if not partitions:
            return {}
        committed = await _committed_offsets(admin, group_id, partitions)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    lag = {}
    for tp in partitions:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag[(tp.topic, tp.partition)] = max(0, ends[tp] - done)
    return lag


async def report_lag_forever(
    service: str, bootstrap: str, group_id: str, topics: Sequence[str], every: float = 15.0
) -> None:
    """Refresh the gauge every `every` seconds until cancelled; errors are logged, never fatal."""
    while True:
        try:
            for (topic, partition), lag in (await group_lag(bootstrap, group_id, topics)).items():
                CONSUMER_LAG.labels(service, topic, str(partition)).set(lag)
        except Exception as exc:  # lag is a diagnostic: a broker hiccup must not kill the service
            log.debug("consumer lag not measured: %s", exc)
        await asyncio.sleep(every)


async def _committed_offsets(
    admin: AIOKafkaAdminClient, group_id: str, partitions: list[TopicPartition], attempts: int = 20
) -> dict[TopicPartition, OffsetAndMetadata]:
    """On a new broker the offsets topic (and so the group coordinator) appears on first use."""
    for attempt in range(attempts):
        try:
            result: dict[TopicPartition, OffsetAndMetadata] = await admin.list_consumer_group_offsets(
                group_id, partitions=partitions
            )
            return result
        except GroupCoordinatorNotAvailableError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    return {}
