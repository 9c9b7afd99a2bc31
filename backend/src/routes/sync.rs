//! `GET /v1/sync`: delta sync of the caller's inbox and jobs with long-poll, and snapshots.
//!
//! Cursors are opaque to clients. A delta cursor is the change sequence number the client has seen
//! everything up to; a snapshot continuation is `s<head>.<after>` — the change head the snapshot
//! was taken at and the last job row sent. A snapshot's last page hands over the delta cursor
//! `<head>`, so changes that happened while the snapshot was paged arrive as deltas afterwards.

use crate::AppState;
use crate::area;
use crate::auth::Caller;
use crate::error::AppError;
use crate::sql::Tx;
use crate::store::{accounts, feed, jobs};
use crate::views;
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use friend_protocol::geo::BoundingBox;
use friend_protocol::{
    ApiError, Change, DEFAULT_PAGE_LIMIT, ErrorCode, FriendProfile, JobId, MAX_PAGE_LIMIT,
    MAX_WAIT_SECS, Role, SyncPage, eligibility,
};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Query parameters of `GET /v1/sync`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncParams {
    /// The cursor of the last applied page; omit for a snapshot (first sync or after `cursor_too_old`).
    #[param(pattern = r"^(|[0-9]+|s-?[0-9]+\.-?[0-9]+)$")]
    cursor: Option<String>,
    /// Long-poll: hold the request up to this many seconds (0…30) until a change concerns the caller.
    #[param(minimum = 0, maximum = 30)]
    wait: Option<u32>,
    /// Most changes per page (1…1000, default 500).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Cursor {
    Snapshot { head: Option<i64>, after: i64 },
    Delta(i64),
}

fn parse_cursor(raw: Option<&str>) -> Result<Cursor, AppError> {
    let bad = || AppError::new(ErrorCode::InvalidCursor, "malformed cursor");
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Cursor::Snapshot {
            head: None,
            after: 0,
        });
    };
    if let Some(rest) = raw.strip_prefix('s') {
        let (head, after) = rest.split_once('.').ok_or_else(bad)?;
        let head = head.parse::<i64>().map_err(|_| bad())?;
        let after = after.parse::<i64>().map_err(|_| bad())?;
        return Ok(Cursor::Snapshot {
            head: Some(head),
            after,
        });
    }
    raw.parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .map(Cursor::Delta)
        .ok_or_else(bad)
}

/// Changes after `cursor` for the caller, oldest first, one per job.
#[utoipa::path(get, path = "/v1/sync", tag = "sync", params(SyncParams), security(("account" = [])),
    responses(
        (status = 200, body = SyncPage),
        (status = 400, body = ApiError, description = "`invalid_cursor`: not a cursor this server issued"),
        (status = 410, body = ApiError, description = "`cursor_too_old`: sync again without a cursor"),
    ))]
pub async fn sync(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    crate::extract::ApiQuery(params): crate::extract::ApiQuery<SyncParams>,
) -> Result<Json<SyncPage>, AppError> {
    let page = serve_page(&state, caller, params).await?;
    state.metrics.sync_page(page.reset);
    Ok(page)
}

async fn serve_page(
    state: &Arc<AppState>,
    caller: Caller,
    params: SyncParams,
) -> Result<Json<SyncPage>, AppError> {
    let cursor = parse_cursor(params.cursor.as_deref())?;
    let wait = params.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(AppError::new(
            ErrorCode::InvalidInput,
            format!("wait must be 0…{MAX_WAIT_SECS}"),
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(AppError::new(
            ErrorCode::InvalidInput,
            format!("limit must be 1…{MAX_PAGE_LIMIT}"),
        ));
    }
    // A draining instance answers at once: the device reconnects, perhaps elsewhere.
    let mut draining = state.draining.subscribe();
    let wait = if *draining.borrow() { 0 } else { wait };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(wait));
    // The profile read on the previous turn (none at first: the notifier's last known one).
    let mut known: Option<FriendProfile> = None;
    loop {
        // Subscribe before looking, so a change committed in between still wakes us. A Friend is
        // indexed by a profile known before the look; the look reads it again (an admin's change
        // — a suspension, other qualifications — wakes this poll, which goes on with the new one)
        // and, if the waiter was not indexed by the profile read, is repeated with it. A renewing
        // long-poll is one transaction: the profile, the cursor's bounds, the delta.
        let mut waiter = if wait > 0 {
            state.notifier.subscribe(caller.id, known.as_ref())
        } else {
            None
        };
        let clock = state.clock.clone();
        let (friend, page) = state
            .db
            .read(move |tx| {
                let friend = match caller.role {
                    Role::Friend => {
                        Some(accounts::friend(tx, caller.id)?.ok_or_else(|| {
                            AppError::new(ErrorCode::Unauthorized, "account gone")
                        })?)
                    }
                    _ => None,
                };
                let page = build_page(tx, caller, friend.as_ref(), cursor, limit, clock.now())?;
                Ok::<_, AppError>((friend, page))
            })
            .await?;
        let idle = page.changes.is_empty() && !page.more && matches!(cursor, Cursor::Delta(_));
        let Some(w) = waiter.as_mut().filter(|_| idle) else {
            return Ok(Json(page));
        };
        if let Some(f) = friend
            && !w.indexed_by(&f)
        {
            known = Some(f);
            continue;
        }
        tokio::select! {
            _ = w.changed() => continue,
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(Json(SyncPage { server_time: state.clock.now(), ..page }));
            }
            _ = draining.wait_for(|d| *d) => {
                return Ok(Json(SyncPage { server_time: state.clock.now(), ..page }));
            }
        }
    }
}

/// The reach box a Friend's offers come from (the snapshot's job query and the delta's tiles).
fn reach_m(me: &FriendProfile) -> f64 {
    f64::from(me.radius_km.min(friend_protocol::MAX_FRIEND_RADIUS_KM)) * 1000.0
}

/// How the caller sees a page's jobs: as the Friend `friend`, who may have declined some of them,
/// or (none) as their customer.
struct View<'a> {
    friend: Option<&'a FriendProfile>,
    declined: HashSet<JobId>,
    now: chrono::DateTime<Utc>,
}

impl<'a> View<'a> {
    /// Reads which of the jobs `ids` the Friend declined, in one statement.
    fn read(
        tx: &Tx<'_>,
        friend: Option<&'a FriendProfile>,
        ids: &[JobId],
        now: chrono::DateTime<Utc>,
    ) -> crate::sql::Result<View<'a>> {
        let declined = match friend {
            Some(me) => jobs::declined_among(tx, me.id, ids)?,
            None => HashSet::new(),
        };
        Ok(View {
            friend,
            declined,
            now,
        })
    }

    /// The change the caller receives for `job`.
    fn of(&self, job: &jobs::JobRow) -> Change {
        match self.friend {
            Some(me) => views::for_friend(job, me, self.declined.contains(&job.id), self.now),
            None => views::for_customer(job),
        }
    }
}

fn build_page(
    tx: &Tx<'_>,
    caller: Caller,
    friend: Option<&FriendProfile>,
    cursor: Cursor,
    limit: u32,
    now: chrono::DateTime<Utc>,
) -> Result<SyncPage, AppError> {
    let (floor, head) = feed::bounds(tx)?;
    match cursor {
        Cursor::Delta(after) => {
            if after < floor || after > head {
                return Err(AppError::new(
                    ErrorCode::CursorTooOld,
                    "cursor no longer served: sync without a cursor",
                ));
            }
            let tiles = friend
                .map(|me| area::tiles_around(&me.home, reach_m(me)))
                .unwrap_or_default();
            let (rows, more) = feed::after(tx, caller.id, &tiles, after, limit)?;
            // One change per job, in the order of each job's latest feed row; a job only ever
            // broadcast to the caller's area must also pass the eligibility rule.
            let mut last: HashMap<JobId, (i64, bool)> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let named = last.get(&row.job).is_some_and(|(_, named)| *named);
                last.insert(row.job, (row.seq, named || !row.broadcast));
            }
            let mut ordered: Vec<_> = last.into_iter().map(|(j, (s, n))| (s, j, n)).collect();
            ordered.sort_unstable();
            // The page's jobs at once: a statement per job would be a round trip per change on
            // PostgreSQL.
            let ids: Vec<JobId> = ordered.iter().map(|(_, id, _)| *id).collect();
            let found = jobs::get_many(tx, &ids)?;
            let view = View::read(tx, friend, &ids, now)?;
            let mut changes = Vec::with_capacity(ordered.len());
            for (_, id, named) in ordered {
                let Some(job) = found.get(&id) else {
                    continue;
                };
                let concerned =
                    named || friend.is_some_and(|me| eligibility::check(me, &job.reach()).is_ok());
                if concerned {
                    changes.push(view.of(job));
                }
            }
            let next = if more {
                rows.last().map(|r| r.seq).unwrap_or(after)
            } else {
                head
            };
            Ok(SyncPage {
                server_time: now,
                cursor: next.to_string(),
                more,
                reset: false,
                changes,
            })
        }
        Cursor::Snapshot {
            head: snapshot_head,
            after,
        } => {
            let snapshot_head = snapshot_head.unwrap_or(head);
            let candidates = match friend {
                Some(me) => {
                    let bbox = BoundingBox::around(&me.home, reach_m(me));
                    jobs::snapshot_candidates_friend(tx, me.id, &bbox, after, limit)?
                }
                None => jobs::snapshot_candidates_customer(tx, caller.id, after, limit)?,
            };
            let more = candidates.len() == limit as usize;
            let ids: Vec<JobId> = candidates.iter().map(|j| j.id).collect();
            let view = View::read(tx, friend, &ids, now)?;
            let mut changes = Vec::with_capacity(candidates.len());
            for job in &candidates {
                let change = view.of(job);
                if !matches!(change, Change::Removed { .. }) {
                    changes.push(change);
                }
            }
            let next = match candidates.last() {
                Some(last) if more => format!("s{snapshot_head}.{}", last.seq),
                _ => snapshot_head.to_string(),
            };
            Ok(SyncPage {
                server_time: now,
                cursor: next,
                more,
                reset: true,
                changes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_strictly() {
        assert!(matches!(
            parse_cursor(None),
            Ok(Cursor::Snapshot {
                head: None,
                after: 0
            })
        ));
        assert!(matches!(parse_cursor(Some("42")), Ok(Cursor::Delta(42))));
        assert!(matches!(
            parse_cursor(Some("s7.3")),
            Ok(Cursor::Snapshot {
                head: Some(7),
                after: 3
            })
        ));
        for bad in ["-1", "x", "s7", "s.3", "1.5", "s7.x"] {
            assert!(parse_cursor(Some(bad)).is_err(), "{bad}");
        }
    }
}
