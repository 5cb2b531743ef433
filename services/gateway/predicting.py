"""`POST /predict`'s answer: the champion (from `shared.model.champions.ChampionCache`, the cache the
predictor uses too) run over the posted history, steps fed back for a horizon.

The model library is imported on the first prediction, not at start-up: a gateway that only
serves reads never pays for it.
"""

from __future__ import annotations

import logging
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from services.gateway.schemas import Bounds
from shared.model.forecast import NextCandle
from shared.model.forecaster import Forecaster
from shared.model.intervals import SERVED_LEVELS, served

log = logging.getLogger(__name__)


class PredictedCandle(BaseModel):
    time: int = Field(description="open time of the predicted candle (epoch ms)")
    open: float
    high: float
    low: float
    close: float
    amplitude: float = Field(description="(high - low) / open")
    p_up: float = Field(description="probability that close > open")
    method: Literal["model", "fed back"] = Field(
        "model", description="model: the next candle as the model predicts it; fed back: the model again, with the "
                             "earlier predicted candles appended as if they had happened")
    direct_close: float | None = Field(
        None, description="the close of this step by the model's direct head for this horizon (trained on the "
                          "close h candles ahead, nothing fed back), where one exists (3 and 12 by default)")
    intervals: dict[str, Bounds] = Field(
        default_factory=dict,
        description="calibrated intervals: close_80, close_95, high_80, ... -> [lo, hi] (the first step; later "
                    "steps are fed back and carry the first step's uncertainty only, so none are given for them)")


class PredictResponse(BaseModel):
    symbol: str
    interval: str = Field(description="the history's spacing: the stream whose model answered")
    model_version: str = Field(description="the stream's champion")
    variant: Literal["full", "ohlc"] = Field(
        description="full: the champion (the history has Binance's volume and trade fields); ohlc: the champion's "
                    "variant that reads only open, high, low and close")
    variant_version: str = Field(description="the artifact that answered (the champion's own version for full)")
    base_time: int = Field(description="open time of the last candle of the history")
    base_close: float
    next: PredictedCandle
    steps: list[PredictedCandle] = Field(description="`horizon` candles; steps after the first see earlier predictions")


def _candle(step: NextCandle, first: bool, direct: float | None, levels: tuple[float, ...]) -> PredictedCandle:
    return PredictedCandle(
        time=step.target_time,
        open=step.open,
        high=step.high,
        low=step.low,
        close=step.close,
        amplitude=step.amplitude,
        p_up=step.p_up,
        intervals={k: list(v) for k, v in served(step.intervals, levels).items()} if first else {},
        method="model" if first else "fed back",
        direct_close=direct,
    )


def predict(
    loaded: Forecaster, history: pd.DataFrame, horizon: int, levels: tuple[float, ...] = SERVED_LEVELS
) -> tuple[list[PredictedCandle], NextCandle]:
    """`horizon` candles after the history; returns them and the first raw `NextCandle`.

    Each predicted candle is appended as if it had happened, with the volumes of the last real
    candle: the features read volumes only as ratios to their rolling mean, so carrying the
    last one forward says "nothing unusual" rather than inventing a surge or a drought.
    """
    need = int(loaded.history_needed)
    frame = history.iloc[-need:].reset_index(drop=True)
    direct = {h: float(closes[0]) for h, closes in loaded.forecast_horizons(frame, [len(frame) - 1]).items()}
    last = frame.iloc[-1]
    interval_ms = int(loaded.interval_ms)
    steps: list[PredictedCandle] = []
    raw: list[NextCandle] = []
    for _ in range(horizon):
        nxt = loaded.predict_many(frame, [len(frame) - 1], {level: level for level in levels})[0]
        raw.append(nxt)
        steps.append(_candle(nxt, first=not steps, direct=direct.get(len(steps) + 1), levels=levels))
        fed_back = {
            **{name: last[name] for name in frame.columns},
            "open_time": nxt.target_time,
            "close_time": nxt.target_time + interval_ms - 1,
            "open": nxt.open,
            "high": nxt.high,
            "low": nxt.low,
            "close": nxt.close,
        }
        frame = pd.concat([frame.iloc[1:], pd.DataFrame([fed_back]).astype(frame.dtypes)], ignore_index=True)
    return steps, raw[0]
