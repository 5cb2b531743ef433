"""The event contract between services: pydantic models, JSON on the wire.

Every event carries `schema_version`; a consumer rejects (dead-letters) a version it does not
know rather than guessing. Times are UTC epoch milliseconds, as Binance sends them, so that an
event can be compared with the kline it came from without any conversion.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1


def now_ms() -> int:
    return int(time.time() * 1000)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION


class Candle(Event):
    """A closed kline with every field Binance gives (REST array or websocket `k` object)."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float = Field(ge=0)
    quote_volume: float = Field(ge=0)
    trades: int = Field(ge=0)
    taker_buy_base_volume: float = Field(ge=0)
    taker_buy_quote_volume: float = Field(ge=0)
    first_trade_id: int | None = None
    last_trade_id: int | None = None

    @field_validator("open", "high", "low", "close", "volume", "quote_volume")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Candle:
        if min(self.open, self.high, self.low, self.close) <= 0:
            raise ValueError("prices must be positive")
        if self.high < max(self.open, self.close) or self.low > min(self.open, self.close):
            raise ValueError("high must be >= max(open, close) and low <= min(open, close)")
        if self.close_time <= self.open_time:
            raise ValueError("close_time must be after open_time")
        return self


class Prediction(Event):
    """The predicted next candle (`target_time`), made after the candle at `base_time` closed.

    Version 2 added `kind`: predictions and real closes share the `predictions` topic, and a
    reader tells them apart by it (`shared.messaging.topics.decode` still reads version 1).
    """

    schema_version: Literal[1, 2] = 2  # type: ignore[assignment]
    kind: Literal["prediction"] = "prediction"
    symbol: str
    interval: str
    base_time: int
    target_time: int
    open: float
    high: float
    low: float
    close: float
    amplitude: float
    p_up: float = Field(ge=0, le=1)
    model_version: str
    predicted_at: int = Field(default_factory=now_ms)
    #: Calibrated intervals: {"close_80": (lo, hi), "close_95": ..., "high_80": ..., "low_95": ...}.
    intervals: dict[str, tuple[float, float]] = Field(default_factory=dict)


class RealClose(Event):
    """The real close of a candle that had been predicted: the prediction's error, now known.

    Version 2 added `kind` (see `Prediction`).
    """

    schema_version: Literal[1, 2] = 2  # type: ignore[assignment]
    kind: Literal["real_close"] = "real_close"
    symbol: str
    interval: str
    time: int
    pred_close: float
    real_close: float
    err_close: float
    model_version: str


class DriftEvent(Event):
    """The model's rolling error crossed a threshold; the trainer should retrain."""

    symbol: str
    interval: str
    detected_at: int = Field(default_factory=now_ms)
    window: int
    mape: float
    persistence_mape: float
    threshold: float
    reason: str
    model_version: str | None = None
    candle_time: int | None = None  # open time of the candle whose error crossed the threshold


class DailyTick(Event):
    """The first candle of a new UTC day was recorded (event time, so replays tick alike)."""

    symbol: str
    interval: str
    day: str
    candle_time: int


class TrainRequest(Event):
    """Someone (an admin, a test, the CLI) asks for a training run."""

    symbol: str
    interval: str
    reason: str = "manual"
    requested_at: int = Field(default_factory=now_ms)


class ModelPromoted(Event):
    """A new champion model; predictors switch to it."""

    symbol: str
    interval: str
    version: str
    artifact_path: str
    promoted_at: int = Field(default_factory=now_ms)
    metrics: dict[str, float] = Field(default_factory=dict)


class DeadLetter(BaseModel):
    """What could not be processed, with why, so that nothing is silently lost."""

    model_config = ConfigDict(extra="forbid")

    source_topic: str
    reason: str
    payload: str
    key: str | None = None
    service: str
    failed_at: int = Field(default_factory=now_ms)
