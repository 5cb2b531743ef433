-- With CANDLECAST_PROMOTE_REQUIRES_LIVE, a run whose candidate beat the champion on the test rows
-- ends `pending`: the candidate predicts in the shadow until the live evidence decides.
ALTER TABLE job_logs DROP CONSTRAINT job_logs_status_check;
ALTER TABLE job_logs ADD CONSTRAINT job_logs_status_check
    CHECK (status IN ('running', 'success', 'failed', 'rejected', 'pending'));
