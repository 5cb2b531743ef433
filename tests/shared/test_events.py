import pytest
from pydantic import ValidationError

from shared.messaging.events import Candle, DriftEvent, ModelPromoted, Prediction

GOOD = dict(
    symbol="BTCUSDT", interval="5m", open_time=1_700_000_000_000, close_time=1_700_000_299_999,
    open=100.0, high=101.0, low=99.5, close=100.5, volume=3.0, quote_volume=301.0, trades=10,
    taker_buy_base_volume=1.0, taker_buy_quote_volume=100.0,
)


def test_candle_round_trips_as_json() -> None:
    candle = Candle(**GOOD)
    wire = candle.model_dump_json()
    assert '"schema_version":1' in wire
    assert Candle.model_validate_json(wire) == candle


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"high": 99.0}, "high must be"),
        ({"low": 100.8}, "low <= min"),
        ({"volume": -1.0}, "greater than or equal"),
        ({"close": float("nan")}, "finite"),
        ({"close_time": 1_700_000_000_000}, "close_time"),
        ({"schema_version": 2}, "schema_version"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_candles_are_refused_with_a_reason(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Candle(**{**GOOD, **change})


def test_other_events_validate() -> None:
    p = Prediction(symbol="BTCUSDT", interval="5m", base_time=0, target_time=300_000, open=1, high=2, low=0.5,
                   close=1.5, amplitude=0.1, p_up=0.6, model_version="v1")
    assert p.predicted_at > 0
    with pytest.raises(ValidationError):
        Prediction(**{**p.model_dump(), "p_up": 1.5})
    d = DriftEvent(symbol="BTCUSDT", interval="5m", window=288, mape=1.2, persistence_mape=0.5, threshold=0.8,
                   reason="mape")
    assert DriftEvent.model_validate_json(d.model_dump_json()) == d
    assert d.candle_time is None  # optional: events written before the field still validate
    assert DriftEvent.model_validate_json(d.model_copy(update={"candle_time": 600_000}).model_dump_json()).candle_time \
        == 600_000
    m = ModelPromoted(symbol="BTCUSDT", interval="5m", version="v2", artifact_path="/m/v2", metrics={"mae": 1.0})
    assert ModelPromoted.model_validate_json(m.model_dump_json()).metrics == {"mae": 1.0}
