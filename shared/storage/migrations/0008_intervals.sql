-- Calibrated intervals of each prediction: {"close_80": [lo, hi], "high_95": [lo, hi], ...}.
ALTER TABLE futures ADD COLUMN intervals jsonb;
ALTER TABLE series ADD COLUMN intervals jsonb;
