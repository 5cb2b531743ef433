"""The predictor's Kafka subscribers: closed candles in batches, and model promotions.

Candles: one consumer group (scales out by partitions, i.e. by symbol), offsets committed only
after the batch is in the database (`NACK_ON_ERROR` rewinds a batch that failed on the
infrastructure, which is replayed). A batch that fails for another reason is retried, then
taken apart (`shared.messaging.failures`): a candle that fails alone goes to dead-letter with the error and
the next candles are predicted. A message that is not a valid candle of this interval goes to
dead-letter too, once the rest of its batch is stored, so a replayed batch cannot dead-letter it twice.

Promotions: no consumer group, so that every predictor instance hears every promotion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from services.predictor.engine import Predictor
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle, ModelPromoted
from shared.messaging.failures import RetryPolicy, failure_reason, is_transient, process_isolating
from shared.messaging.runtime import (
    BATCH_WAIT_MS,
    PARTITION_FETCH_BYTES,
    RETRY_PAUSE,
    DeadLetters,
    decode_or_dead_letter,
    kafka_records,
    undecoded,
)
from shared.model.champions import ChampionCache

log = logging.getLogger(__name__)

SERVICE = "predictor"


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}candlecast-predictor"


def register(broker: KafkaBroker, settings: Settings, predictor: Predictor, champions: ChampionCache) -> None:
    """Subscribe the predictor's handlers on `broker` (before `broker.start()`)."""
    candles_topic = settings.topic(topics.CANDLES)
    retry = RetryPolicy.from_settings(settings)
    models_topic = settings.topic(topics.MODELS)

    @broker.subscriber(
        candles_topic,
        batch=True,
        group_id=group_id(settings),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=settings.predictor_batch_size,
        batch_timeout_ms=BATCH_WAIT_MS,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        decoder=undecoded,
    )
    async def on_candles(message: KafkaMessage) -> None:
        letters = DeadLetters(broker, settings, service=SERVICE)
        items: list[tuple[ConsumerRecord[Any, Any], Candle]] = []
        for record in kafka_records(message):
            candle = letters.decode(Candle, record)
            if candle is None:
                continue
            if candle.interval not in settings.intervals:
                letters.reject(record, f"interval {candle.interval!r}: this predictor serves "
                                       f"{', '.join(settings.intervals)}")
                continue
            items.append((record, candle))

        async def predict(part: Sequence[tuple[ConsumerRecord[Any, Any], Candle]]) -> None:
            await predictor.process([c for _, c in part], [r.timestamp for r, _ in part])

        try:
            failed = await process_isolating(items, predict, retry, what="a batch of candles", transient=is_transient)
        except Exception:
            log.exception("a batch of %d candles failed; it will be replayed", len(items))
            await asyncio.sleep(RETRY_PAUSE)
            raise
        for (record, _), error in failed:
            letters.reject(record, failure_reason(error), kind="handler_error")
        await letters.send()

    @broker.subscriber(models_topic, auto_offset_reset="latest", decoder=undecoded, batch=True)
    async def on_model_promoted(message: KafkaMessage) -> None:
        for record in kafka_records(message):
            event = await decode_or_dead_letter(broker, settings, ModelPromoted, record, service=SERVICE)
            if event is not None and event.interval in settings.intervals:
                log.info("promotion of %s for %s heard", event.version, event.symbol)
                await champions.refresh(event.symbol, event.interval)
                await champions.refresh_challengers(event.symbol, event.interval)
