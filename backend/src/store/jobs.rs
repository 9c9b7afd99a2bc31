//! Jobs: the row type, its two projections (the approximate [`Offer`] and the full [`JobDetails`])
//! and the state update that decides the accept race.

use super::onsite::{self, OnSite, onsite_columns, onsite_joins};
use super::parse_id;
use crate::clock::{from_ms, to_ms};
use crate::sql::{OptionalExtension, Param, Row, Tx, params};
use chrono::{DateTime, Utc};
use friend_protocol::eligibility::JobReach;
use friend_protocol::lifecycle::JobFacts;
use friend_protocol::{
    AccountId, Address, Appointment, Category, Contact, EnRoute, FriendSummary, GeoPoint,
    JobDetails, JobId, JobState, Money, Negotiation, Offer, Place, Role, SlotUse, Tier, Timing,
    VisitView,
};

/// A job as stored, decoded.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Rowid: snapshot order.
    pub seq: i64,
    /// The rest, in wire form.
    pub id: JobId,
    /// Version, increased by every change.
    pub version: u64,
    /// State.
    pub state: JobState,
    /// Booking customer.
    pub customer_id: AccountId,
    /// Holder or last holder.
    pub friend: Option<FriendSummary>,
    /// Catalog service.
    pub service_id: String,
    /// Category.
    pub category: Category,
    /// Service title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Timing.
    pub timing: Timing,
    /// Place.
    pub place: Place,
    /// Exact location.
    pub location: Option<GeoPoint>,
    /// Approximate location.
    pub approx_location: Option<GeoPoint>,
    /// District.
    pub district: Option<String>,
    /// Address.
    pub address: Option<Address>,
    /// Contact.
    pub contact: Contact,
    /// Access notes.
    pub access_notes: Option<String>,
    /// Orientation price.
    pub orientation_price: Money,
    /// Brand community.
    pub brand: Option<String>,
    /// Lowest tier.
    pub min_tier: Tier,
    /// Broadcast radius.
    pub radius_km: u32,
    /// Who cancelled.
    pub cancelled_by: Option<Role>,
    /// Booked at.
    pub created_at: DateTime<Utc>,
    /// Expires at (open jobs).
    pub expires_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The agreed visit, "on my way", and how often it was offered again.
    pub visit: Visit,
    /// Keys, negotiation, completion, rating and outcome.
    pub onsite: OnSite,
}

impl JobRow {
    /// Facts for the state machine.
    pub fn facts(&self) -> JobFacts {
        JobFacts {
            state: self.state,
            customer: self.customer_id,
            friend: self.friend.as_ref().map(|f| f.id),
        }
    }

    /// The negotiation's state (the default before any proposal).
    pub fn negotiation(&self) -> Negotiation {
        self.onsite
            .negotiation
            .as_ref()
            .map(|n| n.state)
            .unwrap_or_default()
    }

    /// The id of the Friend holding (or who last held) the job.
    pub fn friend_id(&self) -> Option<AccountId> {
        self.friend.as_ref().map(|f| f.id)
    }

    /// Inputs of the eligibility rule.
    pub fn reach(&self) -> JobReach<'_> {
        JobReach {
            category: self.category,
            place: self.place,
            location: self.location,
            radius_km: self.radius_km,
            brand: self.brand.as_deref(),
            min_tier: self.min_tier,
        }
    }

    /// Time and place for the slot-overlap rule (slot jobs only): the agreed visit once there is
    /// one, the booked slot before.
    pub fn slot_use(&self) -> Option<SlotUse> {
        match (self.timing, self.visit.appointment) {
            (Timing::Slot { .. }, Some(a)) => Some(SlotUse {
                start: a.start,
                end: a.end,
                location: self.location,
            }),
            (Timing::Slot { start, end }, None) => Some(SlotUse {
                start,
                end,
                location: self.location,
            }),
            _ => None,
        }
    }

    /// The approximate projection for Friends who do not hold the job.
    pub fn offer(&self) -> Offer {
        Offer {
            id: self.id,
            version: self.version,
            service_id: self.service_id.clone(),
            category: self.category,
            title: self.title.clone(),
            description: self.description.clone(),
            timing: self.timing,
            place: self.place,
            approx_location: self.approx_location,
            district: self.district.clone(),
            orientation_price: self.orientation_price,
            brand: self.brand.clone(),
            min_tier: self.min_tier,
            radius_km: self.radius_km,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }

    /// The full projection for the customer and the holding Friend.
    pub fn details(&self) -> JobDetails {
        JobDetails {
            id: self.id,
            version: self.version,
            state: self.state,
            customer_id: self.customer_id,
            service_id: self.service_id.clone(),
            category: self.category,
            title: self.title.clone(),
            description: self.description.clone(),
            timing: self.timing,
            place: self.place,
            location: self.location,
            address: self.address.clone(),
            district: self.district.clone(),
            contact: self.contact.clone(),
            access_notes: self.access_notes.clone(),
            orientation_price: self.orientation_price,
            brand: self.brand.clone(),
            min_tier: self.min_tier,
            radius_km: self.radius_km,
            friend: self.friend.clone(),
            cancelled_by: self.cancelled_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            updated_at: self.updated_at,
            keys: self.onsite.keys.clone(),
            negotiation: self.onsite.negotiation.clone(),
            payment: self.onsite.payment,
            final_total: self.onsite.final_total,
            settlement: self.onsite.settlement,
            rating: self.onsite.rating,
            outcome: self.onsite.outcome.clone(),
            visit: VisitView {
                appointment: self.visit.appointment,
                en_route: self.visit.en_route,
                compensation: self.onsite.compensation,
                reopened: self.visit.reopened,
            },
        }
    }
}

const COLUMNS: &str = concat!(
    "j.seq, j.id, j.version, j.state, j.customer_id, j.friend_id, fa.name, ff.tier,
    j.service_id, j.category, j.title, j.description, j.timing_kind, j.slot_start, j.slot_end, j.place,
    j.lat, j.lon, j.approx_lat, j.approx_lon, j.district, j.address, j.contact, j.access_notes,
    j.price_minor, j.currency, j.brand, j.min_tier, j.radius_km, j.cancelled_by,
    j.created_at, j.expires_at, j.updated_at,
    j.appt_start, j.appt_end, j.appt_moved, j.eta, j.eta_sent_at, j.reopened, ",
    onsite_columns!()
);

/// Where the visit columns start.
const VISIT_AT: usize = 33;
/// Where the on-site columns start.
const ONSITE_AT: usize = 39;

const FROM: &str = concat!(
    "jobs j LEFT JOIN accounts fa ON fa.id = j.friend_id LEFT JOIN friends ff ON ff.account_id = j.friend_id",
    onsite_joins!()
);

fn corrupt(what: &str) -> crate::sql::SqlError {
    crate::sql::SqlError::Corrupt(format!("corrupt {what}"))
}

fn point(lat: Option<f64>, lon: Option<f64>) -> crate::sql::Result<Option<GeoPoint>> {
    match (lat, lon) {
        (Some(lat), Some(lon)) => GeoPoint::new(lat, lon)
            .map(Some)
            .map_err(|_| corrupt("point")),
        _ => Ok(None),
    }
}

fn json<T: serde::de::DeserializeOwned>(
    s: Option<String>,
    what: &str,
) -> crate::sql::Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).map_err(|_| corrupt(what)))
        .transpose()
}

fn from_row(r: &Row<'_>) -> crate::sql::Result<JobRow> {
    let id: String = r.get(1)?;
    let customer: String = r.get(4)?;
    let friend_id: Option<String> = r.get(5)?;
    let friend = match friend_id {
        Some(f) => Some(FriendSummary {
            id: parse_id(&f)?,
            name: r.get::<Option<String>>(6)?.unwrap_or_default(),
            tier: Tier::parse(&r.get::<Option<String>>(7)?.unwrap_or_default()),
        }),
        None => None,
    };
    let timing_kind: String = r.get(12)?;
    let timing = match (
        timing_kind.as_str(),
        r.get::<Option<i64>>(13)?,
        r.get::<Option<i64>>(14)?,
    ) {
        ("slot", Some(s), Some(e)) => Timing::Slot {
            start: from_ms(s),
            end: from_ms(e),
        },
        ("now", _, _) => Timing::Now,
        _ => return Err(corrupt("timing")),
    };
    let currency: String = r.get(25)?;
    let cancelled_by: Option<String> = r.get(29)?;
    Ok(JobRow {
        seq: r.get(0)?,
        id: parse_id(&id)?,
        version: r.get::<i64>(2)? as u64,
        state: JobState::parse(&r.get::<String>(3)?),
        customer_id: parse_id(&customer)?,
        friend,
        service_id: r.get(8)?,
        category: Category::parse(&r.get::<String>(9)?),
        title: r.get(10)?,
        description: r.get(11)?,
        timing,
        place: Place::parse(&r.get::<String>(15)?),
        location: point(r.get(16)?, r.get(17)?)?,
        approx_location: point(r.get(18)?, r.get(19)?)?,
        district: r.get(20)?,
        address: json(r.get(21)?, "address")?,
        contact: json(Some(r.get(22)?), "contact")?.ok_or_else(|| corrupt("contact"))?,
        access_notes: r.get(23)?,
        orientation_price: Money::new(r.get(24)?, onsite::currency(&currency)),
        brand: r.get(26)?,
        min_tier: Tier::parse(&r.get::<String>(27)?),
        radius_km: r.get(28)?,
        cancelled_by: match cancelled_by.as_deref() {
            Some("customer") => Some(Role::Customer),
            Some("friend") => Some(Role::Friend),
            Some(_) => Some(Role::Unknown),
            None => None,
        },
        created_at: from_ms(r.get(30)?),
        expires_at: from_ms(r.get(31)?),
        updated_at: from_ms(r.get(32)?),
        visit: visit_from_row(r, VISIT_AT)?,
        onsite: onsite::from_row(r, ONSITE_AT)?,
    })
}

fn visit_from_row(r: &Row<'_>, at: usize) -> crate::sql::Result<Visit> {
    let appointment = match (r.get::<Option<i64>>(at)?, r.get::<Option<i64>>(at + 1)?) {
        (Some(start), Some(end)) => Some(Appointment {
            start: from_ms(start),
            end: from_ms(end),
            moved: r.get::<i64>(at + 2)? != 0,
        }),
        _ => None,
    };
    let en_route = match (r.get::<Option<i64>>(at + 3)?, r.get::<Option<i64>>(at + 4)?) {
        (Some(eta), Some(sent)) => Some(EnRoute {
            eta: from_ms(eta),
            sent_at: from_ms(sent),
        }),
        _ => None,
    };
    Ok(Visit {
        appointment,
        en_route,
        reopened: r.get(at + 5)?,
    })
}

/// The statement that reads one job with everything gathered about it (`?1`: the job id); the
/// P8 benchmark's direct baseline runs it as the accept does.
pub fn by_id_sql() -> String {
    format!("SELECT {COLUMNS} FROM {FROM} WHERE j.id = ?1")
}

/// One job by id. In a write transaction the job's row is locked first ([`Tx::lock_once`]): every write that
/// reads a job decides on its latest committed state, one at a time per job, on both stores.
pub fn get(tx: &Tx<'_>, id: JobId) -> crate::sql::Result<Option<JobRow>> {
    let id = id.to_string();
    tx.lock_once("SELECT 1 FROM jobs WHERE id = ?1 FOR UPDATE", &id)?;
    tx.row(&by_id_sql(), params![id], from_row).optional()
}

/// The jobs of `ids` that exist, by id: one statement for a sync page's jobs (each statement is a
/// round trip on PostgreSQL).
pub fn get_many(
    tx: &Tx<'_>,
    ids: &[JobId],
) -> crate::sql::Result<std::collections::HashMap<JobId, JobRow>> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let (list, bound) = crate::sql::in_list(1, &keys);
    let rows = tx.rows(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE j.id IN ({list})"),
        &bound,
        from_row,
    )?;
    Ok(rows.into_iter().map(|j| (j.id, j)).collect())
}

/// A customer's jobs, newest first.
pub fn for_customer(
    tx: &Tx<'_>,
    customer: AccountId,
    limit: u32,
) -> crate::sql::Result<Vec<JobRow>> {
    tx.rows(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE j.customer_id = ?1 ORDER BY j.seq DESC LIMIT ?2"
        ),
        params![customer.to_string(), limit],
        from_row,
    )
}

/// Slot jobs a Friend currently holds. In a write transaction the Friend's row is locked first
/// ([`Tx::lock_once`]): two accepts of one Friend check for an overlap one after the other, so
/// they cannot both win overlapping slots.
pub fn held_slots(tx: &Tx<'_>, friend: AccountId) -> crate::sql::Result<Vec<JobRow>> {
    let friend = friend.to_string();
    tx.lock_once(
        "SELECT 1 FROM friends WHERE account_id = ?1 FOR UPDATE",
        &friend,
    )?;
    tx.rows(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE j.friend_id = ?1 AND j.timing_kind = 'slot'
         AND j.state IN ('assigned', 'on_site', 'agreed')"
        ),
        params![friend],
        from_row,
    )
}

/// Open jobs whose expiry is due.
pub fn due_for_expiry(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    limit: u32,
) -> crate::sql::Result<Vec<JobId>> {
    tx.rows(
        "SELECT id FROM jobs WHERE state = 'open' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        params![to_ms(now), limit], |r| {
        parse_id(&r.get::<String>(0)?)
    },
    )
}

/// A page of the jobs a snapshot may contain for a Friend, after rowid `after`: open jobs in the
/// box around their home (or remote), and jobs they hold or held. The caller applies the exact
/// eligibility rule.
pub fn snapshot_candidates_friend(
    tx: &Tx<'_>,
    friend: AccountId,
    bbox: &friend_protocol::geo::BoundingBox,
    after: i64,
    limit: u32,
) -> crate::sql::Result<Vec<JobRow>> {
    // A box crossing the antimeridian has two longitude ranges; a degenerate second range repeats
    // the first so one prepared statement serves both cases.
    let (lo1, hi1) = bbox.lon_ranges[0];
    let (lo2, hi2) = bbox.lon_ranges.get(1).copied().unwrap_or((lo1, hi1));
    tx.rows(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE j.seq > ?1 AND (
            j.friend_id = ?2
            OR (j.state = 'open' AND (j.place = 'remote' OR (j.lat BETWEEN ?3 AND ?4
                AND (j.lon BETWEEN ?5 AND ?6 OR j.lon BETWEEN ?7 AND ?8)))))
         ORDER BY j.seq LIMIT ?9"
        ),
        params![
            after,
            friend.to_string(),
            bbox.min_lat,
            bbox.max_lat,
            lo1,
            hi1,
            lo2,
            hi2,
            limit
        ],
        from_row,
    )
}

/// A page of a customer's jobs after rowid `after`, for a snapshot.
pub fn snapshot_candidates_customer(
    tx: &Tx<'_>,
    customer: AccountId,
    after: i64,
    limit: u32,
) -> crate::sql::Result<Vec<JobRow>> {
    tx.rows(
        &format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE j.customer_id = ?1 AND j.seq > ?2 ORDER BY j.seq LIMIT ?3"
    ),
        params![customer.to_string(), after, limit], from_row,
    )
}

/// Stores a new job.
pub fn insert(tx: &Tx<'_>, j: &JobRow) -> crate::sql::Result<()> {
    let (kind, start, end) = match j.timing {
        Timing::Slot { start, end } => ("slot", Some(to_ms(start)), Some(to_ms(end))),
        _ => ("now", None, None),
    };
    tx.exec(
        "INSERT INTO jobs (id, version, state, customer_id, friend_id, service_id, category, title, description,
            timing_kind, slot_start, slot_end, place, lat, lon, approx_lat, approx_lon, district, address, contact,
            access_notes, price_minor, currency, brand, min_tier, radius_km, cancelled_by, created_at, expires_at,
            updated_at)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
            ?21, ?22, ?23, ?24, ?25, NULL, ?26, ?27, ?28)",
        params![
            j.id.to_string(),
            j.version as i64,
            j.state.as_str(),
            j.customer_id.to_string(),
            j.service_id,
            j.category.as_str(),
            j.title,
            j.description,
            kind,
            start,
            end,
            j.place.as_str(),
            j.location.map(|p| p.lat()),
            j.location.map(|p| p.lon()),
            j.approx_location.map(|p| p.lat()),
            j.approx_location.map(|p| p.lon()),
            j.district,
            j.address.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default()),
            serde_json::to_string(&j.contact).unwrap_or_default(),
            j.access_notes,
            j.orientation_price.minor,
            j.orientation_price.currency.code(),
            j.brand,
            j.min_tier.as_str(),
            j.radius_km,
            to_ms(j.created_at),
            to_ms(j.expires_at),
            to_ms(j.updated_at),
        ],
    )?;
    Ok(())
}

/// Moves a job from `from` to the facts in `to`, only if it is still in `from` (the conditional
/// update that makes the accept race safe even without the writer lock). Returns whether it moved.
pub fn update_state(
    tx: &Tx<'_>,
    id: JobId,
    from: JobState,
    to: &JobFacts,
    cancelled_by: Option<Role>,
    now: DateTime<Utc>,
) -> crate::sql::Result<bool> {
    let cancelled_by = cancelled_by.map(|r| match r {
        Role::Customer => "customer",
        Role::Friend => "friend",
        Role::Unknown => "unknown",
    });
    let n = tx.exec(
        "UPDATE jobs SET state = ?1, friend_id = ?2, cancelled_by = COALESCE(?3, cancelled_by),
            version = version + 1, updated_at = ?4
         WHERE id = ?5 AND state = ?6",
        params![
            to.state.as_str(),
            to.friend.map(|f| f.to_string()),
            cancelled_by,
            to_ms(now),
            id.to_string(),
            from.as_str()
        ],
    )?;
    Ok(n == 1)
}

/// Records a change that is not a state change (a quote, a rating, a new device key): the job's
/// version grows so clients replace what they cached.
pub fn touch(tx: &Tx<'_>, id: JobId, now: DateTime<Utc>) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE jobs SET version = version + 1, updated_at = ?1 WHERE id = ?2",
        params![to_ms(now), id.to_string()],
    )?;
    Ok(())
}

/// Jobs an account is a party of that a Friend currently holds (the ones whose parties exchange
/// signed consent).
pub fn held_with(tx: &Tx<'_>, account: AccountId) -> crate::sql::Result<Vec<JobRow>> {
    tx.rows(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE (j.customer_id = ?1 OR j.friend_id = ?1)
         AND j.state IN ('assigned', 'on_site', 'agreed')"
        ),
        params![account.to_string()],
        from_row,
    )
}

/// Records that a Friend declined (or released) a job.
pub fn insert_decline(
    tx: &Tx<'_>,
    job: JobId,
    friend: AccountId,
    reason: &str,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "INSERT INTO declines (job_id, friend_id, reason, at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (job_id, friend_id) DO UPDATE SET reason = excluded.reason, at = excluded.at",
        params![job.to_string(), friend.to_string(), reason, to_ms(now)],
    )?;
    Ok(())
}

/// Forgets a decline (the Friend accepted after all).
pub fn delete_decline(tx: &Tx<'_>, job: JobId, friend: AccountId) -> crate::sql::Result<()> {
    tx.exec(
        "DELETE FROM declines WHERE job_id = ?1 AND friend_id = ?2",
        params![job.to_string(), friend.to_string()],
    )?;
    Ok(())
}

/// Which of `jobs` `friend` declined (or released), in one statement.
pub fn declined_among(
    tx: &Tx<'_>,
    friend: AccountId,
    jobs: &[JobId],
) -> crate::sql::Result<std::collections::HashSet<JobId>> {
    if jobs.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let friend = friend.to_string();
    let keys: Vec<String> = jobs.iter().map(ToString::to_string).collect();
    let (list, ids) = crate::sql::in_list(2, &keys);
    let mut bound: Vec<&dyn Param> = vec![&friend];
    bound.extend(ids);
    tx.rows(
        &format!("SELECT job_id FROM declines WHERE friend_id = ?1 AND job_id IN ({list})"),
        &bound,
        |r| parse_id(&r.get::<String>(0)?),
    )
    .map(|ids| ids.into_iter().collect())
}

/// The Friends who declined (or released) a job.
pub fn decliners(
    tx: &Tx<'_>,
    job: JobId,
) -> crate::sql::Result<std::collections::HashSet<AccountId>> {
    tx.rows(
        "SELECT friend_id FROM declines WHERE job_id = ?1",
        params![job.to_string()],
        |r| parse_id(&r.get::<String>(0)?),
    )
    .map(|ids| ids.into_iter().collect())
}

/// Between the accept and the arrival: what the holding Friend recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Visit {
    /// The agreed visit.
    pub appointment: Option<Appointment>,
    /// The latest "on my way".
    pub en_route: Option<EnRoute>,
    /// How often the job was offered again after a Friend held it.
    pub reopened: u32,
}

/// Records the agreed visit of a held job.
pub fn set_appointment(
    tx: &Tx<'_>,
    id: JobId,
    a: &Appointment,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE jobs SET appt_start = ?1, appt_end = ?2, appt_moved = ?3,
            version = version + 1, updated_at = ?4 WHERE id = ?5",
        params![
            to_ms(a.start),
            to_ms(a.end),
            a.moved,
            to_ms(now),
            id.to_string()
        ],
    )?;
    Ok(())
}

/// Records the holding Friend's latest "on my way".
pub fn set_en_route(
    tx: &Tx<'_>,
    id: JobId,
    eta: DateTime<Utc>,
    now: DateTime<Utc>,
) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE jobs SET eta = ?1, eta_sent_at = ?2, version = version + 1, updated_at = ?2
         WHERE id = ?3",
        params![to_ms(eta), to_ms(now), id.to_string()],
    )?;
    Ok(())
}

/// A job offered again (given back, or its moved visit declined): the visit and the estimate are
/// forgotten, the count grows, and a now-job gets a fresh search time.
pub fn reopen(tx: &Tx<'_>, id: JobId, now: DateTime<Utc>) -> crate::sql::Result<()> {
    tx.exec(
        "UPDATE jobs SET appt_start = NULL, appt_end = NULL, appt_moved = 0, eta = NULL,
            eta_sent_at = NULL, reopened = reopened + 1,
            expires_at = CASE WHEN timing_kind = 'now' AND ?1 > expires_at THEN ?1 ELSE expires_at END
         WHERE id = ?2",
        params![to_ms(now + friend_protocol::NOW_JOB_TTL), id.to_string()],
    )?;
    Ok(())
}
