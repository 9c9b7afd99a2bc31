-- FriendCore reference backend schema, version 4: platform push (SPEC §5, issue 13).

-- Devices registered for pushes. The token is what FCM or APNs delivers to; it moves to the account
-- that registered it last (a shared phone, a new login). Tokens are never logged.
CREATE TABLE push_devices (
    token         TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    platform      TEXT NOT NULL CHECK (platform IN ('fcm', 'apns', 'apns_sandbox')),
    registered_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX push_devices_account ON push_devices(account_id, registered_at);

-- The area tile of each Friend's home (backend/src/area.rs), filled in by the backend when this
-- migration ran and at every account creation: the Friends an open job may be pushed to are read
-- from the tiles around it, O(Friends nearby) rather than O(all Friends).
ALTER TABLE friends ADD COLUMN home_tile INTEGER;
CREATE INDEX friends_home_tile ON friends(home_tile);

-- Pushes waiting for delivery, written in the same transaction as the change they announce, so a
-- crash between commit and delivery loses none. One row per device and collapse key: a newer push
-- with the same key replaces the waiting one (`rev` tells the dispatcher it changed meanwhile).
CREATE TABLE push_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the dispatcher keys its in-flight set and removals by id and rev
    token        TEXT NOT NULL,
    platform     TEXT NOT NULL,
    collapse_key TEXT NOT NULL,
    message      TEXT NOT NULL,       -- JSON: title, body, data (no personal data)
    rev          INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,    -- dropped unsent after this (an offer's expiry)
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    UNIQUE (token, collapse_key)
);
CREATE INDEX push_queue_due ON push_queue(due_at);
-- Withdrawing a job's unsent offers once it is no longer open.
CREATE INDEX push_queue_key ON push_queue(collapse_key);
