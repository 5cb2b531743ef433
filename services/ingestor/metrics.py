"""The ingestor's Prometheus metrics; the Grafana dashboards use exactly these names.

Dead letters are counted by `shared.messaging.runtime.dead_letter` (`candlecast_dead_lettered_total`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter(
    "candlecast_candles_published_total", "Closed candles published to the candles topic", ["symbol", "interval"]
)
RECORDED = Counter("candlecast_candles_recorded_total", "Candles upserted into Postgres", ["symbol", "interval"])
WS_RECONNECTS = Counter("candlecast_ws_reconnects_total", "Websocket connections lost or rotated and opened again")
GAP_FILLED = Counter(
    "candlecast_gap_candles_filled_total", "Candles fetched over REST to fill a gap after a reconnect or a missed event"
)
INGEST_LAG = Histogram(
    "candlecast_ingest_lag_seconds",
    "Live candles: the exchange's now minus the candle's close time, when published",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
RECORD_BATCH = Histogram(
    "candlecast_record_batch_size",
    "Messages per recorder batch (one database transaction each)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
REST_REFUSALS = Counter(
    "candlecast_binance_refusals_total", "Binance REST answers 429/418 (rate limit) that were waited out", ["status"]
)
REST_WEIGHT_USED = Gauge(
    "candlecast_rest_weight_used", "Binance request weight used by this IP in the current minute (its header)"
)
