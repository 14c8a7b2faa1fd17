-- The dead-man alert threshold as a runtime setting (`financial jobs set --alert-after SECONDS`).
-- NULL is "not set" (the environment's, the code's or the worker-wide value applies); 0 turns the
-- job's alert off, whatever the worker-wide default; a positive value is the threshold. Audit
-- rows written before this migration lack the key `alert_after_s`: it reads as not set.

ALTER TABLE job_settings
    ADD COLUMN alert_after_seconds double precision NULL CHECK (alert_after_seconds >= 0);
