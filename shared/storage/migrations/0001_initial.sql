-- Candles, predictions ("futures"), models, job logs and drift events.
-- Times are stored as UTC epoch milliseconds (bigint), as Binance and the events carry them;
-- views give timestamptz columns for people and for Grafana.

CREATE TABLE candles (
    symbol                 text    NOT NULL,
    interval               text    NOT NULL,
    open_time              bigint  NOT NULL,
    close_time             bigint  NOT NULL,
    open                   double precision NOT NULL,
    high                   double precision NOT NULL,
    low                    double precision NOT NULL,
    close                  double precision NOT NULL,
    volume                 double precision NOT NULL,
    quote_volume           double precision NOT NULL,
    trades                 integer NOT NULL,
    taker_buy_base_volume  double precision NOT NULL,
    taker_buy_quote_volume double precision NOT NULL,
    first_trade_id         bigint,
    last_trade_id          bigint,
    recorded_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, open_time),
    CHECK (high >= low),
    CHECK (volume >= 0)
);

CREATE TABLE futures (
    symbol        text   NOT NULL,
    interval      text   NOT NULL,
    time          bigint NOT NULL,          -- open time of the predicted candle
    base_time     bigint NOT NULL,          -- open time of the last candle the model saw
    pred_open     double precision NOT NULL,
    pred_high     double precision NOT NULL,
    pred_low      double precision NOT NULL,
    pred_close    double precision NOT NULL,
    pred_amplitude double precision NOT NULL,
    p_up          double precision NOT NULL,
    base_close    double precision,         -- last known close: the persistence forecast
    real_open     double precision,
    real_high     double precision,
    real_low      double precision,
    real_close    double precision,
    err_close     double precision,         -- real_close - pred_close
    model_version text   NOT NULL,
    predicted_at  timestamptz NOT NULL DEFAULT now(),
    filled_at     timestamptz,
    PRIMARY KEY (symbol, interval, time)
);
CREATE INDEX futures_filled ON futures (symbol, interval, time) WHERE real_close IS NOT NULL;

-- Predictions of a model for stored history (rebuilt after each promotion), marked in-sample
-- or test so charts can show where the model had seen the data.
CREATE TABLE series (
    symbol        text   NOT NULL,
    interval      text   NOT NULL,
    time          bigint NOT NULL,
    model_version text   NOT NULL,
    pred_open     double precision NOT NULL,
    pred_high     double precision NOT NULL,
    pred_low      double precision NOT NULL,
    pred_close    double precision NOT NULL,
    pred_amplitude double precision NOT NULL,
    p_up          double precision NOT NULL,
    split         text   NOT NULL CHECK (split IN ('train', 'validation', 'test', 'live')),
    PRIMARY KEY (symbol, interval, model_version, time)
);

CREATE TABLE job_logs (
    id          bigserial PRIMARY KEY,
    job_name    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'rejected')),
    message     text NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE TABLE models (
    version          text PRIMARY KEY,
    symbol           text NOT NULL,
    interval         text NOT NULL,
    data_start       bigint,
    data_end         bigint,
    test_start       bigint,
    metrics          jsonb NOT NULL DEFAULT '{}'::jsonb,
    baseline_metrics jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'candidate' CHECK (status IN ('candidate', 'champion', 'retired', 'rejected')),
    artifact_path    text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    promoted_at      timestamptz
);
-- One champion per symbol and interval, enforced by the database itself.
CREATE UNIQUE INDEX models_one_champion ON models (symbol, interval) WHERE status = 'champion';

CREATE TABLE drift_events (
    id               bigserial PRIMARY KEY,
    symbol           text NOT NULL,
    interval         text NOT NULL,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    window_size      integer NOT NULL,
    mape             double precision NOT NULL,
    persistence_mape double precision NOT NULL,
    threshold        double precision NOT NULL,
    reason           text NOT NULL,
    model_version    text
);

-- The original projects' table, kept as a view so their queries keep working.
CREATE VIEW btc_candles AS
SELECT to_timestamp(open_time / 1000.0) AS time, open, high, low, close, volume
FROM candles
WHERE symbol = 'BTCUSDT' AND interval = '5m';
