//! `friendctl customer …`: one customer's device against a running backend, on the real core —
//! book, follow the job live, answer quotes (online or by payload), cancel, rate.

use super::device::{
    Delivery, Device, deliver, delivered_text, emit, status_lines, sync, try_sync,
};
use super::{shared, views};
use crate::args::{CustomerArgs, CustomerCommand};
use crate::exit::{CliError, CliResult, Exit};
use friend_core::{CustomerJob, CustomerSession, JobListener, LiveStatus};
use friend_protocol::{Address, BookRequest, Contact, GeoPoint, JobId, Me, Place, Timing};
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
        LiveStatus::Accepted { friend } => format!("accepted by {friend}, on the way"),
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

#[allow(clippy::too_many_arguments)]
fn booking_request(
    device_name: String,
    service: String,
    at: Option<GeoPoint>,
    address: Address,
    phone: String,
    description: String,
    timing: Timing,
    remote: bool,
    brand: Option<String>,
    access_notes: Option<String>,
) -> CliResult<BookRequest> {
    let location = match at {
        Some(p) => Some(p),
        None if remote => None,
        None => Some(
            GeoPoint::new(ZURICH_HB.0, ZURICH_HB.1)
                .map_err(|e| CliError::failure(e.to_string()))?,
        ),
    };
    Ok(BookRequest {
        service_id: service,
        description,
        timing,
        place: if remote { Place::Remote } else { Place::OnSite },
        location,
        address: if remote { None } else { Some(address) },
        contact: Contact {
            name: device_name,
            phone,
        },
        access_notes,
        brand,
        radius_km: None,
    })
}

async fn dispatch(device: &Device, s: &CustomerSession, command: CustomerCommand) -> CliResult<()> {
    match command {
        CustomerCommand::Status => {
            sync(device, s).await?;
            let (json, text) = status_lines(&s.sync_status());
            emit(device, json, || text);
        }
        CustomerCommand::Catalog => {
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
        }
        CustomerCommand::Book {
            service,
            at,
            street,
            postal_code,
            city,
            name,
            phone,
            description,
            slot_start,
            slot_hours,
            remote,
            brand,
            access_notes,
        } => {
            if !device.offline {
                // Registers the device key and learns the account's name.
                sync(device, s).await?;
            }
            let name = match name {
                Some(n) => n,
                None => match s.profile().await {
                    Ok(Me::Customer(p)) => p.name,
                    _ => "Customer".into(),
                },
            };
            let timing = match slot_start {
                Some(start) => Timing::Slot {
                    start,
                    end: start + chrono::Duration::hours(i64::from(slot_hours.max(1))),
                },
                None => Timing::Now,
            };
            let request = booking_request(
                name,
                service,
                at,
                Address {
                    street,
                    postal_code,
                    city,
                },
                phone,
                description,
                timing,
                remote,
                brand,
                access_notes,
            )?;
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
                Some(job) => emit(device, json!({"job_id": job}), || {
                    format!("booked: job {job}")
                }),
                None => {
                    return Err(CliError::new(
                        Exit::Unreachable,
                        format!(
                            "the booking is queued (local id {local}) but {} did not take it yet",
                            device.url
                        ),
                    ));
                }
            }
        }
        CustomerCommand::Jobs => {
            sync(device, s).await?;
            let jobs = s.my_jobs().await.map_err(|e| device.err(e))?;
            let json = json!(jobs.iter().map(customer_job_json).collect::<Vec<_>>());
            emit(device, json, || {
                if jobs.is_empty() {
                    return "no jobs".to_owned();
                }
                jobs.iter()
                    .map(|j| {
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
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        CustomerCommand::Show { job } => {
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
        }
        CustomerCommand::Watch { job, timeout } => {
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
        }
        CustomerCommand::Quote { job } => shared::quote(device, s, job).await?,
        CustomerCommand::AcceptQuote(answer) => {
            shared::accept_quote(device, s, answer, "the Friend's device").await?
        }
        CustomerCommand::RejectQuote(answer) => shared::reject_quote(device, s, answer).await?,
        CustomerCommand::Counter { job, items, reason } => {
            sync(device, s).await?;
            let payload = s
                .counter(job, items, reason)
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
        }
        CustomerCommand::Import { job, payload } => {
            shared::import(device, s, job, &payload).await?
        }
        CustomerCommand::Cancel { job } => {
            sync(device, s).await?;
            let id = s.cancel(job).await.map_err(|e| device.err(e))?;
            let d = deliver(device, s, job, Some(id)).await?;
            emit(
                device,
                json!({"cancelled": job, "applied": matches!(d, Delivery::Applied)}),
                || delivered_text(&d, "cancelled"),
            );
        }
        CustomerCommand::Rate {
            job,
            stars,
            comment,
        } => {
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
        }
        CustomerCommand::Outbox => shared::outbox(device, s).await?,
    }
    Ok(())
}
