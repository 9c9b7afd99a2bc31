//! The offline cache of offers and jobs: applying server changes (version-guarded, personal fields
//! sealed), snapshot staging and swap, and the queries behind the inbox and "my jobs".

use crate::crypto::FieldCipher;
use crate::error::{CoreError, CoreResult};
use friend_protocol::{Address, Change, Contact, GeoPoint, JobDetails, JobId, Offer};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// What applying a batch of changes did: for listeners and the in-memory inbox index.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// The inbox changed (an offer added, updated or removed).
    pub inbox_changed: bool,
    /// Jobs of the account that changed.
    pub jobs_changed: Vec<JobId>,
    /// Offers stored (new or newer versions).
    pub offers_upserted: Vec<Offer>,
    /// Offers that left the inbox.
    pub offers_removed: Vec<JobId>,
    /// The whole inbox was replaced (a snapshot finished).
    pub inbox_replaced: bool,
}

impl Applied {
    /// Merges another batch's result.
    pub fn merge(&mut self, other: Applied) {
        self.inbox_changed |= other.inbox_changed;
        self.inbox_replaced |= other.inbox_replaced;
        self.offers_upserted.extend(other.offers_upserted);
        self.offers_removed.extend(other.offers_removed);
        for j in other.jobs_changed {
            if !self.jobs_changed.contains(&j) {
                self.jobs_changed.push(j);
            }
        }
    }
}

fn known_version(tx: &Transaction<'_>, id: &str) -> CoreResult<Option<u64>> {
    let v: Option<i64> = tx
        .prepare_cached("SELECT version FROM job_versions WHERE job_id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    Ok(v.map(|v| v as u64))
}

fn set_version(tx: &Transaction<'_>, id: &str, version: u64) -> CoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO job_versions (job_id, version) VALUES (?1, ?2)
         ON CONFLICT (job_id) DO UPDATE SET version = MAX(version, excluded.version)",
    )?
    .execute(params![id, version as i64])?;
    Ok(())
}

/// Applies server changes. Live changes are version-guarded: a change older than what the cache
/// already knows for that job is skipped. Snapshot changes (`staged`) go to the staging tables.
pub fn apply_changes(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    changes: &[Change],
    staged: bool,
    now_ms: i64,
) -> CoreResult<Applied> {
    let (offers, jobs) = if staged {
        ("staged_offers", "staged_jobs")
    } else {
        ("offers", "jobs")
    };
    let mut applied = Applied::default();
    for change in changes {
        let (id, version) = match change {
            Change::Offer { offer } => (offer.id, offer.version),
            Change::Job { job } => (job.id, job.version),
            Change::Removed {
                job_id, version, ..
            } => (*job_id, *version),
            Change::Unknown => continue,
        };
        let key = id.to_string();
        if !staged {
            if known_version(tx, &key)?.is_some_and(|known| known > version) {
                continue;
            }
            set_version(tx, &key, version)?;
        }
        let in_offers = tx
            .prepare_cached(&format!("DELETE FROM {offers} WHERE id = ?1"))?
            .execute(params![key])?
            > 0;
        let delete_job = || -> CoreResult<bool> {
            Ok(tx
                .prepare_cached(&format!("DELETE FROM {jobs} WHERE id = ?1"))?
                .execute(params![key])?
                > 0)
        };
        match change {
            Change::Offer { offer } => {
                // Back in the inbox (e.g. released): no longer one of the account's jobs.
                if delete_job()? {
                    applied.jobs_changed.push(id);
                }
                insert_offer(tx, offers, offer)?;
                applied.inbox_changed = true;
                if !staged {
                    applied.offers_upserted.push(offer.clone());
                }
            }
            Change::Job { job } => {
                upsert_job(tx, jobs, cipher, job, now_ms)?;
                applied.inbox_changed |= in_offers;
                applied.jobs_changed.push(id);
                if in_offers && !staged {
                    applied.offers_removed.push(id);
                }
            }
            _ => {
                if delete_job()? {
                    applied.jobs_changed.push(id);
                }
                applied.inbox_changed |= in_offers;
                if in_offers && !staged {
                    applied.offers_removed.push(id);
                }
            }
        }
    }
    Ok(applied)
}

fn insert_offer(tx: &Transaction<'_>, table: &str, offer: &Offer) -> CoreResult<()> {
    let body = serde_json::to_string(offer)?;
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table} (id, version, category, place, lat, lon, expires_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        offer.id.to_string(),
        offer.version as i64,
        offer.category.as_str(),
        offer.place.as_str(),
        offer.approx_location.map(|p| p.lat()),
        offer.approx_location.map(|p| p.lon()),
        offer.expires_at.timestamp_millis(),
        body
    ])?;
    Ok(())
}

/// Stores a job with its personal fields sealed (used for direct answers such as a won accept or an
/// applied outbox item). Nothing changes when the cache already knows a newer version.
pub fn store_job(
    tx: &Transaction<'_>,
    cipher: &FieldCipher,
    job: &JobDetails,
    now_ms: i64,
) -> CoreResult<Applied> {
    apply_changes(
        tx,
        cipher,
        &[Change::Job {
            job: Box::new(job.clone()),
        }],
        false,
        now_ms,
    )
}

fn upsert_job(
    tx: &Transaction<'_>,
    table: &str,
    cipher: &FieldCipher,
    job: &JobDetails,
    now_ms: i64,
) -> CoreResult<()> {
    let id = job.id.to_string();
    let seal_json = |field: &str, value: &dyn erased::Json| -> CoreResult<Vec<u8>> {
        cipher.seal(&id, field, value.to_json()?.as_bytes())
    };
    let location = job
        .location
        .as_ref()
        .map(|v| seal_json("location", v))
        .transpose()?;
    let address = job
        .address
        .as_ref()
        .map(|v| seal_json("address", v))
        .transpose()?;
    let contact = Some(seal_json("contact", &job.contact)?);
    let notes = job
        .access_notes
        .as_ref()
        .map(|n| cipher.seal(&id, "access_notes", n.as_bytes()))
        .transpose()?;
    let public = JobDetails {
        location: None,
        address: None,
        contact: Contact {
            name: String::new(),
            phone: String::new(),
        },
        access_notes: None,
        ..job.clone()
    };
    let ended = job.state.is_terminal().then_some(now_ms);
    tx.prepare_cached(&format!(
        "INSERT INTO {table} (id, version, state, body, location, address, contact, access_notes, updated_at, ended_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, state = excluded.state, body = excluded.body,
            location = excluded.location, address = excluded.address, contact = excluded.contact,
            access_notes = excluded.access_notes, updated_at = excluded.updated_at,
            ended_at = COALESCE({table}.ended_at, excluded.ended_at)"
    ))?
    .execute(params![
        id,
        job.version as i64,
        job.state.as_str(),
        serde_json::to_string(&public)?,
        location,
        address,
        contact,
        notes,
        now_ms,
        ended
    ])?;
    Ok(())
}

/// Tiny object-safe JSON serialisation, so sealing code is written once for every field type.
mod erased {
    use crate::error::CoreResult;
    pub trait Json {
        fn to_json(&self) -> CoreResult<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> CoreResult<String> {
            Ok(serde_json::to_string(self)?)
        }
    }
}

/// Removes an offer from the inbox (after a lost race). Records it in `applied` when it was there.
pub fn remove_offer(tx: &Transaction<'_>, id: JobId, applied: &mut Applied) -> CoreResult<()> {
    if tx.execute("DELETE FROM offers WHERE id = ?1", params![id.to_string()])? > 0 {
        applied.inbox_changed = true;
        applied.offers_removed.push(id);
    }
    Ok(())
}

/// Every cached offer (to build the in-memory inbox index).
pub fn all_offers(conn: &Connection) -> CoreResult<Vec<Offer>> {
    let mut stmt = conn.prepare_cached("SELECT body FROM offers")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        out.push(serde_json::from_str(&body?)?);
    }
    Ok(out)
}

/// Starts a snapshot: empties the staging tables.
pub fn begin_snapshot(tx: &Transaction<'_>) -> CoreResult<()> {
    tx.execute_batch("DELETE FROM staged_offers; DELETE FROM staged_jobs;")?;
    Ok(())
}

/// Finishes a snapshot: the staged offers and jobs replace the live ones in this transaction.
pub fn finish_snapshot(tx: &Transaction<'_>) -> CoreResult<()> {
    tx.execute_batch(
        "DELETE FROM offers; INSERT INTO offers SELECT * FROM staged_offers;
         DELETE FROM jobs; INSERT INTO jobs SELECT * FROM staged_jobs;
         -- A job that changed while the snapshot was paged may sit in both: the newer version wins.
         DELETE FROM offers WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.id = offers.id AND j.version >= offers.version);
         DELETE FROM jobs WHERE EXISTS (SELECT 1 FROM offers o WHERE o.id = jobs.id AND o.version > jobs.version);
         DELETE FROM staged_offers; DELETE FROM staged_jobs;
         DELETE FROM job_versions WHERE job_id IN (SELECT id FROM offers UNION ALL SELECT id FROM jobs);
         INSERT INTO job_versions (job_id, version) SELECT id, version FROM offers;
         INSERT OR REPLACE INTO job_versions (job_id, version) SELECT id, version FROM jobs;",
    )?;
    Ok(())
}

/// One offer by id.
pub fn offer(conn: &Connection, id: JobId) -> CoreResult<Option<Offer>> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM offers WHERE id = ?1",
            params![id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    body.map(|b| serde_json::from_str(&b).map_err(CoreError::from))
        .transpose()
}

/// How many offers the inbox holds.
pub fn offer_count(conn: &Connection) -> CoreResult<u64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM offers", [], |r| r.get::<_, i64>(0))? as u64)
}

fn job_from_row(cipher: &FieldCipher, row: &rusqlite::Row<'_>) -> CoreResult<JobDetails> {
    let id: String = row.get(0)?;
    let body: String = row.get(1)?;
    let mut job: JobDetails = serde_json::from_str(&body)?;
    let open = |field: &str, sealed: Option<Vec<u8>>| -> CoreResult<Option<Vec<u8>>> {
        sealed.map(|s| cipher.open(&id, field, &s)).transpose()
    };
    if let Some(b) = open("location", row.get(2)?)? {
        job.location = Some(serde_json::from_slice::<GeoPoint>(&b)?);
    }
    if let Some(b) = open("address", row.get(3)?)? {
        job.address = Some(serde_json::from_slice::<Address>(&b)?);
    }
    if let Some(b) = open("contact", row.get(4)?)? {
        job.contact = serde_json::from_slice::<Contact>(&b)?;
    }
    if let Some(b) = open("access_notes", row.get(5)?)? {
        job.access_notes =
            Some(String::from_utf8(b).map_err(|_| CoreError::Corrupt("access notes".into()))?);
    }
    Ok(job)
}

const JOB_COLUMNS: &str = "id, body, location, address, contact, access_notes";

/// Every cached job of the account, newest change first, personal fields opened.
pub fn jobs(conn: &Connection, cipher: &FieldCipher) -> CoreResult<Vec<JobDetails>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs ORDER BY updated_at DESC, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(job_from_row(cipher, r)?);
    }
    Ok(out)
}

/// Ids of every cached job.
pub fn jobs_ids(conn: &Connection) -> CoreResult<Vec<JobId>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM jobs")?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    ids.iter()
        .map(|s| {
            s.parse()
                .map_err(|_| CoreError::Corrupt(format!("job id {s}")))
        })
        .collect()
}

/// One cached job, personal fields opened.
pub fn job(conn: &Connection, cipher: &FieldCipher, id: JobId) -> CoreResult<Option<JobDetails>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?;
    let mut rows = stmt.query(params![id.to_string()])?;
    match rows.next()? {
        Some(r) => Ok(Some(job_from_row(cipher, r)?)),
        None => Ok(None),
    }
}

/// Forgets the personal fields of jobs that ended before `before_ms` (SPEC §8: purged a fixed time
/// after the job ends). Returns how many jobs were purged.
pub fn purge_personal(tx: &Transaction<'_>, before_ms: i64) -> CoreResult<usize> {
    Ok(tx.execute(
        "UPDATE jobs SET location = NULL, address = NULL, contact = NULL, access_notes = NULL
         WHERE ended_at IS NOT NULL AND ended_at < ?1 AND (location IS NOT NULL OR address IS NOT NULL
            OR contact IS NOT NULL OR access_notes IS NOT NULL)",
        params![before_ms],
    )?)
}
