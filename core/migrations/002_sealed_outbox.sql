-- The outbox keeps no personal data in clear (SPEC §8; issue 11): the action, the last transient
-- error and the refusal message are sealed like the cache's personal fields (AES-256-GCM, the
-- item's idempotency key and the column name as associated data); an applied item keeps only the
-- server's job id instead of the server's whole answer; `digest` (a keyed SHA-256 HMAC of the
-- action) finds a repeated booking without opening every payload.
-- Rows from version 1 are copied as they are and sealed by the core when it next opens the
-- database with the data key (`store::outbox::seal_legacy`); their `result` is reduced to the id.
CREATE TABLE outbox_sealed (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         BLOB NOT NULL,   -- the action as JSON, sealed
    digest          BLOB,            -- HMAC of the action's JSON (NULL until sealed)
    idempotency_key TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'refused')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      BLOB,            -- last transient failure (code: message), sealed
    outcome_code    TEXT,            -- refusal code for refused items
    outcome_message BLOB,            -- refusal message, sealed
    server_job_id   TEXT             -- the job the server applied it to (a booking's server id)
);
INSERT INTO outbox_sealed (id, job_id, kind, payload, digest, idempotency_key, status, attempts,
        next_attempt_at, created_at, updated_at, last_error, outcome_code, outcome_message,
        server_job_id)
    SELECT id, job_id, kind, payload, NULL, idempotency_key, status, attempts, next_attempt_at,
        created_at, updated_at, last_error, outcome_code, outcome_message,
        CASE WHEN json_valid(result) THEN json_extract(result, '$.job.id') END
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_sealed RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox(status, job_id, id);
CREATE INDEX outbox_digest ON outbox(kind, digest);
