-- FriendCore on PostgreSQL, version 5: stored idempotent answers (and fences) are kept for a
-- bounded time, not for ever (src/store/idempotency.rs, IDEMPOTENCY_RETENTION): the hourly prune
-- finds them by age.
CREATE INDEX idempotency_created ON idempotency (created_at);
