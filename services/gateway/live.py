"""Live predictions: the gateway reads the `predictions` topic and fans it out to websockets.

Each gateway instance reads the topic with no consumer group from the latest offset: every
instance must see every message (it serves its own websocket clients), and a gateway that
restarts has nothing to catch up on, the history is in Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from services.gateway.cache import StreamCache
from services.gateway.metrics import LIVE_CONNECTED, LIVE_MESSAGES
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Prediction, RealClose
from shared.messaging.runtime import make_broker

log = logging.getLogger(__name__)

SERVICE = "gateway"
QUEUE_SIZE = 256


@dataclass(eq=False)
class Subscriber:
    """One websocket client: its queue and the stream it asked for (None: every symbol, every interval)."""

    symbol: str | None
    interval: str | None = None
    #: Texts to send; None once the client has gone (its sender stops there).
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, text: str | None) -> None:
        """Queue `text`; a full queue loses its oldest message (a slow client never slows the others)."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(text)

    def gone(self) -> None:
        self.offer(None)


class Hub:
    """Fan-out to connected clients; a slow client loses its oldest messages, never slows others."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()

    def subscribe(self, symbol: str | None, interval: str | None = None) -> Subscriber:
        subscriber = Subscriber(symbol, interval)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, message: dict[str, Any]) -> int:
        """Queue `message` for every interested client; returns how many got it."""
        text = json.dumps(message)
        symbol, interval = message["data"].get("symbol"), message["data"].get("interval")
        delivered = 0
        for subscriber in list(self._subscribers):
            if subscriber.symbol is not None and subscriber.symbol != symbol:
                continue
            if subscriber.interval is not None and subscriber.interval != interval:
                continue
            subscriber.offer(text)
            delivered += 1
        return delivered


def live_message(payload: bytes | str) -> dict[str, Any] | None:
    """`{"type": "prediction" | "real_close", "data": ...}`, or None for anything else.

    Both events share the topic; their `kind` tells them apart (`shared.messaging.topics.decode`).
    """
    try:
        event = topics.decode(topics.PREDICTIONS, payload)
    except ValidationError:
        return None
    assert isinstance(event, Prediction | RealClose)
    return {"type": event.kind, "data": event.model_dump(mode="json")}


def build_broker(settings: Settings, hub: Hub, cache: StreamCache) -> KafkaBroker:
    """The gateway's Kafka client: the live subscriber (websocket clients, and news for the newest
    prediction and the pages kept by `cache`), and the producer of train requests."""
    broker = make_broker(settings, SERVICE)

    @broker.subscriber(
        settings.topic(topics.PREDICTIONS),
        auto_offset_reset="latest",
        title="gateway-live",
        description="Every prediction and filled real close, pushed to /ws/predictions clients.",
    )
    async def on_prediction(msg: KafkaMessage) -> None:
        message = live_message(msg.body)
        if message is None:
            LIVE_MESSAGES.labels("ignored").inc()
            log.warning("ignored a message on %s that is neither a Prediction nor a RealClose", topics.PREDICTIONS)
            return
        LIVE_MESSAGES.labels(message["type"]).inc()
        cache.announced((message["data"]["symbol"], message["data"]["interval"]))
        hub.publish(message)

    return broker


async def keep_connected(broker: KafkaBroker, connected: asyncio.Event, retry_seconds: float = 2.0) -> None:
    """Start the broker, retrying while Kafka is away: the REST API must not wait for Kafka."""
    while True:
        starting = asyncio.ensure_future(broker.start())
        try:
            # Shielded: a start cut in half leaves a client that nobody closes; let it finish
            # (briefly) so that the caller's `broker.stop()` closes everything.
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(starting, 10)
            raise
        except Exception as exc:
            log.warning("kafka not reachable (%s); live predictions and /train wait for it", exc)
            try:
                await broker.stop()
            except Exception:
                log.debug("stopping a half-started broker failed", exc_info=True)
            await asyncio.sleep(retry_seconds)
            continue
        connected.set()
        LIVE_CONNECTED.set(1)
        log.info("gateway connected to Kafka")
        return
