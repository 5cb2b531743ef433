-- Live predictions of the challengers (the latest model of every kind but the champion's):
-- the same shape as `futures`, one row per model and predicted candle, filled with the real
-- candle like `futures`. Never served as the forecast: the leaderboard compares them live.
CREATE TABLE shadow_futures (LIKE futures INCLUDING DEFAULTS);
ALTER TABLE shadow_futures ADD PRIMARY KEY (symbol, interval, model_version, time);
CREATE INDEX shadow_futures_time ON shadow_futures (symbol, interval, time);
