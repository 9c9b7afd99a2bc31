-- FriendCore reference backend schema, version 1.
-- Times are milliseconds since the Unix epoch (UTC); ids are UUID strings.

-- Every account: Friends (and Pros) and customers. Only a SHA-256 hash of the bearer token is kept.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('friend', 'customer')),
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Provider profile: registered home point and travel radius (eligibility is measured from here,
-- never from a live position), qualified categories, brand communities and tier.
CREATE TABLE friends (
    account_id  TEXT PRIMARY KEY REFERENCES accounts(id),
    home_lat    REAL NOT NULL,
    home_lon    REAL NOT NULL,
    radius_km   INTEGER NOT NULL,
    categories  TEXT NOT NULL,   -- JSON array of category names
    communities TEXT NOT NULL,   -- JSON array of community names
    tier        TEXT NOT NULL
);
-- Finding the Friends a job concerns: a latitude band first, then the exact rule in Rust.
CREATE INDEX friends_home ON friends(home_lat, home_lon);

-- The service catalog with orientation prices.
CREATE TABLE services (
    id               TEXT PRIMARY KEY,
    position         INTEGER NOT NULL,
    category         TEXT NOT NULL,
    title            TEXT NOT NULL,
    description      TEXT NOT NULL,
    price_minor      INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL,
    min_tier         TEXT NOT NULL
);

-- Small key/value settings: catalog_version, feed_floor (oldest change seq still served).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Jobs. `seq` (the rowid) orders snapshot pages; `version` increases with every change.
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    customer_id  TEXT NOT NULL REFERENCES accounts(id),
    friend_id    TEXT REFERENCES accounts(id),   -- holder, or last holder of a finished job
    service_id   TEXT NOT NULL,
    category     TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    timing_kind  TEXT NOT NULL,                  -- 'now' | 'slot'
    slot_start   INTEGER,
    slot_end     INTEGER,
    place        TEXT NOT NULL,                  -- 'on_site' | 'remote'
    lat          REAL,                           -- exact location (personal)
    lon          REAL,
    approx_lat   REAL,                           -- approximate location shown before accept
    approx_lon   REAL,
    district     TEXT,
    address      TEXT,                           -- JSON Address (personal)
    contact      TEXT NOT NULL,                  -- JSON Contact (personal)
    access_notes TEXT,                           -- personal
    price_minor  INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    brand        TEXT,
    min_tier     TEXT NOT NULL,
    radius_km    INTEGER NOT NULL,
    cancelled_by TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX jobs_open_expiry ON jobs(expires_at) WHERE state = 'open';
CREATE INDEX jobs_open_lat ON jobs(lat) WHERE state = 'open';
CREATE INDEX jobs_customer ON jobs(customer_id, seq);
CREATE INDEX jobs_friend ON jobs(friend_id, seq) WHERE friend_id IS NOT NULL;

-- Offers a Friend declined (or released): they leave that Friend's inbox.
CREATE TABLE declines (
    job_id    TEXT NOT NULL,
    friend_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (job_id, friend_id)
) WITHOUT ROWID;

-- The ordered change log: one row per change of a job. Its seq is the sync cursor.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at     INTEGER NOT NULL
);

-- Per-account fan-out of the change log: which changes concern whom. A delta sync is one range
-- scan of this table; a long-poll is woken only for the accounts a change added rows for.
CREATE TABLE feed (
    account_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    job_id     TEXT NOT NULL,
    PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;

-- Stored outcomes of idempotent requests, per account and Idempotency-Key.
CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    route       TEXT NOT NULL,   -- which route stored it (accept, book, ...)
    fingerprint BLOB NOT NULL,   -- SHA-256 of route and canonical body
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) WITHOUT ROWID;
