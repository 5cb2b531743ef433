"""Where a (re)started ingestor picks up, per stream: after the newest candle it can find.

The database is the record, but the recorder may be a few candles behind the topic (a crash
between publish and record); so the tail of the `candles` topic is read too and the later of the
two wins. Starting after the topic's last candle is what keeps a restart from publishing the
same candle twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ingestor.store import last_stored
from shared.config import Settings
from shared.market.streams import Stream
from shared.messaging import topics
from shared.messaging.topics import partitions

log = logging.getLogger(__name__)

# Messages read back from the end of each partition; symbols share partitions, so this is per
# partition, not per symbol.
TAIL = 2000


async def last_in_topic(settings: Settings, streams: Sequence[Stream], tail: int = TAIL) -> dict[Stream, int]:
    """Newest open time per stream among the last `tail` messages of each partition of `candles`."""
    topic = settings.topic(topics.CANDLES)
    wanted = set(streams)
    found: dict[Stream, int] = {}
    assigned = await partitions(settings.kafka, topic)
    if not assigned:
        return found
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka, enable_auto_commit=False, group_id=None, request_timeout_ms=15000
    )
    await consumer.start()
    try:
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        begins = await consumer.beginning_offsets(assigned)
        remaining: dict[TopicPartition, int] = {}
        for tp in assigned:
            if ends[tp] > begins[tp]:
                consumer.seek(tp, max(begins[tp], ends[tp] - tail))
                remaining[tp] = ends[tp]
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=2000)
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    _note(found, record.value, wanted)
                if records and records[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()
    return found


def _note(found: dict[Stream, int], value: bytes | None, wanted: set[Stream]) -> None:
    try:
        body = json.loads(value or b"")
        stream, open_time = Stream(body["symbol"], body["interval"]), int(body["open_time"])
    except (ValueError, KeyError, TypeError):
        return  # not a candle: the recorder dead-letters it; here it just does not count
    if stream in wanted:
        found[stream] = max(found.get(stream, open_time), open_time)


async def resume_points(settings: Settings, pool: asyncpg.Pool) -> dict[Stream, int]:
    """Newest known open time per stream (from the database or the topic, whichever is later)."""
    stored: dict[Stream, int] = {}
    for interval in settings.intervals:
        for symbol, last in (await last_stored(pool, settings.symbols, interval)).items():
            stored[Stream(symbol, interval)] = last
    published = await last_in_topic(settings, settings.streams)
    points = {}
    for stream in settings.streams:
        known = [t for t in (stored.get(stream), published.get(stream)) if t is not None]
        if known:
            points[stream] = max(known)
    log.info("resume points: stored %s, in topic %s", stored, published)
    return points
