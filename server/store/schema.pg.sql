-- The event log and the records beside it (PostgreSQL): the same tables as
-- schema.sql, in the schema SUNBID_DATABASE_SCHEMA names.
CREATE TABLE IF NOT EXISTS projects (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    category    TEXT NOT NULL,
    agency      TEXT NOT NULL,
    region      TEXT,
    budget      DOUBLE PRECISION,
    currency    TEXT NOT NULL,
    must_tender INTEGER,
    stage       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    activity_us BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL DEFAULT 0,
    key_dates   TEXT NOT NULL DEFAULT '[]',
    closes_at   TEXT,
    closes_us   BIGINT,
    concluded   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS projects_by_activity ON projects(activity_us DESC, id DESC);

CREATE TABLE IF NOT EXISTS events (
    seq      BIGINT PRIMARY KEY,        -- assigned under log_head's row lock: see postgres.py
    project  TEXT NOT NULL REFERENCES projects(id),
    category TEXT NOT NULL,
    agency   TEXT NOT NULL,
    region   TEXT,
    stage    TEXT NOT NULL,
    doc      BYTEA NOT NULL             -- the event JSON exactly as served, hash included
);
CREATE INDEX IF NOT EXISTS events_by_project  ON events(project, seq);
CREATE INDEX IF NOT EXISTS events_by_project_stage ON events(project, stage, seq);
CREATE INDEX IF NOT EXISTS events_by_category ON events(category, seq);
CREATE INDEX IF NOT EXISTS events_by_agency   ON events(agency, seq);
CREATE INDEX IF NOT EXISTS events_by_region   ON events(region, seq);
CREATE INDEX IF NOT EXISTS events_by_stage    ON events(stage, seq);

-- The tip of the chain: one row, locked by every append transaction.
CREATE TABLE IF NOT EXISTS log_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO log_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;

-- The log is append-only. These stop accidents, not attackers: an attacker
-- who drops them is caught by `sunbid verify` and the hash chain.
CREATE OR REPLACE FUNCTION sunbid_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                   WHERE t.tgname = 'events_append_only' AND c.relnamespace = current_schema()::regnamespace) THEN
        CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION sunbid_append_only();
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS idempotency (
    project     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (project, key)
);

CREATE TABLE IF NOT EXISTS tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    agency     TEXT,
    digest     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
