-- FriendCore reference backend schema for PostgreSQL (15+), migration 001. It equals the SQLite
-- schema version 5 (backend/migrations/001_initial.sql … 005_visit.sql applied in order): same
-- tables, columns (in the same order), keys, indexes and checks, so the store's queries carry over
-- with `$n` placeholders and dialect changes only. The data backfill SQLite needed for older
-- databases (friends.home_tile) is not needed on a fresh database.
--
-- Storage types follow what the Rust code binds and reads, so one row decoder serves both stores:
-- every SQLite INTEGER is BIGINT (i64: millisecond times, money in minor units, counts, the 0/1
-- flag jobs.appt_moved), REAL is DOUBLE PRECISION, BLOB is BYTEA, and TEXT stays TEXT (UUID ids,
-- JSON documents, signed payloads). Text is COLLATE "C": byte order, as SQLite's BINARY collation,
-- so ORDER BY ties (device keys, ledger, push devices) come out as on SQLite whatever the
-- database's locale. Times are milliseconds since the Unix epoch (UTC).
--
-- The change log's sequence number (changes.seq, and the seq of feed and area_feed rows) is NOT a
-- PostgreSQL sequence: sequence values are handed out at call time, not commit time, so a reader
-- could see seq 8 committed before seq 7 and move its cursor past 7 for good. The application
-- assigns it from the one-row table change_counter instead: each changing transaction takes its
-- sequence numbers as its last step,
--     UPDATE change_counter SET seq = seq + $1 WHERE id = 1 RETURNING seq
-- ($1 = how many changes it records; it uses seq - $1 + 1 … seq), then inserts its changes, feed
-- and area_feed rows and commits. The row lock is held until commit, so commit order = sequence
-- order, and the newest change (the sync head) is change_counter.seq.

-- Every account: Friends (and Pros) and customers. Only a SHA-256 hash of the bearer token is kept.
CREATE TABLE accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    role        TEXT COLLATE "C" NOT NULL CHECK (role IN ('friend', 'customer')),
    name        TEXT COLLATE "C" NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Provider profile: registered home point and travel radius (eligibility is measured from here,
-- never from a live position), qualified categories, brand communities, tier and home area tile.
CREATE TABLE friends (
    account_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts(id),
    home_lat    DOUBLE PRECISION NOT NULL,
    home_lon    DOUBLE PRECISION NOT NULL,
    radius_km   BIGINT NOT NULL,
    categories  TEXT COLLATE "C" NOT NULL,   -- JSON array of category names
    communities TEXT COLLATE "C" NOT NULL,   -- JSON array of community names
    tier        TEXT COLLATE "C" NOT NULL,
    home_tile   BIGINT                       -- area tile of the home (backend/src/area.rs)
);
-- Finding the Friends a job concerns: a latitude band first, then the exact rule in Rust.
CREATE INDEX friends_home ON friends(home_lat, home_lon);
-- The Friends an open job may be pushed to, read from the tiles around it.
CREATE INDEX friends_home_tile ON friends(home_tile);

-- The service catalog with orientation prices.
CREATE TABLE services (
    id               TEXT COLLATE "C" PRIMARY KEY,
    position         BIGINT NOT NULL,
    category         TEXT COLLATE "C" NOT NULL,
    title            TEXT COLLATE "C" NOT NULL,
    description      TEXT COLLATE "C" NOT NULL,
    price_minor      BIGINT NOT NULL,
    currency         TEXT COLLATE "C" NOT NULL,
    duration_minutes BIGINT NOT NULL,
    min_tier         TEXT COLLATE "C" NOT NULL
);

-- Small key/value settings: catalog_version, feed_floor (oldest change seq still served).
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

-- Jobs. `seq` orders snapshot pages (SQLite's rowid; here an identity, never set by the
-- application); `version` increases with every change.
CREATE TABLE jobs (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT COLLATE "C" NOT NULL UNIQUE,
    version      BIGINT NOT NULL,
    state        TEXT COLLATE "C" NOT NULL,
    customer_id  TEXT COLLATE "C" NOT NULL REFERENCES accounts(id),
    friend_id    TEXT COLLATE "C" REFERENCES accounts(id),   -- holder, or last holder of a finished job
    service_id   TEXT COLLATE "C" NOT NULL,
    category     TEXT COLLATE "C" NOT NULL,
    title        TEXT COLLATE "C" NOT NULL,
    description  TEXT COLLATE "C" NOT NULL,
    timing_kind  TEXT COLLATE "C" NOT NULL,                  -- 'now' | 'slot'
    slot_start   BIGINT,
    slot_end     BIGINT,
    place        TEXT COLLATE "C" NOT NULL,                  -- 'on_site' | 'remote'
    lat          DOUBLE PRECISION,                           -- exact location (personal)
    lon          DOUBLE PRECISION,
    approx_lat   DOUBLE PRECISION,                           -- approximate location shown before accept
    approx_lon   DOUBLE PRECISION,
    district     TEXT COLLATE "C",
    address      TEXT COLLATE "C",                           -- JSON Address (personal)
    contact      TEXT COLLATE "C" NOT NULL,                  -- JSON Contact (personal)
    access_notes TEXT COLLATE "C",                           -- personal
    price_minor  BIGINT NOT NULL,
    currency     TEXT COLLATE "C" NOT NULL,
    brand        TEXT COLLATE "C",
    min_tier     TEXT COLLATE "C" NOT NULL,
    radius_km    BIGINT NOT NULL,
    cancelled_by TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    -- The agreed visit the holding Friend recorded (cleared when the job is offered again).
    appt_start   BIGINT,
    appt_end     BIGINT,
    appt_moved   BIGINT NOT NULL DEFAULT 0,                  -- 0/1: the visit was moved
    -- The holding Friend's latest "on my way": estimated arrival and when it was sent.
    eta          BIGINT,
    eta_sent_at  BIGINT,
    -- How often the job was offered again after a Friend held it.
    reopened     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_open_expiry ON jobs(expires_at) WHERE state = 'open';
CREATE INDEX jobs_open_lat ON jobs(lat) WHERE state = 'open';
CREATE INDEX jobs_customer ON jobs(customer_id, seq);
CREATE INDEX jobs_friend ON jobs(friend_id, seq) WHERE friend_id IS NOT NULL;

-- Offers a Friend declined (or released): they leave that Friend's inbox.
CREATE TABLE declines (
    job_id    TEXT COLLATE "C" NOT NULL,
    friend_id TEXT COLLATE "C" NOT NULL,
    reason    TEXT COLLATE "C" NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (job_id, friend_id)
);

-- The ordered change log: one row per change of a job. Its seq is the sync cursor, assigned by the
-- application from change_counter (see the top of this file), never by a sequence.
CREATE TABLE changes (
    seq    BIGINT PRIMARY KEY,
    job_id TEXT COLLATE "C" NOT NULL,
    at     BIGINT NOT NULL
);

-- The last change sequence number handed out (SQLite: AUTOINCREMENT's sqlite_sequence row).
CREATE TABLE change_counter (
    id  SMALLINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (1, 0);

-- Per-account fan-out of the change log: which changes concern whom. A delta sync is one range
-- scan of this table; a long-poll is woken only for the accounts a change added rows for.
CREATE TABLE feed (
    account_id TEXT COLLATE "C" NOT NULL,
    seq        BIGINT NOT NULL,   -- changes.seq
    job_id     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, seq)
);

-- Stored outcomes of idempotent requests, per account and Idempotency-Key.
CREATE TABLE idempotency (
    account_id  TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    route       TEXT COLLATE "C" NOT NULL,   -- which route stored it (accept, book, ...)
    fingerprint BYTEA NOT NULL,              -- SHA-256 of route and canonical body (or b'fenced')
    status      BIGINT NOT NULL,
    body        TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, key)
);

-- Device keys: the Ed25519 public keys an account's devices registered. Signed consent is verified
-- against the keys of the signing party's account; an account keeps every key it registered.
CREATE TABLE device_keys (
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts(id),
    public_key TEXT COLLATE "C" NOT NULL,    -- standard base64 of the 32-byte key (canonical form)
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, public_key)
);

-- Quote versions of each job's negotiation, one row per accepted proposal payload. Both signed
-- payloads are kept verbatim: they are the record of consent.
CREATE TABLE quotes (
    job_id      TEXT COLLATE "C" NOT NULL REFERENCES jobs(id),
    version     BIGINT NOT NULL,
    proposed_by TEXT COLLATE "C" NOT NULL CHECK (proposed_by IN ('friend', 'customer')),
    quote       TEXT COLLATE "C" NOT NULL,   -- JSON Quote, as validated
    total_minor BIGINT NOT NULL,
    currency    TEXT COLLATE "C" NOT NULL,
    proposal    TEXT COLLATE "C" NOT NULL,   -- signed proposal payload (base64url)
    acceptance  TEXT COLLATE "C",            -- signed acceptance payload, once accepted
    answer      TEXT COLLATE "C" NOT NULL
        CHECK (answer IN ('pending', 'accepted', 'rejected', 'superseded')),
    proposed_at BIGINT NOT NULL,
    answered_at BIGINT,                      -- accepted, rejected or superseded at
    PRIMARY KEY (job_id, version)
);

-- One entry per completed job or compensation: how it was paid, the agreed total, and what it
-- settled at. `status` moves pending → to_pay → paid, never back.
CREATE TABLE ledger (
    job_id        TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs(id),
    friend_id     TEXT COLLATE "C" NOT NULL REFERENCES accounts(id),
    method        TEXT COLLATE "C" NOT NULL CHECK (method IN ('online', 'cash')),
    currency      TEXT COLLATE "C" NOT NULL,
    total_minor   BIGINT NOT NULL,  -- the agreed total
    charged_minor BIGINT NOT NULL,  -- what the customer paid (cash rounded to the smallest coin)
    fee_minor     BIGINT NOT NULL,
    payout_minor  BIGINT NOT NULL,
    status        TEXT COLLATE "C" NOT NULL CHECK (status IN ('pending', 'to_pay', 'paid')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    to_pay_at     BIGINT,
    paid_at       BIGINT,
    -- What the entry is for: a completed job, or the compensation of a late cancellation or a
    -- no-show (charged online; the platform's commission as for a completed job).
    kind          TEXT COLLATE "C" NOT NULL DEFAULT 'completion'
        CHECK (kind IN ('completion', 'late_cancellation', 'no_show'))
);
-- A Friend's ledger, newest first.
CREATE INDEX ledger_friend ON ledger(friend_id, created_at);

-- The customer's rating of a completed job: at most one per job.
CREATE TABLE ratings (
    job_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs(id),
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES accounts(id),
    friend_id   TEXT COLLATE "C" NOT NULL REFERENCES accounts(id),
    stars       BIGINT NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment     TEXT COLLATE "C",
    rated_at    BIGINT NOT NULL
);
-- A Friend's ratings (their average).
CREATE INDEX ratings_friend ON ratings(friend_id);

-- How an escalated or unsuccessful job ended, with the Friend's note.
CREATE TABLE outcomes (
    job_id TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs(id),
    kind   TEXT COLLATE "C" NOT NULL CHECK (kind IN ('escalated', 'unsuccessful')),
    reason TEXT COLLATE "C",                 -- unsuccessful: customer_absent | cannot_help | other
    note   TEXT COLLATE "C",
    at     BIGINT NOT NULL
);

-- Open-job changes broadcast per area tile (tile -1: remote jobs); `feed` keeps the rows of the
-- accounts a job names.
CREATE TABLE area_feed (
    tile   BIGINT NOT NULL,
    seq    BIGINT NOT NULL,   -- changes.seq
    job_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tile, seq)
);

-- Devices registered for pushes. The token moves to the account that registered it last.
CREATE TABLE push_devices (
    token         TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT COLLATE "C" NOT NULL REFERENCES accounts(id),
    platform      TEXT COLLATE "C" NOT NULL CHECK (platform IN ('fcm', 'apns', 'apns_sandbox')),
    registered_at BIGINT NOT NULL
);
CREATE INDEX push_devices_account ON push_devices(account_id, registered_at);

-- Pushes waiting for delivery, written in the same transaction as the change they announce. One
-- row per device and collapse key (the ON CONFLICT target of enqueue): a newer push with the same
-- key replaces the waiting one (`rev` tells the dispatcher it changed meanwhile).
CREATE TABLE push_queue (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused: the dispatcher keys its in-flight set and removals by id and rev
    token        TEXT COLLATE "C" NOT NULL,
    platform     TEXT COLLATE "C" NOT NULL,
    collapse_key TEXT COLLATE "C" NOT NULL,
    message      TEXT COLLATE "C" NOT NULL,  -- JSON: title, body, data (no personal data)
    rev          BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,            -- dropped unsent after this (an offer's expiry)
    due_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    UNIQUE (token, collapse_key)
);
CREATE INDEX push_queue_due ON push_queue(due_at);
-- Withdrawing a job's unsent offers once it is no longer open.
CREATE INDEX push_queue_key ON push_queue(collapse_key);
