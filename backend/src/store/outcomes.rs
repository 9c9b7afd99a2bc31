//! How escalated and unsuccessful jobs ended, with the Friend's note.

use crate::clock::to_ms;
use crate::sql::{Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::{JobId, JobOutcome};

/// Records a job's outcome. [`JobOutcome::Unknown`] is never stored (the caller builds the outcome).
pub fn insert(
    tx: &Tx<'_>,
    job: JobId,
    outcome: &JobOutcome,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    let (kind, reason, note) = match outcome {
        JobOutcome::Escalated { note } => ("escalated", None, note.as_deref()),
        JobOutcome::Unsuccessful { reason, note } => {
            ("unsuccessful", Some(reason.as_str()), note.as_deref())
        }
        JobOutcome::Unknown => return Ok(()),
    };
    tx.exec(
        "INSERT INTO outcomes (job_id, kind, reason, note, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![job.to_string(), kind, reason, note, to_ms(now)],
    )?;
    Ok(())
}
