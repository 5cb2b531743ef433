"""The trainer's Kafka subscriber: daily ticks, drift events and training requests.

One consumer in one group reads the three topics; a handler only decides and schedules (the
training itself runs in the worker process), so the consumer keeps polling and keeps its group
membership through hour-long trainings. Offsets are committed once the trigger is scheduled; a
trigger that cannot be scheduled (after retries, `shared.messaging.failures`) goes to dead-letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import BaseModel

from services.trainer.triggers import Triggers
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import DailyTick, DriftEvent, TrainRequest
from shared.messaging.failures import RetryPolicy, failure_reason, process_isolating
from shared.messaging.runtime import RETRY_PAUSE, dead_letter, decode_or_dead_letter, kafka_records, undecoded

log = logging.getLogger(__name__)

SERVICE = "trainer"


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}candlecast-trainer"


def register(broker: KafkaBroker, settings: Settings, triggers: Triggers) -> None:
    """Subscribe the trainer's handler on `broker` (before `broker.start()`)."""
    retry = RetryPolicy.from_settings(settings)
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
        if event is None:
            return

        async def schedule(events: Sequence[BaseModel]) -> None:
            for item in events:
                if isinstance(item, DailyTick):
                    await triggers.tick(item)
                elif isinstance(item, DriftEvent):
                    await triggers.drift(item)
                elif isinstance(item, TrainRequest):
                    await triggers.request(item)

        try:
            failed = await process_isolating([event], schedule, retry, what=f"a trigger from {record.topic}")
        except Exception:
            log.exception("handling a trigger from %s failed; it will be redelivered", record.topic)
            await asyncio.sleep(RETRY_PAUSE)
            raise
        for _, error in failed:
            await dead_letter(broker, settings, service=SERVICE, source_topic=record.topic,
                              reason=failure_reason(error), payload=record.value or b"", key=record.key,
                              kind="handler_error")
