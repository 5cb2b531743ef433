"""What every service process shares: logging, its Kafka broker, its metrics endpoint, dead letters.

Kept deliberately small: a service's `main.py` wires its handlers onto the broker made here and
calls `serve`, so each service reads the same way.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.kafka import KafkaBroker
from prometheus_client import Counter, start_http_server
from pydantic import BaseModel, ValidationError

from shared import topics
from shared.config import Settings
from shared.events import DeadLetter

log = logging.getLogger(__name__)

E = TypeVar("E", bound=BaseModel)

DEAD_LETTERED = Counter(
    "candlecast_dead_lettered_total",
    "Messages sent to the dead-letter topic, by source topic and reason kind",
    ["service", "source_topic", "reason"],
)


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    """A broker whose producer waits for all replicas and never writes a record twice."""
    return KafkaBroker(
        settings.kafka,
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


def decode_event(model: type[E], payload: bytes | str) -> E:
    """Parse one message against its contract; raises ValidationError with the reason."""
    return model.model_validate_json(payload)


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


async def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)`; SIGTERM/SIGINT set `stop` so in-flight work can finish and commit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)
