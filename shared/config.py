"""All configuration of every service, in one place, read from `CANDLECAST_*` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.market.intervals import INTERVAL_MS, interval_ms
from shared.market.streams import Stream, default_history

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEV_READONLY_PASSWORD = "candlecast_reader"

# The intervals' lengths live with the market data; re-exported for the many callers of settings.
__all__ = ["INTERVAL_MS", "Settings", "Stream", "get_settings", "interval_ms"]

class Settings(BaseSettings):
    """Every knob of the system; each field is the variable `CANDLECAST_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="CANDLECAST_", env_file=".env", extra="ignore")

    mode: Literal["dev", "production"] = "dev"

    # Market
    symbols: Annotated[list[str], NoDecode] = ["BTCUSDT"]
    # Every symbol at every interval is a stream. `CANDLECAST_INTERVAL` (one interval) still works
    # when `CANDLECAST_INTERVALS` is not set; after validation `interval` is the first of `intervals`,
    # the default of every read endpoint.
    intervals: Annotated[list[str], NoDecode] = ["5m", "1d"]
    interval: str = ""
    # Candles of history per interval for backfill and training, e.g. {"1h": 8760}; 0 = everything.
    # Unset intervals get `shared.market.streams.default_history` (90 days below 1h, two years below
    # 1d, everything from 1d). `backfill_days`/`train_days`, when set, override it in days for all.
    history_candles: dict[str, int] = {}
    backfill_days: float | None = None
    binance_rest_url: str = "https://api.binance.com"
    binance_ws_url: str = "wss://stream.binance.com:9443"
    # In-progress (not yet closed) candles go to `candles-live` for live charts; never to `candles`.
    publish_forming_candles: bool = True

    # Kafka
    kafka_bootstrap: str = ""
    kafka_port: int = 9092
    kafka_partitions: int = 3
    # Brokers of the cluster: the local one `infra up` starts (node i on kafka_port + 2(i - 1)), or
    # the size of an external one. Topics get replication factor min(3, brokers) and, with three,
    # min.insync.replicas=2 (producers use acks=all: a write survives one broker's loss).
    kafka_brokers: int = Field(default=1, ge=1, le=9)
    topic_prefix: str = ""
    # Retention per topic in hours, overriding the registry's (`shared.messaging.topics`: candles-live
    # a day, predictions a week, dead-letter 30 days, the others forever); 0 = forever.
    topic_retention_hours: dict[str, float] = {}

    # Postgres
    database_url: str = Field(default="", repr=False)  # may carry a password
    database_readonly_url: str = Field(default="", repr=False)
    postgres_port: int = 5433
    readonly_password: str = Field(default=DEV_READONLY_PASSWORD, repr=False)

    # Model and training
    model_dir: Path = PROJECT_ROOT / ".data" / "models"
    window: int = 60
    train_days: float | None = None
    # Days between scheduled retrainings per interval (the recorder ticks once per UTC day, so 1 is
    # daily for intraday streams and every new candle for 1d); e.g. {"1d": 7} for weekly. Default 1.
    retrain_every_days: dict[str, int] = {}

    # Drift: the model's rolling MAPE over `drift_window` filled futures rows is compared with
    # an absolute threshold and with the persistence baseline's MAPE on the same rows.
    drift_window: int = 288
    drift_mape_threshold: float = 0.8
    drift_ratio_threshold: float = 1.25
    drift_cooldown_minutes: int = 360

    # The closed loop (predictor and trainer). A Kafka batch of many candles is a backlog and is
    # predicted in one batch; the first model is trained once `train_min_candles` are stored;
    # `train_config` overrides fields of `shared.model.training.TrainConfig` (JSON in the env).
    predictor_batch_size: int = 1000
    # Model kinds the trainer trains on every run (`shared.model.forecaster.KINDS`); the best on the
    # same unseen rows is compared with the champion.
    model_kinds: Annotated[list[str], NoDecode] = ["lstm", "gbm"]
    # > 0: a candidate that beats the champion on the test rows must also beat it live, on this
    # many candles both predicted (it predicts in the shadow meanwhile); 0: promoted at once.
    promote_requires_live: int = Field(default=0, ge=0)
    # Every model about to serve gets an "ohlc" variant (same kind, features of open/high/low/close
    # only) that answers POST /predict histories without Binance's volume and trade fields.
    ohlc_variant: bool = True
    # Levels of the intervals served with each prediction (events, rows, API, adaptive conformal).
    interval_levels: Annotated[list[float], NoDecode] = [0.8, 0.95]
    # A delivery whose handler fails for a reason other than the infrastructure (a bug, a value
    # the database refuses) is tried `handler_attempts` times (backoff from `handler_backoff_seconds`,
    # doubled each time), then its messages one by one: those that still fail go to dead-letter
    # with the error, and the partition goes on. An unreachable Kafka or Postgres is waited for.
    handler_attempts: int = Field(default=3, ge=1)
    handler_backoff_seconds: float = Field(default=1.0, ge=0)
    # Every consuming service measures its group's lag (committed against end offsets) this often.
    consumer_lag_seconds: float = Field(default=15.0, gt=0)
    train_min_candles: int = 2016
    # Training runs of different streams in progress at once on one trainer (`services.trainer.runner`).
    trainer_runs_at_once: int = Field(default=2, ge=1)
    # Rows kept per stream, counted back from its newest row (candle time, so a replay of old
    # data is not wiped): shadow predictions (the leaderboard, live promotion) 30 days; the
    # futures (the prospective series) forever with 0. Never fewer than `drift_window` rows.
    shadow_retention_days: float = Field(default=30.0, ge=0)
    futures_retention_days: float = Field(default=0.0, ge=0)
    train_config: dict[str, object] = {}

    # Ports
    gateway_port: int = 8000
    ingestor_metrics_port: int = 8001
    predictor_metrics_port: int = 8002
    trainer_metrics_port: int = 8003
    sim_port: int = 9900

    # Gateway
    admin_token: str = Field(default="", repr=False)
    cors_origins: Annotated[list[str], NoDecode] = []
    # POST /predict is CPU-heavy: at most this many at once, and per client this many a second
    # (bursts up to predict_burst); beyond, 429 with Retry-After. Websocket clients at most ws_max_clients.
    # Two at once, not four: the predictions run in threads and share the GIL with the event loop;
    # under 200 concurrent POST /predict (horizon 12) GET /predictions/latest kept p99 14 ms with
    # two, 42 ms with four (2 cores, flood from another process).
    predict_max_concurrent: int = Field(default=2, ge=1)
    predict_rate_per_client: float = Field(default=5.0, gt=0)
    predict_burst: int = Field(default=10, ge=1)
    ws_max_clients: int = Field(default=1000, ge=1)
    # Gateway processes (uvicorn workers) on one port; 0: one per core. Each has its own database
    # pool, Kafka reader for its websocket clients, newest-prediction cache and /predict limits
    # (so the machine allows workers x predict_max_concurrent predictions at once); /metrics adds
    # up every worker's counts.
    gateway_workers: int = Field(default=1, ge=0)
    # Seconds the newest prediction and the /series pages are kept between requests when no newer
    # prediction of their stream is announced on Kafka (services/gateway/cache.py); 0: never kept.
    gateway_cache_seconds: float = Field(default=1.0, ge=0)

    # Where local infrastructure keeps its data, logs and pid files
    data_dir: Path = PROJECT_ROOT / ".data"

    @field_validator("symbols", "intervals", "cors_origins", "model_kinds", "interval_levels", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        """Accept `BTCUSDT,ETHUSDT` as well as a JSON list, since env vars are plain strings."""
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("symbols")
    @classmethod
    def _upper_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is required")
        return [s.upper() for s in value]

    @field_validator("interval_levels")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        if not value or any(not 0.5 <= level <= 0.995 for level in value):
            raise ValueError("interval levels must lie in [0.5, 0.995] (the calibrated grid)")
        return sorted(set(value))

    @field_validator("intervals")
    @classmethod
    def _known_intervals(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one interval is required")
        for interval in value:
            interval_ms(interval)
        return list(dict.fromkeys(value))

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if value:
            interval_ms(value)
        return value

    @field_validator("history_candles", "retrain_every_days")
    @classmethod
    def _per_interval(cls, value: dict[str, int]) -> dict[str, int]:
        for interval, count in value.items():
            interval_ms(interval)
            if count < 0:
                raise ValueError(f"{interval}: {count} must not be negative")
        return value

    @model_validator(mode="after")
    def _one_interval_or_many(self) -> Settings:
        """`CANDLECAST_INTERVAL` alone means that one interval; then `interval` is the default one."""
        if self.interval and "intervals" not in self.model_fields_set:
            self.intervals = [self.interval]
        elif self.interval and self.interval not in self.intervals:
            raise ValueError(f"interval {self.interval} is not among intervals {', '.join(self.intervals)}")
        if not self.interval:
            self.interval = self.intervals[0]
        return self

    @model_validator(mode="after")
    def _secrets_in_production(self) -> Settings:
        """In production no secret may fall back to a default: refuse to start instead."""
        if self.mode != "production":
            return self
        missing = []
        if not self.admin_token:
            missing.append("CANDLECAST_ADMIN_TOKEN")
        if self.readonly_password == DEV_READONLY_PASSWORD:
            missing.append("CANDLECAST_READONLY_PASSWORD")
        if not self.database_url:
            missing.append("CANDLECAST_DATABASE_URL")
        if not self.kafka_bootstrap:
            missing.append("CANDLECAST_KAFKA_BOOTSTRAP")
        if missing:
            raise ValueError(f"production mode needs these set (no defaults): {', '.join(missing)}")
        return self

    @property
    def interval_ms(self) -> int:
        """Length of the default (first) interval's candles."""
        return interval_ms(self.interval)

    @property
    def streams(self) -> list[Stream]:
        """Every configured (symbol, interval), interval by interval."""
        return [Stream(symbol, interval) for interval in self.intervals for symbol in self.symbols]

    def history_candles_of(self, interval: str, *, training: bool = False) -> int | None:
        """Candles of history kept for `interval` (None: everything the exchange has)."""
        days = self.train_days if training else self.backfill_days
        if days is not None:
            return max(1, int(days * 86_400_000 // interval_ms(interval)))
        if interval in self.history_candles:
            return self.history_candles[interval] or None
        return default_history(interval)

    def retrain_days(self, interval: str) -> int:
        return max(1, self.retrain_every_days.get(interval, 1))

    @property
    def kafka(self) -> str:
        """Bootstrap servers: the configured ones, else the local brokers `infra up` starts."""
        local = (f"127.0.0.1:{self.kafka_port + 2 * i}" for i in range(self.kafka_brokers))
        return self.kafka_bootstrap or ",".join(local)

    @property
    def database(self) -> str:
        """Database URL: the configured one, else the local server `infra up` starts."""
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.postgres_port}/candlecast"

    @property
    def database_readonly(self) -> str:
        """URL for the gateway's read-only role on the same database."""
        if self.database_readonly_url:
            return self.database_readonly_url
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.database)
        host = parts.hostname or "127.0.0.1"
        netloc = f"candlecast_reader:{self.readonly_password}@{host}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def topic(self, name: str) -> str:
        """Full topic name; the prefix lets tests (and tenants) share one broker."""
        return f"{self.topic_prefix}{name}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

