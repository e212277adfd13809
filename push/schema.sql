-- Web Push state (SQLite), in its own file beside the event log: a fan-out
-- to 100,000 subscribers writes here, and must never hold the log's write
-- lock while publishers wait for their 201.
CREATE TABLE IF NOT EXISTS subscriptions (
    id         INTEGER PRIMARY KEY,
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     BLOB NOT NULL,
    auth       BLOB NOT NULL,
    topics     TEXT NOT NULL,            -- JSON list, as given
    stages     TEXT,                     -- ",notice,award," or NULL for every stage
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- topic → subscriptions: matching an event is a few index lookups, not a scan.
CREATE TABLE IF NOT EXISTS subscription_topics (
    topic           TEXT NOT NULL,
    subscription_id INTEGER NOT NULL,
    PRIMARY KEY (topic, subscription_id)
) WITHOUT ROWID;

-- How far through the event log deliveries have been derived.
CREATE TABLE IF NOT EXISTS cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);

-- One row per (event, subscription). state: 0 queued, 1 delivered, 2 failed, 3 gone.
CREATE TABLE IF NOT EXISTS deliveries (
    seq             INTEGER NOT NULL,
    subscription_id INTEGER NOT NULL,
    state           INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         REAL NOT NULL,       -- epoch seconds: when to (re)try
    expires_at      REAL NOT NULL,       -- epoch seconds: published + TTL; dropped after
    last_status     INTEGER,
    PRIMARY KEY (seq, subscription_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(next_at) WHERE state = 0;
-- Finished rows (delivered, failed, gone) by the time of their last attempt: pruning.
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries(next_at) WHERE state != 0;
