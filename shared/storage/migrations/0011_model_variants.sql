-- A model may carry variants trained beside it on the same rows: "ohlc" reads only open, high, low
-- and close, and answers POST /predict histories without Binance's volume and trade fields.
-- {"ohlc": {"version": ..., "artifact_path": ..., "kind": ..., "metrics": {...}, "baseline_metrics": {...}}}
ALTER TABLE models ADD COLUMN variants jsonb NOT NULL DEFAULT '{}'::jsonb;
