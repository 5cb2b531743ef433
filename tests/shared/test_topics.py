"""The topic registry: one declaration per topic, and the `kind` discriminator on `predictions`."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.gateway.asyncapi import asyncapi_document
from shared.config import Settings
from shared.messaging import events, topics

PREDICTION = events.Prediction(symbol="BTCUSDT", interval="5m", base_time=0, target_time=300_000, open=1.0,
                               high=1.2, low=0.9, close=1.1, amplitude=0.3, p_up=0.6, model_version="v1")
REAL_CLOSE = events.RealClose(symbol="BTCUSDT", interval="5m", time=300_000, pred_close=1.1, real_close=1.0,
                              err_close=-0.1, model_version="v1")


def test_every_topic_is_declared_once_with_contracts() -> None:
    assert set(topics.ALL_TOPICS) == set(topics.REGISTRY)
    assert all(t.contracts and t.description for t in topics.REGISTRY.values())
    assert topics.REGISTRY[topics.PREDICTIONS].contracts == (events.Prediction, events.RealClose)


@pytest.mark.parametrize("event", [PREDICTION, REAL_CLOSE])
def test_the_kind_tells_the_events_of_predictions_apart(event: events.Event) -> None:
    decoded = topics.decode(topics.PREDICTIONS, event.model_dump_json())
    assert decoded == event
    assert json.loads(event.model_dump_json())["schema_version"] == 2


@pytest.mark.parametrize("event", [PREDICTION, REAL_CLOSE])
def test_version_1_messages_without_kind_are_still_read(event: events.Event) -> None:
    body = json.loads(event.model_dump_json())
    kind = body.pop("kind")
    body["schema_version"] = 1
    decoded = topics.decode(topics.PREDICTIONS, json.dumps(body))
    assert type(decoded) is type(event)
    assert decoded.kind == kind  # type: ignore[attr-defined]
    assert decoded.schema_version == 1


def test_a_wrong_kind_is_refused() -> None:
    body = json.loads(PREDICTION.model_dump_json())
    body["kind"] = "real_close"
    with pytest.raises(ValidationError):
        topics.decode(topics.PREDICTIONS, json.dumps(body))


def test_asyncapi_is_generated_from_the_registry() -> None:
    settings = Settings(topic_prefix="t.")
    channels = asyncapi_document(settings)["channels"]
    text = json.dumps(channels)
    for topic in topics.REGISTRY.values():
        assert f"t.{topic.name}" in text
        assert topic.description in text
