-- FriendCore reference backend schema, version 5: between the accept and the arrival, and the
-- compensation of unhappy endings (SPEC §3, issue 15).

-- The agreed visit the holding Friend recorded (cleared when the job is offered again).
ALTER TABLE jobs ADD COLUMN appt_start INTEGER;
ALTER TABLE jobs ADD COLUMN appt_end INTEGER;
ALTER TABLE jobs ADD COLUMN appt_moved INTEGER NOT NULL DEFAULT 0;
-- The holding Friend's latest "on my way": estimated arrival and when it was sent.
ALTER TABLE jobs ADD COLUMN eta INTEGER;
ALTER TABLE jobs ADD COLUMN eta_sent_at INTEGER;
-- How often the job was offered again after a Friend held it.
ALTER TABLE jobs ADD COLUMN reopened INTEGER NOT NULL DEFAULT 0;

-- What a ledger entry is for: a completed job, or the compensation of a late cancellation or a
-- no-show (charged online; the platform's commission as for a completed job).
ALTER TABLE ledger ADD COLUMN kind TEXT NOT NULL DEFAULT 'completion'
    CHECK (kind IN ('completion', 'late_cancellation', 'no_show'));
