-- The event log and the records beside it (SQLite).
-- `projects` is the fold of the log (server/projects/), written with each append.
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,       -- gapless, assigned by the single writer
    project  TEXT NOT NULL REFERENCES projects(id),
    category TEXT NOT NULL,
    agency   TEXT NOT NULL,
    region   TEXT,
    stage    TEXT NOT NULL,
    doc      BLOB NOT NULL              -- the event JSON exactly as served, hash included
);
CREATE INDEX IF NOT EXISTS events_by_project  ON events(project, seq);
-- The checks before publishing: a project's latest event of a stage (server/projects/checks.py).
CREATE INDEX IF NOT EXISTS events_by_project_stage ON events(project, stage, seq);
CREATE INDEX IF NOT EXISTS events_by_category ON events(category, seq);
CREATE INDEX IF NOT EXISTS events_by_agency   ON events(agency, seq);
CREATE INDEX IF NOT EXISTS events_by_region   ON events(region, seq);
-- `stages=` filters (the API's and replays'); existing files get it at the next start.
CREATE INDEX IF NOT EXISTS events_by_stage    ON events(stage, seq);

-- The log is append-only. These stop accidents, not attackers: an attacker
-- who drops them is caught by `sunbid verify` and the hash chain.
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;

CREATE TABLE IF NOT EXISTS projects (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    category    TEXT NOT NULL,
    agency      TEXT NOT NULL,
    region      TEXT,
    budget      REAL,
    currency    TEXT NOT NULL,
    must_tender INTEGER,                -- 0/1/NULL (older files get it at the next start)
    stage       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    activity_us INTEGER NOT NULL,       -- epoch µs of the latest activity: list order
    last_seq    INTEGER NOT NULL DEFAULT 0,
    -- fold version 2 (server/projects/table.py: older tables get these and are refolded)
    key_dates   TEXT NOT NULL DEFAULT '[]', -- JSON [{field, at, stage, seq}], ascending by at
    closes_at   TEXT,
    closes_us   INTEGER,                -- epoch µs of closes_at: the `sort=closes` order
    concluded   INTEGER NOT NULL DEFAULT 0  -- 1 once an award, contract or failed event came
);
CREATE INDEX IF NOT EXISTS projects_by_activity ON projects(activity_us DESC, id DESC);

CREATE TABLE IF NOT EXISTS idempotency (
    project     TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (project, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    agency     TEXT,
    digest     TEXT NOT NULL UNIQUE,    -- SHA-256 of the token; the token itself is never stored
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- The last seq each record written with the log has folded in (`projects`),
-- committed with the record: a record behind the log catches up at open.
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
