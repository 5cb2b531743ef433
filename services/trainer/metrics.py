"""The trainer's Prometheus metrics (names fixed: the Grafana dashboards use them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRAINING_SECONDS = Histogram(
    "candlecast_training_seconds",
    "Wall time of a training run (data load, fit, evaluation against the champion)",
    buckets=(5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
MODEL_SCORE = Gauge(
    "candlecast_model_score",
    "Metrics of the champion and of the latest candidate, on the rows they were compared on",
    ["symbol", "interval", "version", "metric"],
)
PROMOTIONS = Counter("candlecast_promotions_total", "Candidates promoted to champion", ["symbol", "interval"])
REJECTED = Counter(
    "candlecast_rejected_candidates_total", "Candidates that did not beat the champion", ["symbol", "interval"]
)
POSTGRES_DATABASE_BYTES = Gauge("candlecast_postgres_database_bytes", "Disk used by the deployment's database")
POSTGRES_TABLE_BYTES = Gauge(
    "candlecast_postgres_table_bytes", "Disk used by a table of the database, indexes included", ["table"]
)
KAFKA_TOPIC_BYTES = Gauge(
    "candlecast_kafka_topic_bytes", "Disk used by a topic on the brokers, every replica counted", ["topic"]
)
