//! `friendctl customer …`: one customer's device against a running backend, on the real core —
//! book, follow the job live, decline a moved visit, answer quotes (online or by payload), cancel
//! (with a preview of the fee), rate.

use super::device::{
    Delivery, Device, deliver, deliver_and_report, delivered_text, emit, lines, status_lines, sync,
    try_sync,
};
use super::{shared, views};
use crate::args::{BookArgs, CustomerArgs, CustomerCommand, QuoteDraft};
use crate::exit::{CliError, CliResult, Exit};
use friend_core::{CustomerJob, CustomerSession, JobListener, LiveStatus};
use friend_protocol::{
    Address, BookRequest, CancelPreview, Contact, GeoPoint, JobId, Me, Place, Timing,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Zürich main station: where a booking happens when no `--at` is given.
const ZURICH_HB: (f64, f64) = (47.3779, 8.5403);

/// Runs one customer command.
pub async fn run(args: CustomerArgs) -> CliResult<()> {
    let device = Device::resolve(&args.device, "customer")?;
    let session = device.open_customer().await?;
    let result = dispatch(&device, &session, args.command).await;
    session.shutdown();
    result
}

/// The live status in the app's words.
pub fn status_text(s: &LiveStatus) -> String {
    match s {
        LiveStatus::Queued => "queued on this device (not yet at the backend)".into(),
        LiveStatus::Searching => "searching for a Friend".into(),
        LiveStatus::SearchingAgain => "looking for another Friend".into(),
        LiveStatus::Accepted {
            friend,
            visit: None,
        } => format!("accepted by {friend}; the visit time is not agreed yet"),
        LiveStatus::Accepted {
            friend,
            visit: Some(v),
        } => format!(
            "accepted by {friend}; visit {}{}",
            views::window(v.start, v.end),
            if v.moved {
                " (moved from the booked slot: you may decline it)"
            } else {
                ""
            }
        ),
        LiveStatus::OnTheWay { friend, eta } => format!(
            "{friend} is on the way, arriving about {}",
            views::clock(*eta)
        ),
        LiveStatus::OnSite => "the Friend is on site".into(),
        LiveStatus::QuotePending { by } => {
            format!("a quote by the {} waits for an answer", by.as_str())
        }
        LiveStatus::Agreed => "price agreed".into(),
        LiveStatus::Completed => "completed".into(),
        LiveStatus::Cancelled => "cancelled".into(),
        LiveStatus::Expired => "expired: nobody accepted in time".into(),
        LiveStatus::Escalated => "handed to the field service".into(),
        LiveStatus::Unsuccessful => "the Friend checked out without success".into(),
    }
}

fn is_final(s: &LiveStatus) -> bool {
    matches!(
        s,
        LiveStatus::Completed
            | LiveStatus::Cancelled
            | LiveStatus::Expired
            | LiveStatus::Escalated
            | LiveStatus::Unsuccessful
    )
}

fn customer_job_json(j: &CustomerJob) -> serde_json::Value {
    json!({
        "id": j.id,
        "status": status_text(&j.status),
        "job": j.details.as_ref().map(views::job_json),
        "negotiation": views::negotiation_json(&j.negotiation),
        "pending_actions": j.pending_actions,
    })
}

/// Wakes `watch` when the job changes.
struct Wake(Arc<tokio::sync::Notify>);

impl JobListener for Wake {
    fn on_job_changed(&self, _job: JobId) {
        self.0.notify_one();
    }
}

/// The booking request: on site at `--at` (Zürich main station by default) or remote, in the
/// name of `contact_name`.
fn booking_request(o: BookArgs, contact_name: String, timing: Timing) -> CliResult<BookRequest> {
    let location = match o.at {
        Some(p) => Some(p),
        None if o.remote => None,
        None => Some(
            GeoPoint::new(ZURICH_HB.0, ZURICH_HB.1)
                .map_err(|e| CliError::failure(e.to_string()))?,
        ),
    };
    let address = Address {
        street: o.street,
        postal_code: o.postal_code,
        city: o.city,
    };
    Ok(BookRequest {
        service_id: o.service,
        description: o.description,
        timing,
        place: if o.remote {
            Place::Remote
        } else {
            Place::OnSite
        },
        location,
        address: if o.remote { None } else { Some(address) },
        contact: Contact {
            name: contact_name,
            phone: o.phone,
        },
        access_notes: o.access_notes,
        brand: o.brand,
        radius_km: None,
    })
}

/// One function per subcommand; the ones both roles have are in [`shared`].
async fn dispatch(device: &Device, s: &CustomerSession, command: CustomerCommand) -> CliResult<()> {
    match command {
        CustomerCommand::Status => status(device, s).await,
        CustomerCommand::Catalog => catalog(device, s).await,
        CustomerCommand::Book(options) => book(device, s, options).await,
        CustomerCommand::Jobs => jobs(device, s).await,
        CustomerCommand::Show { job } => show(device, s, job).await,
        CustomerCommand::Watch { job, timeout } => watch(device, s, job, timeout).await,
        CustomerCommand::Quote { job } => shared::quote(device, s, job).await,
        CustomerCommand::AcceptQuote(answer) => {
            shared::accept_quote(device, s, answer, "the Friend's device").await
        }
        CustomerCommand::RejectQuote(answer) => shared::reject_quote(device, s, answer).await,
        CustomerCommand::Counter(draft) => counter(device, s, draft).await,
        CustomerCommand::Import { job, payload } => shared::import(device, s, job, &payload).await,
        CustomerCommand::Cancel { job, preview: true } => cancel_preview(device, s, job).await,
        CustomerCommand::Cancel {
            job,
            preview: false,
        } => cancel(device, s, job).await,
        CustomerCommand::DeclineVisit { job } => decline_visit(device, s, job).await,
        CustomerCommand::Rate {
            job,
            stars,
            comment,
        } => rate(device, s, job, stars, comment).await,
        CustomerCommand::Outbox => shared::outbox(device, s).await,
        CustomerCommand::PushToken(args) => shared::push_token(device, s, args).await,
    }
}

/// Sync, then the sync status and the outbox counts.
async fn status(device: &Device, s: &CustomerSession) -> CliResult<()> {
    sync(device, s).await?;
    let (json, text) = status_lines(&s.sync_status());
    emit(device, json, || text);
    Ok(())
}

/// The service catalog (cached).
async fn catalog(device: &Device, s: &CustomerSession) -> CliResult<()> {
    let catalog = s.catalog().await.map_err(|e| device.err(e))?;
    emit(
        device,
        serde_json::to_value(&catalog).unwrap_or_default(),
        || {
            catalog
                .services
                .iter()
                .map(|svc| {
                    format!(
                        "{:<24} {:>11}  {:>4} min  {:<10} {}",
                        svc.id,
                        svc.orientation_price.to_string(),
                        svc.duration_minutes,
                        svc.category.as_str(),
                        svc.title
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    Ok(())
}

/// Books a service (registering the device key first when online) and, online, waits for the
/// backend to take it; offline, it stays queued.
async fn book(device: &Device, s: &CustomerSession, mut o: BookArgs) -> CliResult<()> {
    if !device.offline {
        // Registers the device key and learns the account's name.
        sync(device, s).await?;
    }
    let name = match o.name.take() {
        Some(n) => n,
        None => match s.profile().await {
            Ok(Me::Customer(p)) => p.name,
            _ => "Customer".into(),
        },
    };
    let timing = match o.slot_start {
        Some(start) => Timing::Slot {
            start,
            end: start
                .checked_add_signed(chrono::Duration::hours(i64::from(o.slot_hours)))
                .ok_or_else(|| CliError::usage("--slot-start is too far in the future"))?,
        },
        None => Timing::Now,
    };
    let request = booking_request(o, name, timing)?;
    let local = s.book(request).await.map_err(|e| device.err(e))?;
    if device.offline {
        emit(device, json!({"queued": local}), || {
            format!(
                "booking queued on this device (local id {local}); sent by the next online command"
            )
        });
        return Ok(());
    }
    try_sync(device, s).await?;
    match s.booking(local).await.map_err(|e| device.err(e))? {
        Some(job) => {
            emit(device, json!({"job_id": job}), || {
                format!("booked: job {job}")
            });
            Ok(())
        }
        None => Err(CliError::new(
            Exit::Unreachable,
            format!(
                "the booking is queued (local id {local}) but {} did not take it yet",
                device.url
            ),
        )),
    }
}

/// Sync, then the customer's jobs with their live status.
async fn jobs(device: &Device, s: &CustomerSession) -> CliResult<()> {
    sync(device, s).await?;
    let jobs = s.my_jobs().await.map_err(|e| device.err(e))?;
    let json = json!(jobs.iter().map(customer_job_json).collect::<Vec<_>>());
    emit(device, json, || {
        lines(&jobs, "no jobs", |j| {
            format!(
                "{}  {:<30} {}",
                j.id,
                j.details
                    .as_ref()
                    .map(|d| d.title.as_str())
                    .unwrap_or("(queued booking)"),
                status_text(&j.status)
            )
        })
    });
    Ok(())
}

/// Sync, then one job: its live status, details and negotiation.
async fn show(device: &Device, s: &CustomerSession, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    let j = s.job(job).await.map_err(|e| device.err(e))?;
    emit(device, customer_job_json(&j), || {
        let mut text = format!("status: {}", status_text(&j.status));
        if let Some(d) = &j.details {
            text.push('\n');
            text.push_str(&views::job_text(d));
        }
        if j.negotiation.latest.is_some() {
            text.push('\n');
            text.push_str(&views::negotiation_text(&j.negotiation));
        }
        text
    });
    Ok(())
}

/// Follows the job live (long-polling) until it ends or `timeout` seconds pass.
async fn watch(
    device: &Device,
    s: &CustomerSession,
    job: JobId,
    timeout: Option<u64>,
) -> CliResult<()> {
    if device.offline {
        return Err(CliError::usage(
            "watch follows the backend live: drop --offline",
        ));
    }
    sync(device, s).await?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let _subscription = s.subscribe_jobs(Arc::new(Wake(wake.clone())));
    s.start_foreground_sync();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + Duration::from_secs(t));
    let mut last: Option<LiveStatus> = None;
    loop {
        let current = s.job(job).await.map_err(|e| device.err(e))?;
        if last.as_ref() != Some(&current.status) {
            let stamp = chrono::Utc::now().format("%H:%M:%S");
            emit(
                device,
                json!({"at": stamp.to_string(), "status": status_text(&current.status)}),
                || format!("{stamp}  {}", status_text(&current.status)),
            );
            last = Some(current.status.clone());
        }
        if is_final(&current.status) {
            break;
        }
        let wait = wake.notified();
        match deadline {
            Some(d) => {
                if tokio::time::timeout_at(d, wait).await.is_err() {
                    s.stop_foreground_sync();
                    return Err(CliError::new(
                        Exit::Timeout,
                        "timed out waiting for the job to end",
                    ));
                }
            }
            None => wait.await,
        }
    }
    s.stop_foreground_sync();
    Ok(())
}

/// Counter-proposes a quote: delivered, and printed as a payload for the Friend's device.
async fn counter(device: &Device, s: &CustomerSession, draft: QuoteDraft) -> CliResult<()> {
    let job = draft.job;
    sync(device, s).await?;
    let payload = s
        .counter(job, draft.items, draft.reason)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, None).await?;
    emit(
        device,
        json!({"payload": payload, "applied": matches!(d, Delivery::Applied)}),
        || {
            format!(
                "{}\npayload for the Friend's device (QR):\n{payload}",
                delivered_text(&d, "counter-proposed")
            )
        },
    );
    Ok(())
}

/// What a cancellation would cost, in words.
fn preview_text(p: &CancelPreview) -> String {
    match (p.fee, p.free_until) {
        (Some(fee), _) => format!("cancelling now owes a compensation fee of {fee}"),
        (None, Some(until)) => format!(
            "cancelling is free until {} (after that it owes a compensation fee)",
            until.format("%Y-%m-%d %H:%M UTC")
        ),
        (None, None) => "cancelling now is free (no Friend holds the job yet)".into(),
    }
}

/// Shows what cancelling would cost now (computed on this device) and changes nothing.
async fn cancel_preview(device: &Device, s: &CustomerSession, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    let p = s.cancel_preview(job).await.map_err(|e| device.err(e))?;
    emit(
        device,
        json!({"job": job, "fee": p.fee, "free_until": p.free_until}),
        || preview_text(&p),
    );
    Ok(())
}

/// Cancels the job and delivers it; says what it owes (the backend's compensation once applied,
/// the preview while queued).
async fn cancel(device: &Device, s: &CustomerSession, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    // Before the cancel: afterwards the job shows cancelled and has nothing left to preview.
    let preview = s.cancel_preview(job).await.ok();
    let id = s.cancel(job).await.map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, Some(id)).await?;
    let owed = match d {
        Delivery::Applied => s
            .job(job)
            .await
            .ok()
            .and_then(|j| j.details)
            .and_then(|d| d.visit.compensation)
            .map(|c| c.settlement.charged),
        Delivery::Queued => preview.and_then(|p| p.fee),
    };
    emit(
        device,
        json!({"cancelled": job, "applied": matches!(d, Delivery::Applied), "fee": owed}),
        || {
            let mut text = delivered_text(&d, "cancelled");
            if let Some(fee) = owed {
                text.push_str(&format!("\na late cancellation: {fee} compensation fee"));
            }
            text
        },
    );
    Ok(())
}

/// Declines the moved visit and delivers it.
async fn decline_visit(device: &Device, s: &CustomerSession, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    let queued = s.decline_appointment(job).await;
    deliver_and_report(
        device,
        s,
        job,
        queued,
        "declined_visit",
        "visit declined; looking for another Friend",
    )
    .await
}

/// Rates the completed job and delivers it.
async fn rate(
    device: &Device,
    s: &CustomerSession,
    job: JobId,
    stars: u8,
    comment: Option<String>,
) -> CliResult<()> {
    sync(device, s).await?;
    let id = s
        .rate(job, stars, comment)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, Some(id)).await?;
    emit(
        device,
        json!({"rated": job, "stars": stars, "applied": matches!(d, Delivery::Applied)}),
        || delivered_text(&d, &format!("rated {stars} of 5")),
    );
    Ok(())
}
