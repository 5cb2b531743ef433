"""The trainer's Kafka subscriber: daily ticks, drift events and training requests.

One consumer in one group reads the three topics; a handler only decides and schedules (the
training itself runs in the worker process), so the consumer keeps polling and keeps its group
membership through hour-long trainings. Offsets are committed once the trigger is scheduled.
"""

from __future__ import annotations

import asyncio
import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import BaseModel

from services.trainer.triggers import Triggers
from shared import topics
from shared.config import Settings
from shared.events import DailyTick, DriftEvent, TrainRequest
from shared.runtime import RETRY_PAUSE, decode_or_dead_letter, kafka_records, undecoded

log = logging.getLogger(__name__)

SERVICE = "trainer"


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}candlecast-trainer"


def register(broker: KafkaBroker, settings: Settings, triggers: Triggers) -> None:
    """Subscribe the trainer's handler on `broker` (before `broker.start()`)."""
    contracts: dict[str, type[BaseModel]] = {
        settings.topic(name): topics.REGISTRY[name].contracts[0] for name in (topics.TICKS, topics.DRIFT,
                                                                             topics.TRAIN_REQUESTS)
    }

    @broker.subscriber(
        *contracts,
        group_id=group_id(settings),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=undecoded,
    )
    async def on_trigger(message: KafkaMessage) -> None:
        (record,) = kafka_records(message)  # not a batch subscriber
        event = await decode_or_dead_letter(broker, settings, contracts[record.topic], record, service=SERVICE)
        try:
            if isinstance(event, DailyTick):
                await triggers.tick(event)
            elif isinstance(event, DriftEvent):
                await triggers.drift(event)
            elif isinstance(event, TrainRequest):
                await triggers.request(event)
        except Exception:
            log.exception("handling a trigger from %s failed; it will be redelivered", record.topic)
            await asyncio.sleep(RETRY_PAUSE)
            raise
