-- FriendCore reference backend schema, version 2: on-site negotiation, completion, the Friends'
-- ledger, ratings and unhappy endings (SPEC §2, §3, §7).
-- Times are milliseconds since the Unix epoch (UTC); ids are UUID strings; amounts are integer
-- minor units with their ISO 4217 currency beside them.

-- Device keys: the Ed25519 public keys an account's devices registered. Signed consent is verified
-- against the keys of the signing party's account; an account keeps every key it registered (several
-- devices, reinstalls), so payloads signed on an older device still verify.
CREATE TABLE device_keys (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    public_key TEXT NOT NULL,    -- standard base64 of the 32-byte key (canonical form)
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, public_key)
) WITHOUT ROWID;

-- Quote versions of each job's negotiation, one row per accepted proposal payload. The negotiation
-- state is derived from these rows: the latest is the highest version, the agreement in force the
-- highest accepted version. Both signed payloads are kept verbatim: they are the record of consent
-- (the paper report they replace) and what a retry of the same upload is recognised by.
CREATE TABLE quotes (
    job_id      TEXT NOT NULL REFERENCES jobs(id),
    version     INTEGER NOT NULL,
    proposed_by TEXT NOT NULL CHECK (proposed_by IN ('friend', 'customer')),
    quote       TEXT NOT NULL,   -- JSON Quote, as validated
    total_minor INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    proposal    TEXT NOT NULL,   -- signed proposal payload (base64url)
    acceptance  TEXT,            -- signed acceptance payload, once accepted
    answer      TEXT NOT NULL CHECK (answer IN ('pending', 'accepted', 'rejected', 'superseded')),
    proposed_at INTEGER NOT NULL,
    answered_at INTEGER,         -- accepted, rejected or superseded at
    PRIMARY KEY (job_id, version)
) WITHOUT ROWID;

-- One entry per completed job: how it was paid, the agreed total, and what it settled at. It is the
-- completion record the job's details show, and the Friend's ledger: for cash jobs the Friend owes
-- the fee, for online jobs the platform owes the payout; `status` moves pending → to_pay → paid,
-- never back.
CREATE TABLE ledger (
    job_id        TEXT PRIMARY KEY REFERENCES jobs(id),
    friend_id     TEXT NOT NULL REFERENCES accounts(id),
    method        TEXT NOT NULL CHECK (method IN ('online', 'cash')),
    currency      TEXT NOT NULL,
    total_minor   INTEGER NOT NULL,  -- the agreed total
    charged_minor INTEGER NOT NULL,  -- what the customer paid (cash rounded to the smallest coin)
    fee_minor     INTEGER NOT NULL,
    payout_minor  INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'to_pay', 'paid')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    to_pay_at     INTEGER,
    paid_at       INTEGER
) WITHOUT ROWID;
-- A Friend's ledger, newest first.
CREATE INDEX ledger_friend ON ledger(friend_id, created_at);

-- The customer's rating of a completed job: at most one per job.
CREATE TABLE ratings (
    job_id      TEXT PRIMARY KEY REFERENCES jobs(id),
    customer_id TEXT NOT NULL REFERENCES accounts(id),
    friend_id   TEXT NOT NULL REFERENCES accounts(id),
    stars       INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment     TEXT,
    rated_at    INTEGER NOT NULL
) WITHOUT ROWID;
-- A Friend's ratings (their average).
CREATE INDEX ratings_friend ON ratings(friend_id);

-- How an escalated or unsuccessful job ended, with the Friend's note.
CREATE TABLE outcomes (
    job_id TEXT PRIMARY KEY REFERENCES jobs(id),
    kind   TEXT NOT NULL CHECK (kind IN ('escalated', 'unsuccessful')),
    reason TEXT,                 -- unsuccessful: customer_absent | cannot_help | other
    note   TEXT,
    at     INTEGER NOT NULL
) WITHOUT ROWID;
