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
    kind       TEXT NOT NULL DEFAULT 'push',  -- or sms, email, wechat (push/channels/)
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

-- The addresses of SMS, e-mail and WeChat channels (push/channels/contacts.py):
-- encrypted, apart from the log, erased with their channel. A channel's row in
-- `subscriptions` (kind sms/email/wechat, endpoint "channel:<id>") gets its
-- topics in subscription_topics only once confirmed: until then it follows
-- nothing, and no delivery is derived for it.
CREATE TABLE IF NOT EXISTS contacts (
    subscription_id INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    address         BLOB NOT NULL,       -- AES-GCM sealed
    address_digest  TEXT NOT NULL,       -- keyed digest: the same address found again
    hint            TEXT NOT NULL,       -- "138****5678", for the app
    manage_digest   TEXT NOT NULL,       -- digest of the device's manage token
    code_digest     TEXT,                -- digest of the confirmation code, NULL once confirmed
    code_expires_at REAL,
    tries           INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    sent_day        TEXT,                -- the local date sent_count counts (the daily cap)
    sent_count      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS contacts_by_address ON contacts(address_digest);

-- Messages handed to each channel's provider per local day: what it costs
-- (push/channels/policy.toml `price`), for admins (GET /api/channels/usage).
CREATE TABLE IF NOT EXISTS channel_usage (
    kind TEXT NOT NULL,
    day  TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, day)
);

-- When a confirmation code went to an address (by its keyed digest): a few an
-- hour, however often a channel to it is added and cancelled. Kept a day.
CREATE TABLE IF NOT EXISTS code_sends (
    address_digest TEXT NOT NULL,
    sent_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS code_sends_by_address ON code_sends(address_digest, sent_at);
