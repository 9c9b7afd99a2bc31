-- FriendCore device cache, version 1. Times are milliseconds since the epoch (device clock unless
-- noted); ids are UUID strings. Personal data is stored only sealed (AES-256-GCM, see crypto.rs).

-- Small settings and sync state, one row per key:
--   cursor            delta cursor of the last applied page (absent: next sync is a snapshot)
--   snapshot_cursor   continuation of a snapshot in progress (its pages sit in the staged_* tables)
--   clock_offset_ms   server clock minus device clock, measured at every sync
--   last_sync_ms      device time of the last successful sync
--   key_check         a sealed constant proving the data key opens this database
--   catalog, profile  cached JSON of the catalog and the account's own profile
--   device_key        the device's Ed25519 key (PKCS#8), sealed like personal data
--   key_registered    the device key's public half was registered with the backend
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Open offers in the inbox (approximate, no personal data). lat/lon are the approximate point,
-- indexed for the inbox's bounding-box prefilter; body is the Offer as JSON.
CREATE TABLE offers (
    id         TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    category   TEXT NOT NULL,
    place      TEXT NOT NULL,
    lat        REAL,
    lon        REAL,
    expires_at INTEGER NOT NULL,   -- server clock
    body       TEXT NOT NULL
);
CREATE INDEX offers_lat ON offers(lat);

-- Jobs the account holds (Friend) or booked (customer), full details. body is the JobDetails JSON
-- without the personal fields, which are sealed in their own columns (record id + column name as
-- associated data). ended_at marks terminal jobs; their personal fields are purged later.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    body         TEXT NOT NULL,
    location     BLOB,
    address      BLOB,
    contact      BLOB,
    access_notes BLOB,
    updated_at   INTEGER NOT NULL,
    ended_at     INTEGER
);

-- A snapshot in progress: pages land here and replace offers/jobs in one transaction at its end.
-- Same columns as offers and jobs.
CREATE TABLE staged_offers (
    id         TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    category   TEXT NOT NULL,
    place      TEXT NOT NULL,
    lat        REAL,
    lon        REAL,
    expires_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE staged_jobs (
    id           TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    body         TEXT NOT NULL,
    location     BLOB,
    address      BLOB,
    contact      BLOB,
    access_notes BLOB,
    updated_at   INTEGER NOT NULL,
    ended_at     INTEGER
);

-- The newest version seen per job, also for removed ones, so an older answer that arrives late
-- never overwrites newer data.
CREATE TABLE job_versions (
    job_id  TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

-- Accepts whose outcome is not known yet. Written before the request leaves; resolved by the
-- accept itself, or at the next start/sync by looking the key up on the server.
CREATE TABLE pending_accepts (
    job_id     TEXT PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The durable outbox of on-site actions, replayed in order per job with per-item idempotency keys.
-- status: pending (to send), applied (server accepted), refused (set aside with the server's reason).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,   -- JSON request body
    idempotency_key TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'refused')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT,            -- last transient failure (code: message)
    outcome_code    TEXT,            -- refusal code for refused items
    outcome_message TEXT,
    result          TEXT             -- the server's answer for applied items (JSON)
);
CREATE INDEX outbox_pending ON outbox(status, job_id, id);
