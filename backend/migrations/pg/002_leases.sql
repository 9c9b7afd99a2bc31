-- FriendCore on PostgreSQL, version 2: leases for the work one instance does for all (the expiry
-- sweep, the push dispatcher). A lease is held by one instance until `until`, renewed by its
-- holder, and taken over by another instance once it lapsed; times are the database's clock, so
-- the instances' clocks need not agree (docs/adr/0014).
CREATE TABLE leases (
    name   TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT COLLATE "C" NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
