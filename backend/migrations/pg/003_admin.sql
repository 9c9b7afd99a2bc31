-- FriendCore on PostgreSQL, version 3 (= SQLite schema 6): suspended Friends and the admin audit.
ALTER TABLE accounts ADD COLUMN suspended_at BIGINT;

CREATE TABLE admin_audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT COLLATE "C" NOT NULL,
    action     TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C",
    detail     TEXT COLLATE "C" NOT NULL
);
