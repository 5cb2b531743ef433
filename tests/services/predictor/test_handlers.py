"""The predictor's Kafka handler alone, on FastStream's in-memory broker (`TestKafkaBroker`).

The predictor behind it is a stand-in that fails on chosen candles, so what is tested is the
handler's own rule: a candle that keeps failing goes to dead-letter with the error and the
others are predicted; a failure of the infrastructure is never dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from faststream.kafka import TestKafkaBroker

from services.predictor import handlers
from shared.config import Settings
from shared.messaging import topics
from shared.messaging.events import Candle, DeadLetter
from shared.messaging.runtime import make_broker
from tests.services.predictor.support import as_candles, candle_frame

CANDLES = as_candles(candle_frame(8))
POISON = CANDLES[3].open_time


class FailingPredictor:
    """Predicts nothing; remembers what it was given; raises `error` whenever a batch holds POISON."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.processed: list[int] = []
        self.calls = 0

    async def process(self, candles: Sequence[Candle], received_ms: Sequence[int] | None = None) -> None:
        self.calls += 1
        if any(c.open_time == POISON for c in candles):
            raise self.error
        self.processed.extend(c.open_time for c in candles)


def wire(settings: Settings, predictor: FailingPredictor) -> tuple[object, list[DeadLetter]]:
    broker = make_broker(settings, handlers.SERVICE)
    handlers.register(broker, settings, predictor, champions=None)  # type: ignore[arg-type]
    letters: list[DeadLetter] = []

    @broker.subscriber(settings.topic(topics.DEAD_LETTER))
    async def on_dead_letter(letter: DeadLetter) -> None:  # the contract is the parameter
        letters.append(letter)

    return broker, letters


async def test_a_candle_that_makes_the_handler_raise_is_dead_lettered_and_the_next_ones_predicted() -> None:
    settings = Settings(topic_prefix="unit.", handler_attempts=2, handler_backoff_seconds=0.0)
    predictor = FailingPredictor(ValueError("cannot predict this one"))
    broker, letters = wire(settings, predictor)
    async with TestKafkaBroker(broker) as test_broker:  # type: ignore[arg-type]
        await test_broker.publish_batch(*CANDLES, topic=settings.topic(topics.CANDLES))
        await test_broker.publish_batch(*as_candles(candle_frame(10))[8:], topic=settings.topic(topics.CANDLES))
    assert predictor.processed == [c.open_time for c in CANDLES if c.open_time != POISON] + [
        c.open_time for c in as_candles(candle_frame(10))[8:]]
    # The batch twice, then each candle alone (the poison twice): bounded, never endless.
    assert predictor.calls == 2 + len(CANDLES) + 1 + 1
    assert len(letters) == 1
    (letter,) = letters
    assert letter.source_topic == settings.topic(topics.CANDLES) and letter.service == "predictor"
    assert letter.reason == "handler failed: ValueError: cannot predict this one"
    assert Candle.model_validate_json(letter.payload).open_time == POISON


async def test_an_unreachable_database_is_waited_for_not_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "RETRY_PAUSE", 0.0)
    settings = Settings(topic_prefix="unit.", handler_attempts=2, handler_backoff_seconds=0.0)
    predictor = FailingPredictor(ConnectionRefusedError("postgres is away"))
    broker, letters = wire(settings, predictor)
    async with TestKafkaBroker(broker) as test_broker:  # type: ignore[arg-type]
        with pytest.raises(ConnectionRefusedError):
            await test_broker.publish_batch(*CANDLES, topic=settings.topic(topics.CANDLES))
    assert predictor.calls == 1 and letters == []  # raised at once: the delivery is replayed, whole
