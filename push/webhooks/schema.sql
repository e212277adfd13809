-- Webhooks (SQLite), in their own file beside the event log (webhooks.db).
-- There is no row per event: each webhook's `cursor` is how far through the
-- log it has been served, and the log itself is the outbox (docs/webhooks.md).
CREATE TABLE IF NOT EXISTS webhooks (
    id              TEXT PRIMARY KEY,      -- wh_ + 16 hex
    url             TEXT NOT NULL,
    topics          TEXT NOT NULL,         -- JSON list
    stages          TEXT,                  -- JSON list, or NULL for every stage
    description     TEXT NOT NULL,
    secret          BLOB NOT NULL,         -- sealed (push/channels/contacts.py)
    created_at      TEXT NOT NULL,
    cursor          INTEGER NOT NULL,      -- the last seq delivered or skipped
    attempts        INTEGER NOT NULL DEFAULT 0,    -- failed attempts at the next event
    next_attempt_at REAL NOT NULL DEFAULT 0,       -- epoch seconds
    failing_since   REAL,                  -- the first failure since the last success
    disabled_at     TEXT,
    claimed_by      TEXT,                  -- PostgreSQL's claims; unused on one machine
    claimed_until   REAL
);

-- What happened to each attempt, newest kept (SUNBID_WEBHOOK_RECORDS_KEPT per webhook).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    n           INTEGER PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    status      INTEGER,                   -- the receiver's HTTP status, if it answered
    error       TEXT,                      -- status, timeout, connection, redirect
    duration_ms REAL NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_webhook ON webhook_deliveries(webhook_id, n);

-- A webhook disabled after failing too long: a warning for supervisors and
-- admins, resolved when it is enabled again (replay) or deleted. `changed`
-- grows with every insert and resolution: the web processes tail it.
CREATE TABLE IF NOT EXISTS webhook_warnings (
    id          TEXT PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    changed     INTEGER NOT NULL,
    doc         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_warnings_changed ON webhook_warnings(changed);
