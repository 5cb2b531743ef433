"""The predictor's Prometheus metrics (names fixed: the Grafana dashboards use them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STREAM = ["symbol", "interval"]  # every per-stream metric carries both
_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

INFERENCE_SECONDS = Histogram(
    "candlecast_inference_seconds",
    "Model inference time per predicted candle (a backlog batch: its time divided by its candles)",
    buckets=_FAST,
)
CANDLE_TO_PREDICTION_SECONDS = Histogram(
    "candlecast_candle_to_prediction_seconds",
    "From a live candle's close to its prediction's publication (backlog candles are not counted)",
    STREAM,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PREDICTIONS = Counter("candlecast_predictions_total", "Predictions stored and published", STREAM)
ROLLING_MAPE = Gauge("candlecast_rolling_mape", "Model close MAPE (%) over the last filled predictions", STREAM)
ROLLING_PERSISTENCE_MAPE = Gauge(
    "candlecast_rolling_persistence_mape", "Persistence close MAPE (%) on the same rows", STREAM
)
DIRECTION_HIT_RATE = Gauge(
    "candlecast_direction_hit_rate", "Share of filled predictions whose p_up >= 0.5 matched close > open", STREAM
)
MODEL_INFO = Gauge(
    "candlecast_model_info", "The model version in use (version=none: no champion yet)", [*STREAM, "version"]
)
DRIFT_EVENTS = Counter("candlecast_drift_events_total", "Drift declared", STREAM)
SECONDS_SINCE_LAST_CANDLE = Gauge(
    "candlecast_seconds_since_last_candle", "Wall-clock seconds since a candle last arrived", STREAM
)
CANDLES_STALE = Gauge("candlecast_candles_stale", "1 while no candle arrived for more than two intervals", STREAM)
BATCH_CANDLES = Histogram(
    "candlecast_predictor_batch_candles",
    "Candles per consumed batch (1: live, more: a backlog)",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
)
