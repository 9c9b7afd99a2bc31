//! Rows of `pending_accepts`: an accept whose outcome is not known yet. Written before the request
//! leaves (so an app kill cannot lose it), deleted by the outcome — the accept's own answer, or the
//! server's final answer to a lookup of its key at the next sync.

use crate::error::{CoreError, CoreResult};
use friend_protocol::JobId;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// The key of the pending accept of `job`, creating one (a fresh UUID) when there is none: a double
/// tap or a retry after an app kill reuses the key, so the server applies the accept at most once.
pub fn key_for(tx: &Transaction<'_>, job: JobId, now_ms: i64) -> CoreResult<String> {
    let existing: Option<String> = tx
        .query_row(
            "SELECT key FROM pending_accepts WHERE job_id = ?1",
            params![job.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(k) = existing {
        return Ok(k);
    }
    let key = uuid::Uuid::new_v4().to_string();
    tx.execute(
        "INSERT INTO pending_accepts (job_id, key, created_at) VALUES (?1, ?2, ?3)",
        params![job.to_string(), key, now_ms],
    )?;
    Ok(key)
}

/// Forgets the pending accept of `job` (its outcome is known).
pub fn resolve(tx: &Transaction<'_>, job: JobId) -> CoreResult<()> {
    tx.execute(
        "DELETE FROM pending_accepts WHERE job_id = ?1",
        params![job.to_string()],
    )?;
    Ok(())
}

/// Every pending accept as (job, key), oldest first.
pub fn all(conn: &Connection) -> CoreResult<Vec<(JobId, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT job_id, key FROM pending_accepts ORDER BY created_at")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(job, key)| {
            job.parse()
                .map(|j| (j, key))
                .map_err(|_| CoreError::Corrupt(format!("pending accept job id {job}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn one_key_per_job_until_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        let (a, b) = (JobId::random(), JobId::random());
        let k1 = store.write(|tx| key_for(tx, a, 1)).unwrap();
        assert_eq!(store.write(|tx| key_for(tx, a, 2)).unwrap(), k1, "reused");
        let k2 = store.write(|tx| key_for(tx, b, 3)).unwrap();
        assert_ne!(k1, k2);
        assert_eq!(store.read(all).unwrap(), vec![(a, k1.clone()), (b, k2)]);
        store.write(|tx| resolve(tx, a)).unwrap();
        assert_eq!(store.read(all).unwrap().len(), 1);
        assert_ne!(
            store.write(|tx| key_for(tx, a, 4)).unwrap(),
            k1,
            "a new race, a new key"
        );
    }
}
