-- What the predictor and the trainer need beyond 0001.

-- The drift cool-down counts candle time, not wall time, so that a replay or the 600x stand-in
-- cools down like live data; a restarted predictor finds its last drift here.
ALTER TABLE drift_events ADD COLUMN candle_time bigint;
CREATE INDEX drift_events_latest ON drift_events (symbol, interval, candle_time DESC);

-- Training runs say which symbol they trained and which model they produced, so a restarted
-- trainer can find the runs it left `running` and the gateway can link a run to its model.
ALTER TABLE job_logs ADD COLUMN symbol text;
ALTER TABLE job_logs ADD COLUMN interval text;
ALTER TABLE job_logs ADD COLUMN model_version text;
CREATE INDEX job_logs_running ON job_logs (job_name, symbol, interval) WHERE status = 'running';
