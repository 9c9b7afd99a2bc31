-- FriendCore reference backend schema, version 6: managing the crowd. A Friend can be suspended
-- (no offers, no pushes, accepts refused; jobs held stay held), and every admin change is recorded:
-- who, what, when.
ALTER TABLE accounts ADD COLUMN suspended_at INTEGER;

CREATE TABLE admin_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    account_id TEXT,
    detail     TEXT NOT NULL
);
