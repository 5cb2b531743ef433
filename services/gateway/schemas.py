"""Response bodies of the read endpoints: the API's contract, as pydantic models.

Times are UTC epoch milliseconds, like the events and the tables, so a client can match a row
with the kline it came from. Relative errors are fractions, `(real - predicted) / real`, the
sign convention of `futures.err_close`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

#: [lo, hi] of an interval (a pair, written as a list for OpenAPI).
Bounds = Annotated[list[float], Field(min_length=2, max_length=2)]


class Stream(BaseModel):
    symbol: str
    interval: str


class Symbols(BaseModel):
    symbols: list[str]
    interval: str = Field(description="the default interval of every endpoint (the first configured)")
    intervals: list[str]
    streams: list[Stream] = Field(description="every (symbol, interval) served: each has its own model and series")
    window: int = Field(description="candles the model reads; POST /predict needs this plus the feature lookback")


class Page(BaseModel):
    """Rows in ascending time; follow `next_start` (forward) or `prev_end` (backward) for more."""

    symbol: str
    interval: str
    count: int
    next_start: int | None = Field(None, description="pass as `start` for the following page")
    prev_end: int | None = Field(None, description="pass as `end` for the preceding page")


class CandleOut(BaseModel):
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_buy_base_volume: float
    taker_buy_quote_volume: float


class CandlePage(Page):
    items: list[CandleOut]


class SeriesPoint(BaseModel):
    """One real candle beside the candle predicted for it (prediction fields null if none)."""

    time: int
    open: float
    high: float
    low: float
    close: float
    pred_open: float | None
    pred_high: float | None
    pred_low: float | None
    pred_close: float | None
    p_up: float | None
    direction_hit: bool | None = Field(description="(p_up >= 0.5) == (close > open)")
    err_open: float | None
    err_high: float | None
    err_low: float | None
    err_close: float | None
    model_version: str | None
    intervals: dict[str, Bounds] | None = Field(
        None, description="calibrated intervals of the prediction: close_80, close_95, high_80, ... -> [lo, hi]")
    split: Literal["train", "validation", "test", "live"] | None = Field(
        description="where the prediction comes from: the model's series (train/validation/test) or live futures"
    )
    test: bool = Field(description="inside the model's test period [test_start, data_end]")


class SeriesPage(Page):
    model_version: str | None = Field(description="the model whose series rows are joined (the champion by default)")
    test_start: int | None
    test_end: int | None
    hit_rate: float | None = Field(description="share of right directions among the rows with a prediction")
    items: list[SeriesPoint]


class FutureOut(BaseModel):
    time: int = Field(description="open time of the predicted candle")
    base_time: int
    pred_open: float
    pred_high: float
    pred_low: float
    pred_close: float
    pred_amplitude: float
    p_up: float
    base_close: float | None = Field(description="last known close: the persistence forecast")
    real_open: float | None
    real_high: float | None
    real_low: float | None
    real_close: float | None
    err_close: float | None = Field(description="real_close - pred_close")
    model_version: str
    intervals: dict[str, Bounds] | None = Field(
        None, description="calibrated intervals: close_80, close_95, high_80, high_95, low_80, low_95 -> [lo, hi]")
    predicted_at: int
    filled_at: int | None


class FuturePage(Page):
    items: list[FutureOut]


class LatestPrediction(FutureOut):
    symbol: str
    interval: str
    age_seconds: float = Field(description="seconds since the prediction was made")


class ModelOut(BaseModel):
    version: str
    symbol: str
    interval: str
    status: str
    kind: str = Field(description="the model kind: lstm, gbm or linear")
    data_start: int | None
    data_end: int | None
    test_start: int | None
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    created_at: int
    promoted_at: int | None


class LeaderboardRow(BaseModel):
    rank: int = Field(description="1 = the best skill against persistence on its own live rows")
    model_version: str
    kind: str
    role: Literal["champion", "challenger"]
    rows: int = Field(description="filled live predictions scored (at most `window`)")
    since: int | None
    until: int | None
    close_mae: float | None
    persistence_mae: float | None = Field(description="persistence's close MAE on the same rows")
    skill: float | None = Field(description="1 - close_mae / persistence_mae")
    direction_hit_rate: float | None
    coverage_80: float | None = Field(description="share of real closes inside the 80% interval")
    coverage_95: float | None


class Leaderboard(BaseModel):
    symbol: str
    interval: str
    window: int
    items: list[LeaderboardRow]


class ModelCard(ModelOut):
    feature_importance: dict[str, dict[str, float]] | None = Field(
        None, description="permutation importance on the test part: feature -> close_mae_increase (relative), "
                          "direction_drop (accuracy lost)")
    config: dict[str, Any] | None = Field(None, description="the training configuration")
    interval_calibration: dict[str, Any] | None = Field(
        None, description="rows the intervals were calibrated on, and the close multipliers at 80/90/95%")


class ModelList(BaseModel):
    symbol: str
    interval: str
    items: list[ModelOut]


class DriftOut(BaseModel):
    id: int
    detected_at: int
    window_size: int
    mape: float
    persistence_mape: float
    threshold: float
    reason: str
    model_version: str | None


class DriftPage(Page):
    items: list[DriftOut]


class JobOut(BaseModel):
    id: int
    job_name: str
    status: str
    message: str
    started_at: int
    finished_at: int | None


class JobPage(BaseModel):
    count: int
    next_start: int | None = None
    prev_end: int | None = None
    items: list[JobOut]


class Problem(BaseModel):
    """An error body: what went wrong, for a person."""

    detail: str
