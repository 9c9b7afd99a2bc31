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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::Store;
    use chrono::{TimeZone, Utc};
    use friend_protocol::{
        AccountId, Category, JobState, Money, PartyKeys, Place, RemovalReason, Tier, Timing,
    };

    /// The personal fields of every test job; none may appear in the database in clear.
    const STREET: &str = "Quarzgasse 17";
    const NAME: &str = "Vreni Vertraulich";
    const PHONE: &str = "+41 79 555 98 76";
    const NOTES: &str = "Door code 0815";

    fn id(n: u128) -> JobId {
        JobId(uuid::Uuid::from_u128(n))
    }

    fn at(ms: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    /// Job `n` as an open offer: its non-personal fields and an approximate point.
    fn new_offer(n: u128, version: u64) -> Offer {
        let j = new_job(n, version, JobState::Open);
        Offer {
            id: j.id,
            version,
            service_id: j.service_id,
            category: j.category,
            title: j.title,
            description: j.description,
            timing: j.timing,
            place: j.place,
            approx_location: Some(GeoPoint::new(47.41, 8.54).unwrap()),
            district: j.district,
            orientation_price: j.orientation_price,
            brand: j.brand,
            min_tier: j.min_tier,
            radius_km: j.radius_km,
            created_at: j.created_at,
            expires_at: j.expires_at,
        }
    }

    /// [`new_job`] held by the Friend "Anna" (also for other modules' tests).
    pub(crate) fn held(state: JobState) -> JobDetails {
        let mut job = new_job(1, 3, state);
        job.friend = Some(friend_protocol::FriendSummary {
            id: friend_protocol::AccountId(uuid::Uuid::from_u128(9)),
            name: "Anna".into(),
            tier: friend_protocol::Tier::Friend,
        });
        job
    }

    /// A job with recognisable personal fields (also for other modules' tests).
    pub(crate) fn new_job(n: u128, version: u64, state: JobState) -> JobDetails {
        JobDetails {
            id: id(n),
            version,
            state,
            customer_id: AccountId(uuid::Uuid::from_u128(7)),
            service_id: "network.router_setup".into(),
            category: Category::Network,
            title: "Router".into(),
            description: "Wi-Fi does not reach the bedroom".into(),
            timing: Timing::Now,
            place: Place::OnSite,
            location: Some(GeoPoint::new(47.4111, 8.5441).unwrap()),
            address: Some(Address {
                street: STREET.into(),
                postal_code: "8050".into(),
                city: "Zürich".into(),
            }),
            district: Some("8050 Zürich".into()),
            contact: Contact {
                name: NAME.into(),
                phone: PHONE.into(),
            },
            access_notes: Some(NOTES.into()),
            orientation_price: Money::chf(8900),
            brand: None,
            min_tier: Tier::Friend,
            radius_km: 30,
            friend: None,
            cancelled_by: None,
            created_at: at(0),
            expires_at: at(3_600_000),
            updated_at: at(0),
            keys: PartyKeys::default(),
            negotiation: None,
            payment: None,
            final_total: None,
            settlement: None,
            rating: None,
            outcome: None,
            visit: Default::default(),
        }
    }

    fn as_offer(o: Offer) -> Change {
        Change::Offer { offer: o }
    }

    fn as_job(j: JobDetails) -> Change {
        Change::Job { job: Box::new(j) }
    }

    fn offer_change(n: u128, version: u64) -> Change {
        as_offer(new_offer(n, version))
    }

    /// The job as a Friend who just won it sees it.
    fn assigned_change(n: u128, version: u64) -> Change {
        as_job(new_job(n, version, JobState::Assigned))
    }

    fn removed(n: u128, version: u64) -> Change {
        Change::Removed {
            job_id: id(n),
            version,
            reason: RemovalReason::Taken,
        }
    }

    /// Ids and versions, sorted by id.
    type Versions = Vec<(JobId, u64)>;

    /// A fresh device cache and the cipher its personal fields are sealed with.
    struct Cache {
        store: Store,
        cipher: FieldCipher,
        _dir: tempfile::TempDir,
    }

    impl Cache {
        fn new() -> Cache {
            let dir = tempfile::tempdir().unwrap();
            Cache {
                store: Store::open(&dir.path().join("c.db")).unwrap(),
                cipher: FieldCipher::new(&[5u8; 32]).unwrap(),
                _dir: dir,
            }
        }

        fn apply_at(&self, changes: Vec<Change>, staged: bool, now_ms: i64) -> Applied {
            self.store
                .write(|tx| apply_changes(tx, &self.cipher, &changes, staged, now_ms))
                .unwrap()
        }

        /// `job` as a live change arriving at `now_ms` (device clock).
        fn apply_job_at(&self, job: JobDetails, now_ms: i64) -> Applied {
            self.apply_at(vec![as_job(job)], false, now_ms)
        }

        fn purge(&self, before_ms: i64) -> usize {
            self.store
                .write(|tx| purge_personal(tx, before_ms))
                .unwrap()
        }

        fn apply(&self, changes: Vec<Change>) -> Applied {
            self.apply_at(changes, false, 1_000)
        }

        /// Applies `change` live and asserts it changed nothing (an older version).
        #[track_caller]
        fn assert_skipped(&self, change: Change) {
            let applied = self.apply(vec![change.clone()]);
            assert_eq!(applied, Applied::default(), "not skipped: {change:?}");
        }

        fn begin_snapshot(&self) {
            self.store.write(begin_snapshot).unwrap();
        }

        fn finish_snapshot(&self) {
            self.store.write(finish_snapshot).unwrap();
        }

        fn stage(&self, changes: Vec<Change>) -> Applied {
            self.apply_at(changes, true, 1_000)
        }

        fn offers(&self) -> Versions {
            let mut v: Vec<_> = self
                .store
                .read(all_offers)
                .unwrap()
                .into_iter()
                .map(|o| (o.id, o.version))
                .collect();
            v.sort();
            v
        }

        fn jobs(&self) -> Versions {
            let mut v: Vec<_> = self
                .store
                .read(|c| jobs(c, &self.cipher))
                .unwrap()
                .into_iter()
                .map(|j| (j.id, j.version))
                .collect();
            v.sort();
            v
        }

        /// (offers, jobs) by id and version: what the inbox and "my jobs" read.
        fn contents(&self) -> (Versions, Versions) {
            (self.offers(), self.jobs())
        }

        fn job(&self, n: u128) -> Option<JobDetails> {
            self.store.read(|c| job(c, &self.cipher, id(n))).unwrap()
        }

        fn count(&self, table: &str) -> i64 {
            self.store
                .read(|c| {
                    Ok(c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
                })
                .unwrap()
        }
    }

    #[test]
    fn an_offer_is_stored_and_read_back() {
        let cache = Cache::new();
        let applied = cache.apply(vec![offer_change(1, 1)]);
        assert_eq!(
            applied,
            Applied {
                inbox_changed: true,
                offers_upserted: vec![new_offer(1, 1)],
                ..Applied::default()
            }
        );
        assert_eq!(
            cache.store.read(|c| offer(c, id(1))).unwrap(),
            Some(new_offer(1, 1))
        );
        assert_eq!(cache.store.read(|c| offer(c, id(2))).unwrap(), None);
        assert_eq!(cache.store.read(offer_count).unwrap(), 1);
        assert_eq!(cache.store.read(all_offers).unwrap(), vec![new_offer(1, 1)]);
    }

    #[test]
    fn a_change_older_than_the_cache_knows_is_skipped() {
        let cache = Cache::new();
        cache.apply(vec![offer_change(1, 3)]);
        for older in [offer_change(1, 2), assigned_change(1, 2), removed(1, 2)] {
            cache.assert_skipped(older);
        }
        assert_eq!(cache.contents(), (vec![(id(1), 3)], vec![]));
        // The same version is applied again (a retried page), a newer one replaces.
        assert!(cache.apply(vec![offer_change(1, 3)]).inbox_changed);
        cache.apply(vec![offer_change(1, 4)]);
        assert_eq!(cache.offers(), vec![(id(1), 4)]);
        // A removal's version counts too, even for a job the cache never held.
        cache.apply(vec![removed(2, 5)]);
        cache.assert_skipped(offer_change(2, 4));
        assert_eq!(cache.offers(), vec![(id(1), 4)]);
    }

    #[test]
    fn unknown_changes_are_skipped() {
        let cache = Cache::new();
        cache.assert_skipped(Change::Unknown);
        assert_eq!(cache.count("job_versions"), 0);
    }

    #[test]
    fn a_won_job_leaves_the_inbox_with_its_personal_fields_sealed() {
        let cache = Cache::new();
        cache.apply(vec![offer_change(1, 1)]);
        let won = new_job(1, 2, JobState::Assigned);
        let applied = cache.apply(vec![as_job(won.clone())]);
        assert_eq!(
            applied,
            Applied {
                inbox_changed: true,
                jobs_changed: vec![id(1)],
                offers_removed: vec![id(1)],
                ..Applied::default()
            }
        );
        assert!(cache.offers().is_empty());
        assert_eq!(cache.job(1), Some(won.clone()), "opened for the app");
        assert_eq!(cache.store.read(jobs_ids).unwrap(), vec![id(1)]);
        assert_eq!(cache.job(2), None);

        // In the row: the body has no personal field, each sealed column is ciphertext.
        let (body, sealed): (String, Vec<Vec<u8>>) = cache
            .store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT body, location, address, contact, access_notes FROM jobs",
                    [],
                    |r| Ok((r.get(0)?, vec![r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])),
                )?)
            })
            .unwrap();
        for secret in [STREET, NAME, PHONE, NOTES, "47.4111"] {
            assert!(!body.contains(secret), "{secret:?} in the job body");
            for column in &sealed {
                assert!(
                    !column.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret:?} in clear in a sealed column"
                );
            }
        }
        // Another key cannot open them: an error, never garbage.
        let other = FieldCipher::new(&[6u8; 32]).unwrap();
        assert!(matches!(
            cache.store.read(|c| job(c, &other, id(1))),
            Err(CoreError::WrongKey)
        ));
    }

    #[test]
    fn a_job_back_in_the_inbox_is_no_longer_the_accounts() {
        let cache = Cache::new();
        cache.apply(vec![assigned_change(1, 2)]);
        let applied = cache.apply(vec![offer_change(1, 3)]);
        assert_eq!(
            applied,
            Applied {
                inbox_changed: true,
                jobs_changed: vec![id(1)],
                offers_upserted: vec![new_offer(1, 3)],
                ..Applied::default()
            }
        );
        assert!(cache.jobs().is_empty());
        assert_eq!(cache.offers(), vec![(id(1), 3)]);
    }

    #[test]
    fn a_removal_drops_the_offer_or_the_job() {
        let cache = Cache::new();
        cache.apply(vec![offer_change(1, 1), assigned_change(2, 2)]);
        assert_eq!(
            cache.apply(vec![removed(1, 2)]),
            Applied {
                inbox_changed: true,
                offers_removed: vec![id(1)],
                ..Applied::default()
            }
        );
        assert_eq!(
            cache.apply(vec![removed(2, 3)]),
            Applied {
                jobs_changed: vec![id(2)],
                ..Applied::default()
            }
        );
        cache.assert_skipped(removed(3, 1)); // nothing held
        assert!(cache.offers().is_empty() && cache.jobs().is_empty());
    }

    #[test]
    fn a_stored_job_is_version_guarded_like_a_synced_one() {
        let cache = Cache::new();
        let newer = new_job(1, 3, JobState::OnSite);
        let store = |j: &JobDetails| {
            cache
                .store
                .write(|tx| store_job(tx, &cache.cipher, j, 1_000))
                .unwrap()
        };
        assert_eq!(store(&newer).jobs_changed, vec![id(1)]);
        assert_eq!(
            store(&new_job(1, 2, JobState::Assigned)),
            Applied::default()
        );
        assert_eq!(cache.job(1), Some(newer));
    }

    #[test]
    fn removing_an_offer_records_only_what_was_there() {
        let cache = Cache::new();
        cache.apply(vec![offer_change(1, 1)]);
        let mut applied = Applied::default();
        cache
            .store
            .write(|tx| remove_offer(tx, id(1), &mut applied))
            .unwrap();
        assert_eq!(
            applied,
            Applied {
                inbox_changed: true,
                offers_removed: vec![id(1)],
                ..Applied::default()
            }
        );
        let mut again = Applied::default();
        cache
            .store
            .write(|tx| remove_offer(tx, id(1), &mut again))
            .unwrap();
        assert_eq!(again, Applied::default());
        assert_eq!(cache.store.read(offer_count).unwrap(), 0);
    }

    #[test]
    fn a_snapshot_is_invisible_until_it_finishes_and_then_replaces_the_cache() {
        let cache = Cache::new();
        cache.apply(vec![offer_change(1, 1), assigned_change(2, 2)]);
        cache.begin_snapshot();
        let staged = cache.stage(vec![
            offer_change(3, 1),
            as_job(new_job(4, 5, JobState::OnSite)),
        ]);
        // Staged pages tell the inbox something changed but hand no offers to the live index.
        assert!(staged.inbox_changed && staged.offers_upserted.is_empty());
        assert_eq!(staged.jobs_changed, vec![id(4)]);
        assert_eq!(cache.offers(), vec![(id(1), 1)], "live inbox unchanged");
        assert_eq!(cache.jobs(), vec![(id(2), 2)], "live jobs unchanged");

        cache.finish_snapshot();
        assert_eq!(cache.contents(), (vec![(id(3), 1)], vec![(id(4), 5)]));
        assert_eq!(
            cache.job(4).unwrap().contact.phone,
            PHONE,
            "sealed fields survive the swap"
        );
        assert_eq!(
            (cache.count("staged_offers"), cache.count("staged_jobs")),
            (0, 0)
        );
        // The swapped-in versions guard later changes.
        cache.assert_skipped(assigned_change(4, 4));
        cache.assert_skipped(offer_change(3, 0));
    }

    #[test]
    fn beginning_a_snapshot_discards_an_unfinished_one() {
        let cache = Cache::new();
        cache.begin_snapshot();
        cache.stage(vec![offer_change(1, 1), assigned_change(2, 1)]);
        cache.begin_snapshot();
        cache.stage(vec![offer_change(3, 1)]);
        cache.finish_snapshot();
        assert_eq!(cache.contents(), (vec![(id(3), 1)], vec![]));
    }

    #[test]
    fn a_later_page_of_a_snapshot_moves_a_job_between_inbox_and_jobs() {
        let cache = Cache::new();
        cache.begin_snapshot();
        // Job 1 was won while the snapshot was paged, job 2 released.
        cache.stage(vec![offer_change(1, 1), assigned_change(2, 4)]);
        let page = cache.stage(vec![assigned_change(1, 2), offer_change(2, 5)]);
        assert_eq!(page.jobs_changed, vec![id(1), id(2)]);
        cache.finish_snapshot();
        assert_eq!(cache.contents(), (vec![(id(2), 5)], vec![(id(1), 2)]));
    }

    #[test]
    fn a_job_in_both_staged_tables_keeps_its_newer_form() {
        let cache = Cache::new();
        cache
            .store
            .write(|tx| {
                begin_snapshot(tx)?;
                // Job 1's newer form is a job, job 2's an offer; at the same version the job wins.
                for (n, offer_version, job_version) in [(1, 1, 2), (2, 5, 4), (3, 2, 2)] {
                    insert_offer(tx, "staged_offers", &new_offer(n, offer_version))?;
                    let job = new_job(n, job_version, JobState::Assigned);
                    upsert_job(tx, "staged_jobs", &cache.cipher, &job, 1_000)?;
                }
                finish_snapshot(tx)
            })
            .unwrap();
        assert_eq!(
            cache.contents(),
            (vec![(id(2), 5)], vec![(id(1), 2), (id(3), 2)])
        );
        // job_versions follows the form that was kept.
        cache.assert_skipped(offer_change(2, 4));
        cache.assert_skipped(assigned_change(1, 1));
    }

    #[test]
    fn personal_fields_are_purged_a_while_after_the_job_ended() {
        use JobState::{Assigned, Cancelled, Completed};
        let cache = Cache::new();
        cache.apply_job_at(new_job(1, 5, Completed), 1_000);
        // A later change of an ended job keeps the time it ended.
        cache.apply_job_at(new_job(1, 6, Completed), 9_000);
        cache.apply_job_at(new_job(2, 5, Cancelled), 5_000);
        cache.apply_job_at(new_job(3, 2, Assigned), 1_000);

        assert_eq!(cache.purge(2_000), 1);
        let purged = cache.job(1).unwrap();
        assert_eq!(
            (
                purged.location,
                purged.address,
                purged.access_notes,
                purged.contact.name.as_str(),
                purged.contact.phone.as_str()
            ),
            (None, None, None, "", "")
        );
        assert_eq!(purged.state, Completed, "the job itself stays");
        assert_eq!(cache.job(2), Some(new_job(2, 5, Cancelled)), "ended later");
        assert_eq!(cache.job(3), Some(new_job(3, 2, Assigned)), "not ended");
        assert_eq!(cache.purge(2_000), 0, "once");
        assert_eq!(cache.purge(6_000), 1);
        assert_eq!(cache.job(2).unwrap().address, None);
        assert_eq!(cache.job(3).unwrap().contact.name, NAME);
    }

    #[test]
    fn jobs_are_listed_newest_change_first() {
        let cache = Cache::new();
        for (n, now_ms) in [(1, 1_000), (2, 3_000), (3, 2_000), (4, 2_000)] {
            cache.apply_job_at(new_job(n, 1, JobState::Assigned), now_ms);
        }
        let order: Vec<JobId> = cache
            .store
            .read(|c| jobs(c, &cache.cipher))
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(order, vec![id(2), id(3), id(4), id(1)], "ties by id");
    }

    #[test]
    fn merged_results_name_each_changed_job_once() {
        let mut a = Applied {
            jobs_changed: vec![id(1)],
            offers_upserted: vec![new_offer(2, 1)],
            ..Applied::default()
        };
        a.merge(Applied {
            inbox_changed: true,
            inbox_replaced: true,
            jobs_changed: vec![id(1), id(3)],
            offers_upserted: vec![new_offer(4, 1)],
            offers_removed: vec![id(5)],
        });
        assert_eq!(
            a,
            Applied {
                inbox_changed: true,
                inbox_replaced: true,
                jobs_changed: vec![id(1), id(3)],
                offers_upserted: vec![new_offer(2, 1), new_offer(4, 1)],
                offers_removed: vec![id(5)],
            }
        );
    }
}
