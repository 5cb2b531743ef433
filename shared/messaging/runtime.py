"""What every service process shares: logging, its Kafka broker, its metrics endpoint, dead letters.

Kept deliberately small: a service's `main.py` wires its handlers onto the broker made here and
calls `serve`, so each service reads the same way. Every handler decodes its messages the same
way too (`undecoded` + `DeadLetters`): a message that is not its contract goes to dead-letter
with the reason, and the rest of its delivery is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from prometheus_client import Counter, start_http_server
from pydantic import BaseModel, ValidationError

from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import DeadLetter

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseModel)

#: Seconds a handler waits after a failed delivery (a database down) before raising, so that the
#: redelivery does not spin against the outage.
RETRY_PAUSE = 2.0

#: `batch_timeout_ms` of the batch subscribers on `candles`. FastStream's batch consumer waits
#: this long for records and, finding none, sleeps as long again before the next fetch, so a
#: live candle arriving during that sleep waits for it: up to 200 ms with the default. 10 ms
#: bounds that wait; measured idle CPU of the predictor: 2.1% of a core, against 0.5% at 200 ms
#: and 0.9% at 50 ms.
BATCH_WAIT_MS = 10

#: `max_partition_fetch_bytes` of the predictor's subscriber on `candles` (aiokafka's default:
#: 1 MiB). aiokafka asks for a partition's next records only once the last fetch is consumed, so a
#: backlog on one partition (a replay) waits for a fetch round every 2,600 candles of ~400 bytes:
#: a replay of 90 days of 5m through the predictor spent 2.4 s of its 6.9 s between batches, 11
#: waits of 100-270 ms. 8 MiB: 0.7 s, 3,700 -> 5,060 candles/s. Not the recorder's: on an
#: import's backlog it went from 34,100 to 29,900 candles/s with it (its batches of 5,000 wait for
#: the larger fetches). The consumer's `fetch_max_bytes` (50 MiB) still bounds one fetch.
PARTITION_FETCH_BYTES = 8 * 1024 * 1024

#: The header FastStream sets on a model it encodes itself; readers decode the body as JSON by it.
JSON_HEADERS = {"content-type": "application/json"}


async def send_event(broker: KafkaBroker, event: BaseModel, topic: str, key: bytes) -> asyncio.Future[Any]:
    """Queue `event` on the producer without waiting for its acknowledgement; await the returned
    future (a batch gathers them). Encoded by pydantic's own serializer and handed to FastStream as
    bytes with the JSON content type: the same record as `broker.publish(event)`, which costs 58 µs
    a message here against 36 µs this way (aiokafka alone with the same encoding: 22 µs). For many
    events at once, `send_in_batches`."""
    sent: asyncio.Future[Any] = await broker.publish(  # no_confirm: the send's future, not its metadata
        event.model_dump_json().encode(), topic, key=key, headers=JSON_HEADERS, no_confirm=True)
    return sent


def make_producer(settings: Settings, service: str) -> AIOKafkaProducer:
    """A plain aiokafka producer with the guarantees of `make_broker`'s, for bulk sends (unstarted)."""
    return AIOKafkaProducer(bootstrap_servers=settings.kafka.split(","), client_id=f"candlecast-{service}",
                            acks="all", enable_idempotence=True)


async def send_in_batches(producer: AIOKafkaProducer, topic: str, events: Iterable[tuple[bytes, BaseModel]]) -> int:
    """Publish keyed events, in order per key, as aiokafka's own record batches (one open batch per
    partition, sent when full), then wait for every acknowledgement; returns how many.

    The partition is the one a keyed `broker.publish` picks (aiokafka's default partitioner over
    the topic's partitions), so a symbol's imported candles share its live candles' partition and
    order. Measured on a year of 5m (105,408 candles, one symbol): 152,000 candles/s against
    35,300 through `send_event`, one message at a time."""
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    headers = [(k, v.encode()) for k, v in JSON_HEADERS.items()]
    open_batches: dict[int, BatchBuilder] = {}
    sent: list[asyncio.Future[Any]] = []
    count = 0
    for key, event in events:
        partition = partitioner(key, partitions, partitions)
        value = event.model_dump_json().encode()
        batch = open_batches.get(partition)
        if batch is None:
            batch = open_batches[partition] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = open_batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"an event of {len(value)} bytes is larger than a record batch")
        count += 1
    for partition, batch in open_batches.items():
        if batch.record_count():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sent)
    return count


DEAD_LETTERED = Counter(
    "candlecast_dead_lettered_total",
    "Messages sent to the dead-letter topic, by source topic and reason kind",
    ["service", "source_topic", "reason"],
)


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    """A broker whose producer waits for all replicas and never writes a record twice."""
    return KafkaBroker(
        settings.kafka.split(","),  # FastStream takes a string as one host: several brokers are a list
        client_id=f"candlecast-{service}",
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        log_level=logging.DEBUG,  # per-message "Received/Processed" lines only when debugging
        graceful_timeout=30.0,
    )


def start_metrics(port: int) -> None:
    """Serve /metrics for Prometheus (the default registry includes process CPU and memory)."""
    start_http_server(port, addr="0.0.0.0")
    log.info("metrics on :%d/metrics", port)


async def dead_letter(
    broker: KafkaBroker,
    settings: Settings,
    *,
    service: str,
    source_topic: str,
    reason: str,
    payload: bytes | str,
    key: bytes | str | None = None,
    kind: str = "invalid",
) -> None:
    """Park a message that cannot be processed, with why, instead of dropping or retrying it forever."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    letter = DeadLetter(source_topic=source_topic, reason=reason, payload=text, key=key_text, service=service)
    await broker.publish(
        letter,
        settings.topic(topics.DEAD_LETTER),
        key=key_text.encode() if key_text else None,
    )
    DEAD_LETTERED.labels(service, source_topic, kind).inc()
    log.warning("dead-lettered a message from %s: %s", source_topic, reason)


def validation_reason(exc: ValidationError) -> str:
    """A one-line reason naming each failing field, for dead letters and logs."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def kafka_records(message: StreamMessage[Any]) -> tuple[ConsumerRecord[Any, Any], ...]:
    """The records of one delivery: a batch subscriber's tuple (a list under `TestKafkaBroker`), or a
    plain subscriber's one record."""
    raw = message.raw_message
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)


async def undecoded(message: StreamMessage[Any]) -> None:
    """A subscriber `decoder` that leaves the bytes to the handler.

    The handler reads its records with `kafka_records` and decodes each through `DeadLetters`,
    so that one malformed message is dead-lettered with its reason instead of failing (and
    endlessly replaying) its whole delivery.
    """
    return None


class DeadLetters:
    """The messages of one delivery that cannot be processed, each with why.

    `send()` dead-letters them. A batch handler calls it only once the rest of its batch is
    stored: a failed batch is replayed, and must not dead-letter the same message twice.
    """

    def __init__(self, broker: KafkaBroker, settings: Settings, *, service: str) -> None:
        self._broker = broker
        self._settings = settings
        self._service = service
        self._rejected: list[tuple[ConsumerRecord[Any, Any], str, str]] = []

    def decode(self, model: type[E], record: ConsumerRecord[Any, Any]) -> E | None:
        """The record as a `model`, or None with the reason kept for `send()`."""
        try:
            return model.model_validate_json(record.value or b"")
        except ValidationError as exc:
            self.reject(record, validation_reason(exc))
            return None

    def reject(self, record: ConsumerRecord[Any, Any], reason: str, kind: str = "invalid") -> None:
        """A record that decoded but that this service cannot use (`kind` for the metric), for `send()`."""
        self._rejected.append((record, reason, kind))

    async def send(self) -> None:
        rejected, self._rejected = self._rejected, []
        for record, reason, kind in rejected:
            await dead_letter(self._broker, self._settings, service=self._service, source_topic=record.topic,
                              reason=reason, payload=record.value or b"", key=record.key, kind=kind)


async def decode_or_dead_letter(
    broker: KafkaBroker, settings: Settings, model: type[E], record: ConsumerRecord[Any, Any], *, service: str
) -> E | None:
    """The record as a `model`; or None, once it is dead-lettered with the reason."""
    letters = DeadLetters(broker, settings, service=service)
    event = letters.decode(model, record)
    await letters.send()
    return event


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], report_after: float = 10.0) -> None:
    """Cancel a service's background tasks and wait until each has ended, before its broker and pool close.

    A task still running `report_after` seconds after its cancellation is logged with where it
    waits: a stop that hangs then says why (an ingestor on a CI run did not exit within 60 s of
    SIGTERM, and its log said nothing after its start)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        _, late = await asyncio.wait(pending, timeout=report_after)
        for task in late:
            where = io.StringIO()
            task.print_stack(file=where)
            log.warning("task %s still running %.0f s after its cancellation:\n%s", task.get_name(), report_after,
                        where.getvalue())
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)`; SIGTERM/SIGINT set `stop` so in-flight work can finish and commit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> None:
        log.info("%s: stopping", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping, sig)
    await main(stop)
