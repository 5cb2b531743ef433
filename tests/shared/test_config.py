from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.config import Settings, interval_ms


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLECAST_SYMBOLS", "btcusdt, ethusdt")
    monkeypatch.delenv("CANDLECAST_INTERVALS", raising=False)
    monkeypatch.setenv("CANDLECAST_INTERVAL", "1m")
    monkeypatch.setenv("CANDLECAST_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("CANDLECAST_MODEL_DIR", "/srv/models")
    monkeypatch.setenv("CANDLECAST_DRIFT_MAPE_THRESHOLD", "1.5")
    s = Settings()
    assert s.symbols == ["BTCUSDT", "ETHUSDT"]
    assert s.interval_ms == 60_000 and s.intervals == ["1m"]  # one interval, the older way
    assert s.kafka == "kafka:9092"
    assert s.database == "postgresql://u:p@db:5432/x"
    assert s.model_dir == Path("/srv/models")
    assert s.drift_mape_threshold == 1.5


def test_defaults_point_at_the_local_infrastructure(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CANDLECAST_KAFKA_BOOTSTRAP", "CANDLECAST_DATABASE_URL", "CANDLECAST_INTERVALS"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(kafka_port=19092, postgres_port=15433)
    assert s.kafka == "127.0.0.1:19092"
    assert s.database == "postgresql://postgres@127.0.0.1:15433/candlecast"
    assert s.symbols == ["BTCUSDT"] and s.intervals == ["5m", "1d"] and s.interval == "5m"
    assert (s.gateway_port, s.ingestor_metrics_port, s.predictor_metrics_port, s.trainer_metrics_port) == (
        8000, 8001, 8002, 8003,
    )


def test_readonly_url_keeps_host_port_and_database() -> None:
    s = Settings(database_url="postgresql://postgres:secret@db:6543/candlecast", readonly_password="r o")
    assert s.database_readonly == "postgresql://candlecast_reader:r o@db:6543/candlecast"


def test_symbols_json_list_and_bad_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLECAST_SYMBOLS", '["ETHUSDT"]')
    assert Settings().symbols == ["ETHUSDT"]
    monkeypatch.setenv("CANDLECAST_INTERVAL", "7m")
    with pytest.raises(ValidationError, match="unsupported interval"):
        Settings()
    monkeypatch.setenv("CANDLECAST_INTERVAL", "1h")
    monkeypatch.setenv("CANDLECAST_INTERVALS", "5m,1d")
    with pytest.raises(ValidationError, match="not among intervals"):
        Settings()
    monkeypatch.setenv("CANDLECAST_INTERVALS", "5m,4h,bad")
    with pytest.raises(ValidationError, match="unsupported interval 'bad'"):
        Settings()
    with pytest.raises(ValueError):
        interval_ms("2w")


def test_topic_prefix() -> None:
    assert Settings(topic_prefix="t1-").topic("candles") == "t1-candles"


def test_production_mode_refuses_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CANDLECAST_KAFKA_BOOTSTRAP", "CANDLECAST_DATABASE_URL", "CANDLECAST_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValidationError) as err:
        Settings(mode="production")
    for name in ("ADMIN_TOKEN", "READONLY_PASSWORD", "DATABASE_URL", "KAFKA_BOOTSTRAP"):
        assert f"CANDLECAST_{name}" in str(err.value)
    ok = Settings(mode="production", admin_token="t0ken", readonly_password="r3ader",
                  database_url="postgresql://u:p@db/x", kafka_bootstrap="kafka:9092")
    assert ok.mode == "production"


def test_streams_and_history_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLECAST_INTERVALS", "5m, 1h,1d")
    monkeypatch.setenv("CANDLECAST_SYMBOLS", "BTCUSDT,ETHUSDT")
    monkeypatch.setenv("CANDLECAST_HISTORY_CANDLES", '{"1h": 1000}')
    monkeypatch.setenv("CANDLECAST_RETRAIN_EVERY_DAYS", '{"1d": 7}')
    s = Settings()
    assert s.interval == "5m" and [str(x) for x in s.streams] == [
        "BTCUSDT 5m", "ETHUSDT 5m", "BTCUSDT 1h", "ETHUSDT 1h", "BTCUSDT 1d", "ETHUSDT 1d"]
    assert s.history_candles_of("5m") == 90 * 288 and s.history_candles_of("1h") == 1000
    assert s.history_candles_of("1d") is None  # everything Binance has
    assert s.history_candles_of("4h") == 730 * 6  # two years below a day
    assert (s.retrain_days("1d"), s.retrain_days("5m")) == (7, 1)
    days = s.model_copy(update={"backfill_days": 2.0, "train_days": 30.0})
    assert days.history_candles_of("5m") == 576 and days.history_candles_of("1d", training=True) == 30
    monkeypatch.setenv("CANDLECAST_HISTORY_CANDLES", '{"2w": 10}')
    with pytest.raises(ValidationError, match="unsupported interval '2w'"):
        Settings()


def test_a_local_cluster_of_three_is_three_bootstrap_servers() -> None:
    s = Settings(kafka_port=19092, kafka_brokers=3, kafka_bootstrap="")
    assert s.kafka == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert Settings(kafka_bootstrap="k1:9092,k2:9092", kafka_brokers=3).kafka == "k1:9092,k2:9092"
