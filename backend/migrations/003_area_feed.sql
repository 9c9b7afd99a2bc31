-- FriendCore reference backend schema, version 3: open-job changes are broadcast per area tile.
--
-- Before, every change of an open job added a `feed` row for each eligible Friend (~225 WAL page
-- writes per accept with 50 Friends in reach). Now it adds one row here, in the tile of the job's
-- location (tile -1: remote jobs); a Friend's delta sync reads its own `feed` rows plus the rows
-- of the tiles its reach touches and applies the eligibility rule itself. `feed` keeps the rows
-- of the accounts a job names (customer, holder, previous holder).
CREATE TABLE area_feed (
    tile   INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (tile, seq)
) WITHOUT ROWID;

