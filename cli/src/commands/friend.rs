//! `friendctl friend …`: one Friend's device against a running backend, on the real core — sync,
//! inbox near a point, the accept race, the agreed visit and "on my way", release with a reason,
//! check-in, quotes and consent payloads, completion.

use super::device::{
    Delivery, Device, deliver, deliver_and_report, delivered_text, emit, lines, status_lines, sync,
};
use super::{shared, views};
use crate::args::{
    DeclineArg, FriendArgs, FriendCommand, PaymentArg, QuoteDraft, ReleaseArg, UnsuccessfulArg,
};
use crate::exit::{CliError, CliResult, Exit};
use chrono::{DateTime, Duration, Utc};
use friend_core::{AcceptResult, FriendSession, InboxFilter};
use friend_protocol::{GeoPoint, JobId, Me, ReleaseReason};
use serde_json::json;

/// Runs one Friend command.
pub async fn run(args: FriendArgs) -> CliResult<()> {
    let device = Device::resolve(&args.device, "friend")?;
    let session = device.open_friend().await?;
    let result = dispatch(&device, &session, args.command).await;
    session.shutdown();
    result
}

/// One function per subcommand; the ones both roles have are in [`shared`].
async fn dispatch(device: &Device, s: &FriendSession, command: FriendCommand) -> CliResult<()> {
    match command {
        FriendCommand::Status => status(device, s).await,
        FriendCommand::Inbox { at, radius, limit } => inbox(device, s, at, radius, limit).await,
        FriendCommand::Accept { job } => accept(device, s, job).await,
        FriendCommand::Decline { job, reason } => decline(device, s, job, reason).await,
        FriendCommand::Jobs => jobs(device, s).await,
        FriendCommand::Show { job } => show(device, s, job).await,
        FriendCommand::Appointment {
            job,
            start,
            end,
            in_minutes,
            window,
        } => {
            let visit = match (start, end, in_minutes) {
                (Some(start), Some(end), _) => VisitTime::At { start, end },
                (_, _, Some(minutes)) => VisitTime::In { minutes, window },
                _ => {
                    return Err(CliError::usage(
                        "give --start and --end, or --in-minutes (with --window)",
                    ));
                }
            };
            appointment(device, s, job, visit).await
        }
        FriendCommand::OnMyWay {
            job,
            eta_minutes,
            from,
        } => on_my_way(device, s, job, eta_minutes, from).await,
        FriendCommand::Release { job, reason, note } => release(device, s, job, reason, note).await,
        FriendCommand::CheckIn { job } => check_in(device, s, job).await,
        FriendCommand::Propose(draft) => propose(device, s, draft).await,
        FriendCommand::Quote { job } => shared::quote(device, s, job).await,
        FriendCommand::AcceptQuote(answer) => {
            shared::accept_quote(device, s, answer, "the customer's device").await
        }
        FriendCommand::RejectQuote(answer) => shared::reject_quote(device, s, answer).await,
        FriendCommand::Import { job, payload } => shared::import(device, s, job, &payload).await,
        FriendCommand::Complete { job, payment } => complete(device, s, job, payment).await,
        FriendCommand::Escalate { job, note } => escalate(device, s, job, note).await,
        FriendCommand::Unsuccessful { job, reason, note } => {
            unsuccessful(device, s, job, reason, note).await
        }
        FriendCommand::Outbox => shared::outbox(device, s).await,
        FriendCommand::Ledger => ledger(device, s).await,
        FriendCommand::PushToken(args) => shared::push_token(device, s, args).await,
    }
}

/// Sync, then the sync status, the outbox counts and the cached profile.
async fn status(device: &Device, s: &FriendSession) -> CliResult<()> {
    sync(device, s).await?;
    let (mut json, mut text) = status_lines(&s.sync_status());
    if let Ok(Me::Friend(p)) = s.profile().await {
        json["profile"] = serde_json::to_value(&p).unwrap_or_default();
        text = format!(
            "{} — home {:.4},{:.4}, radius {} km, {} categories, tier {}\n{text}",
            p.name,
            p.home.lat(),
            p.home.lon(),
            p.radius_km,
            p.categories.len(),
            p.tier.as_str()
        );
    }
    emit(device, json, || text);
    Ok(())
}

/// Sync, then the offers within `radius` km of `at` (default: the profile's home and radius).
async fn inbox(
    device: &Device,
    s: &FriendSession,
    at: Option<GeoPoint>,
    radius: Option<f64>,
    limit: Option<u32>,
) -> CliResult<()> {
    sync(device, s).await?;
    let profile = match s.profile().await {
        Ok(Me::Friend(p)) => Some(p),
        _ => None,
    };
    let position = at
        .or_else(|| profile.as_ref().map(|p| p.home))
        .ok_or_else(|| CliError::usage("no --at given and no cached profile"))?;
    let radius = radius
        .or_else(|| profile.as_ref().map(|p| f64::from(p.radius_km)))
        .unwrap_or(30.0);
    let filter = InboxFilter {
        limit,
        ..InboxFilter::default()
    };
    let inbox = s
        .inbox(position, radius, filter)
        .await
        .map_err(|e| device.err(e))?;
    let json = json!({
        "cache_age_secs": inbox.cache_age_secs,
        "items": inbox.items.iter().map(views::inbox_json).collect::<Vec<_>>(),
    });
    emit(device, json, || {
        let mut lines = vec![format!(
            "{} offer(s) within {radius} km of {:.4},{:.4} (cache age {})",
            inbox.items.len(),
            position.lat(),
            position.lon(),
            inbox
                .cache_age_secs
                .map(|a| format!("{a} s"))
                .unwrap_or_else(|| "never synced".into())
        )];
        lines.extend(inbox.items.iter().map(views::inbox_line));
        lines.join("\n")
    });
    Ok(())
}

/// Races for the job; anything but a win is an error with its own exit code. Never queued.
async fn accept(device: &Device, s: &FriendSession, job: JobId) -> CliResult<()> {
    if device.offline {
        return Err(CliError::usage(
            "an accept is never queued (the Friend must not believe they hold a job they do not): drop --offline",
        ));
    }
    match s.accept(job).await.map_err(|e| device.err(e))? {
        AcceptResult::Won(details) => {
            emit(
                device,
                json!({"outcome": "won", "job": views::job_json(&details)}),
                || format!("won!\n{}", views::job_text(&details)),
            );
            Ok(())
        }
        AcceptResult::Lost => Err(CliError::new(
            Exit::NotWon,
            "lost: another Friend was first",
        )),
        AcceptResult::Gone(reason) => Err(CliError::new(
            Exit::NotWon,
            format!("gone: the job is {reason:?}").to_lowercase(),
        )),
        AcceptResult::NotEligible(reason) => Err(CliError::new(
            Exit::NotWon,
            format!("not eligible: {}", reason.as_str()),
        )),
        AcceptResult::Offline => Err(CliError::new(
            Exit::Unreachable,
            format!(
                "offline: the accept did not reach {} (if it might have, its outcome is looked up at the next sync)",
                device.url
            ),
        )),
    }
}

/// Declines an offer and delivers the decline.
async fn decline(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    reason: DeclineArg,
) -> CliResult<()> {
    let queued = s.decline(job, reason.into()).await;
    deliver_and_report(device, s, job, queued, "declined", "declined").await
}

/// Sync, then the Friend's jobs with their queued actions.
async fn jobs(device: &Device, s: &FriendSession) -> CliResult<()> {
    sync(device, s).await?;
    let jobs = s.my_jobs().await.map_err(|e| device.err(e))?;
    let json = json!(jobs
        .iter()
        .map(|j| json!({"job": views::job_json(&j.details), "pending_actions": j.pending_actions}))
        .collect::<Vec<_>>());
    emit(device, json, || {
        lines(&jobs, "no jobs", |j| {
            let queued = j
                .pending_actions
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{}  {:<12} {:<26} {}{}",
                j.details.id,
                j.details.state.as_str(),
                j.details.title,
                views::timing(&j.details.timing),
                if queued.is_empty() {
                    String::new()
                } else {
                    format!("  (queued: {queued})")
                }
            )
        })
    });
    Ok(())
}

/// Sync, then one job of the Friend's, or else the offer from the cache.
async fn show(device: &Device, s: &FriendSession, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    match s.job(job).await {
        Ok(j) => emit(device, views::job_json(&j.details), || {
            views::job_text(&j.details)
        }),
        Err(_) => {
            let offer = s
                .offer(job)
                .await
                .map_err(|e| device.err(e))?
                .ok_or_else(|| {
                    CliError::new(
                        Exit::Refused,
                        format!("job {job} is not in this device's cache"),
                    )
                })?;
            emit(device, views::offer_json(&offer), || {
                format!(
                    "offer {} — {} {} [{}]\n  \"{}\"\n  {} · {}",
                    offer.id,
                    offer.title,
                    offer.orientation_price,
                    offer.district.as_deref().unwrap_or("-"),
                    offer.description,
                    views::timing(&offer.timing),
                    offer.place.as_str()
                )
            });
        }
    }
    Ok(())
}

/// When the agreed visit is, as given on the command line.
enum VisitTime {
    /// `--start` and `--end`.
    At {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// `--in-minutes` and `--window`, from the server's clock.
    In { minutes: u32, window: u32 },
}

/// The server's clock as this device knows it (the offset measured at the last sync).
fn server_now(s: &FriendSession) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(s.server_now_ms()).unwrap_or_else(Utc::now)
}

/// Records the agreed visit and delivers it.
async fn appointment(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    visit: VisitTime,
) -> CliResult<()> {
    sync(device, s).await?;
    let (start, end) = match visit {
        VisitTime::At { start, end } => (start, end),
        VisitTime::In { minutes, window } => {
            let start = server_now(s) + Duration::minutes(i64::from(minutes));
            (start, start + Duration::minutes(i64::from(window)))
        }
    };
    let id = s
        .set_appointment(job, start, end)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, Some(id)).await?;
    // The server decides whether a slot's visit is moved; the cache shows its answer (or, queued,
    // the protocol's rule applied on this device).
    let shown = s
        .job(job)
        .await
        .ok()
        .and_then(|j| j.details.visit.appointment);
    let moved = shown.is_some_and(|a| a.moved);
    emit(
        device,
        json!({"appointment": job, "start": start, "end": end, "moved": moved,
            "applied": matches!(d, Delivery::Applied)}),
        || {
            delivered_text(
                &d,
                &format!(
                    "visit {}{}",
                    views::window(start, end),
                    if moved {
                        " (moved from the booked slot; the customer may decline it)"
                    } else {
                        ""
                    }
                ),
            )
        },
    );
    Ok(())
}

/// Sends "on my way" with an estimate (given, or computed here from a position) and delivers it.
async fn on_my_way(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    eta_minutes: Option<u32>,
    from: Option<GeoPoint>,
) -> CliResult<()> {
    sync(device, s).await?;
    let (id, eta) = match (eta_minutes, from) {
        (_, Some(position)) => {
            let q = s
                .on_my_way_from(job, position)
                .await
                .map_err(|e| device.err(e))?;
            (q.outbox_id, q.eta)
        }
        (Some(minutes), None) => {
            let eta = server_now(s) + Duration::minutes(i64::from(minutes));
            let id = s.on_my_way(job, eta).await.map_err(|e| device.err(e))?;
            (id, eta)
        }
        (None, None) => return Err(CliError::usage("give --eta-minutes or --from")),
    };
    let d = deliver(device, s, job, Some(id)).await?;
    emit(
        device,
        json!({"on_my_way": job, "eta": eta, "applied": matches!(d, Delivery::Applied)}),
        || {
            delivered_text(
                &d,
                &format!("on my way, arriving about {}", views::clock(eta)),
            )
        },
    );
    Ok(())
}

/// Gives the job back with a reason and delivers it.
async fn release(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    reason: ReleaseArg,
    note: Option<String>,
) -> CliResult<()> {
    sync(device, s).await?;
    let reason = ReleaseReason::from(reason);
    let queued = s.release_with_reason(job, Some(reason), note).await;
    deliver_and_report(
        device,
        s,
        job,
        queued,
        "released",
        &format!(
            "released ({}); it is offered to other Friends",
            reason.as_str()
        ),
    )
    .await
}

/// Checks in on site and delivers it.
async fn check_in(device: &Device, s: &FriendSession, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    let queued = s.check_in(job).await;
    deliver_and_report(device, s, job, queued, "checked_in", "checked in").await
}

/// Proposes a quote: delivered, and printed as a payload for the customer's device with the fee and payout.
async fn propose(device: &Device, s: &FriendSession, draft: QuoteDraft) -> CliResult<()> {
    let job = draft.job;
    sync(device, s).await?;
    let payload = s
        .propose(job, draft.items, draft.reason)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, None).await?;
    let n = s.negotiation(job).await.map_err(|e| device.err(e))?;
    let total = n.latest.as_ref().map(|q| q.quote.total);
    let preview = total.and_then(|t| {
        s.settlement_preview(t, friend_protocol::PaymentMethod::Online)
            .ok()
    });
    emit(
        device,
        json!({"payload": payload, "total": total, "settlement_online": preview, "applied": matches!(d, Delivery::Applied)}),
        || {
            format!(
                "{}\n{}\npayload for the customer's device (QR):\n{payload}",
                delivered_text(&d, "proposed"),
                match (total, preview) {
                    (Some(t), Some(p)) =>
                        format!("total {t}: fee {}, payout {} (online)", p.fee, p.payout),
                    _ => String::new(),
                }
            )
        },
    );
    Ok(())
}

/// Completes the job at the agreed price and delivers it.
async fn complete(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    payment: PaymentArg,
) -> CliResult<()> {
    sync(device, s).await?;
    let settled = s
        .complete(job, payment.into())
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, None).await?;
    emit(
        device,
        json!({"settlement": settled, "applied": matches!(d, Delivery::Applied)}),
        || {
            format!(
                "{}\ncharged {}, platform fee {}, payout {}",
                delivered_text(&d, "completed"),
                settled.charged,
                settled.fee,
                settled.payout
            )
        },
    );
    Ok(())
}

/// Hands the job to the field service and delivers it.
async fn escalate(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    note: Option<String>,
) -> CliResult<()> {
    sync(device, s).await?;
    let queued = s.escalate(job, note).await;
    deliver_and_report(
        device,
        s,
        job,
        queued,
        "escalated",
        "escalated to the field service",
    )
    .await
}

/// Checks out without success and delivers it.
async fn unsuccessful(
    device: &Device,
    s: &FriendSession,
    job: JobId,
    reason: UnsuccessfulArg,
    note: Option<String>,
) -> CliResult<()> {
    sync(device, s).await?;
    let queued = s.check_out_unsuccessful(job, reason.into(), note).await;
    deliver_and_report(
        device,
        s,
        job,
        queued,
        "unsuccessful",
        "checked out unsuccessful",
    )
    .await
}

/// The Friend's fee ledger.
async fn ledger(device: &Device, s: &FriendSession) -> CliResult<()> {
    let ledger = s.ledger().await.map_err(|e| device.err(e))?;
    emit(
        device,
        serde_json::to_value(&ledger).unwrap_or_default(),
        || {
            lines(&ledger.entries, "no ledger entries", |e| {
                format!(
                    "{}  {:<7} total {:>12}  fee {:>11}  payout {:>12}  {}{}",
                    e.job_id,
                    views::payment_name(e.method),
                    e.total.to_string(),
                    e.fee.to_string(),
                    e.payout.to_string(),
                    e.status.as_str(),
                    e.compensation
                        .map(|c| format!("  ({} compensation)", views::compensation_cause(c)))
                        .unwrap_or_default()
                )
            })
        },
    );
    Ok(())
}
