-- The gateway's role: it can read everything and write nothing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'candlecast_reader') THEN
        CREATE ROLE candlecast_reader LOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO candlecast_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO candlecast_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO candlecast_reader;
