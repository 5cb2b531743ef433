-- Where the ingestor's catch-up (backfill, then every REST catch-up) has reached, per stream:
-- the trainer trains a stream's first model only once the recorder has stored candles up to
-- here, so a first model never learns from the first few days of a backfill still running.
CREATE TABLE ingest_progress (
    symbol text NOT NULL,
    interval text NOT NULL,
    caught_up_through bigint NOT NULL,  -- open time of the newest candle published by the catch-up
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval)
);
