"""The predictor's Kafka subscribers: closed candles in batches, and model promotions.

Candles: one consumer group (scales out by partitions, i.e. by symbol), offsets committed only
after the batch is in the database (`NACK_ON_ERROR` rewinds a failed batch, which is replayed).
A message that is not a valid candle of this interval goes to dead-letter once the rest of its
batch is stored, so a failed batch cannot dead-letter it twice.

Promotions: no consumer group, so that every predictor instance hears every promotion.
"""

from __future__ import annotations

import asyncio
import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from services.predictor.engine import HistoryGap, Predictor
from shared import topics
from shared.config import Settings
from shared.events import Candle, ModelPromoted
from shared.model.champions import ChampionCache
from shared.runtime import (
    BATCH_WAIT_MS,
    RETRY_PAUSE,
    DeadLetters,
    decode_or_dead_letter,
    kafka_records,
    undecoded,
)

log = logging.getLogger(__name__)

SERVICE = "predictor"


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}candlecast-predictor"


def register(broker: KafkaBroker, settings: Settings, predictor: Predictor, champions: ChampionCache) -> None:
    """Subscribe the predictor's handlers on `broker` (before `broker.start()`)."""
    candles_topic = settings.topic(topics.CANDLES)
    models_topic = settings.topic(topics.MODELS)

    @broker.subscriber(
        candles_topic,
        batch=True,
        group_id=group_id(settings),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=settings.predictor_batch_size,
        batch_timeout_ms=BATCH_WAIT_MS,
        decoder=undecoded,
    )
    async def on_candles(message: KafkaMessage) -> None:
        candles: list[Candle] = []
        received: list[int] = []
        letters = DeadLetters(broker, settings, service=SERVICE)
        for record in kafka_records(message):
            candle = letters.decode(Candle, record)
            if candle is None:
                continue
            if candle.interval != settings.interval:
                letters.reject(record, f"interval {candle.interval!r}: this predictor serves {settings.interval!r}")
                continue
            candles.append(candle)
            received.append(record.timestamp)
        try:
            await predictor.process(candles, received)
        except HistoryGap as exc:
            log.warning("%s; replaying the batch in %.0f s", exc, RETRY_PAUSE)
            await asyncio.sleep(RETRY_PAUSE)
            raise
        except Exception:
            log.exception("a batch of %d candles failed; it will be replayed", len(candles))
            await asyncio.sleep(RETRY_PAUSE)
            raise
        await letters.send()

    @broker.subscriber(models_topic, auto_offset_reset="latest", decoder=undecoded, batch=True)
    async def on_model_promoted(message: KafkaMessage) -> None:
        for record in kafka_records(message):
            event = await decode_or_dead_letter(broker, settings, ModelPromoted, record, service=SERVICE)
            if event is not None and event.interval == settings.interval:
                log.info("promotion of %s for %s heard", event.version, event.symbol)
                await champions.refresh(event.symbol, event.interval)
