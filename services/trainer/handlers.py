"""The trainer's Kafka subscriber: daily ticks, drift events and training requests.

One consumer in one group reads the three topics; a handler only decides and schedules (the
training itself runs in the worker process), so the consumer keeps polling and keeps its group
membership through hour-long trainings. Offsets are committed once the trigger is scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel, ValidationError

from services.trainer.triggers import Triggers
from shared import topics
from shared.config import Settings
from shared.events import DailyTick, DriftEvent, TrainRequest
from shared.runtime import dead_letter, validation_reason

log = logging.getLogger(__name__)

SERVICE = "trainer"
RETRY_PAUSE = 2.0


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}candlecast-trainer"


async def _raw_value(message: StreamMessage[Any]) -> bytes:
    """Hand the handler raw bytes, so an invalid message can be dead-lettered with its reason."""
    return message.raw_message.value or b""  # type: ignore[no-any-return]


def register(broker: KafkaBroker, settings: Settings, triggers: Triggers) -> None:
    """Subscribe the trainer's handler on `broker` (before `broker.start()`)."""
    contracts: dict[str, type[BaseModel]] = {
        settings.topic(topics.TICKS): DailyTick,
        settings.topic(topics.DRIFT): DriftEvent,
        settings.topic(topics.TRAIN_REQUESTS): TrainRequest,
    }

    @broker.subscriber(
        *contracts,
        group_id=group_id(settings),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_value,
    )
    async def on_trigger(value: bytes, message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)  # not a batch subscriber
        try:
            event = contracts[record.topic].model_validate_json(value)
        except ValidationError as exc:
            await dead_letter(broker, settings, service=SERVICE, source_topic=record.topic,
                              reason=validation_reason(exc), payload=value, key=record.key)
            return
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
