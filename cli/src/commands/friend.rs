//! `friendctl friend …`: one Friend's device against a running backend, on the real core — sync,
//! inbox near a point, the accept race, check-in, quotes and consent payloads, completion.

use super::device::{Delivery, Device, deliver, delivered_text, emit, status_lines, sync};
use super::{shared, views};
use crate::args::{FriendArgs, FriendCommand};
use crate::exit::{CliError, CliResult, Exit};
use friend_core::{AcceptResult, FriendSession, InboxFilter};
use friend_protocol::Me;
use serde_json::json;

/// Runs one Friend command.
pub async fn run(args: FriendArgs) -> CliResult<()> {
    let device = Device::resolve(&args.device, "friend")?;
    let session = device.open_friend().await?;
    let result = dispatch(&device, &session, args.command).await;
    session.shutdown();
    result
}

async fn dispatch(device: &Device, s: &FriendSession, command: FriendCommand) -> CliResult<()> {
    match command {
        FriendCommand::Status => {
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
        }
        FriendCommand::Inbox { at, radius, limit } => {
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
        }
        FriendCommand::Accept { job } => {
            if device.offline {
                return Err(CliError::usage(
                    "an accept is never queued (the Friend must not believe they hold a job they do not): drop --offline",
                ));
            }
            let outcome = s.accept(job).await.map_err(|e| device.err(e))?;
            match outcome {
                AcceptResult::Won(details) => {
                    emit(
                        device,
                        json!({"outcome": "won", "job": views::job_json(&details)}),
                        || format!("won!\n{}", views::job_text(&details)),
                    );
                }
                AcceptResult::Lost => {
                    return Err(CliError::new(
                        Exit::NotWon,
                        "lost: another Friend was first",
                    ));
                }
                AcceptResult::Gone(reason) => {
                    return Err(CliError::new(
                        Exit::NotWon,
                        format!("gone: the job is {reason:?}").to_lowercase(),
                    ));
                }
                AcceptResult::NotEligible(reason) => {
                    return Err(CliError::new(
                        Exit::NotWon,
                        format!("not eligible: {}", reason.as_str()),
                    ));
                }
                AcceptResult::Offline => {
                    return Err(CliError::new(
                        Exit::Unreachable,
                        format!(
                            "offline: the accept did not reach {} (if it might have, its outcome is looked up at the next sync)",
                            device.url
                        ),
                    ));
                }
            }
        }
        FriendCommand::Decline { job, reason } => {
            let id = s
                .decline(job, reason.into())
                .await
                .map_err(|e| device.err(e))?;
            let d = deliver(device, s, job, Some(id)).await?;
            emit(
                device,
                json!({"declined": job, "applied": matches!(d, Delivery::Applied)}),
                || delivered_text(&d, "declined"),
            );
        }
        FriendCommand::Jobs => {
            sync(device, s).await?;
            let jobs = s.my_jobs().await.map_err(|e| device.err(e))?;
            let json = json!(jobs
                .iter()
                .map(|j| json!({"job": views::job_json(&j.details), "pending_actions": j.pending_actions}))
                .collect::<Vec<_>>());
            emit(device, json, || {
                if jobs.is_empty() {
                    return "no jobs".to_owned();
                }
                jobs.iter()
                    .map(|j| {
                        format!(
                            "{}  {:<12} {:<26} {}{}",
                            j.details.id,
                            j.details.state.as_str(),
                            j.details.title,
                            views::timing(&j.details.timing),
                            if j.pending_actions.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "  (queued: {})",
                                    j.pending_actions
                                        .iter()
                                        .map(|k| k.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        FriendCommand::Show { job } => {
            sync(device, s).await?;
            match s.job(job).await {
                Ok(j) => emit(device, views::job_json(&j.details), || {
                    views::job_text(&j.details)
                }),
                Err(_) => {
                    let offer =
                        s.offer(job)
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
        }
        FriendCommand::CheckIn { job } => {
            sync(device, s).await?;
            let id = s.check_in(job).await.map_err(|e| device.err(e))?;
            let d = deliver(device, s, job, Some(id)).await?;
            emit(
                device,
                json!({"checked_in": job, "applied": matches!(d, Delivery::Applied)}),
                || delivered_text(&d, "checked in"),
            );
        }
        FriendCommand::Propose { job, items, reason } => {
            sync(device, s).await?;
            let payload = s
                .propose(job, items, reason)
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
        }
        FriendCommand::Quote { job } => shared::quote(device, s, job).await?,
        FriendCommand::AcceptQuote(answer) => {
            shared::accept_quote(device, s, answer, "the customer's device").await?
        }
        FriendCommand::RejectQuote(answer) => shared::reject_quote(device, s, answer).await?,
        FriendCommand::Import { job, payload } => shared::import(device, s, job, &payload).await?,
        FriendCommand::Complete { job, payment } => {
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
        }
        FriendCommand::Escalate { job, note } => {
            sync(device, s).await?;
            let id = s.escalate(job, note).await.map_err(|e| device.err(e))?;
            let d = deliver(device, s, job, Some(id)).await?;
            emit(
                device,
                json!({"escalated": job, "applied": matches!(d, Delivery::Applied)}),
                || delivered_text(&d, "escalated to the field service"),
            );
        }
        FriendCommand::Unsuccessful { job, reason, note } => {
            sync(device, s).await?;
            let id = s
                .check_out_unsuccessful(job, reason.into(), note)
                .await
                .map_err(|e| device.err(e))?;
            let d = deliver(device, s, job, Some(id)).await?;
            emit(
                device,
                json!({"unsuccessful": job, "applied": matches!(d, Delivery::Applied)}),
                || delivered_text(&d, "checked out unsuccessful"),
            );
        }
        FriendCommand::Outbox => shared::outbox(device, s).await?,
        FriendCommand::Ledger => {
            let ledger = s.ledger().await.map_err(|e| device.err(e))?;
            emit(
                device,
                serde_json::to_value(&ledger).unwrap_or_default(),
                || {
                    if ledger.entries.is_empty() {
                        return "no ledger entries".to_owned();
                    }
                    ledger
                        .entries
                        .iter()
                        .map(|e| {
                            format!(
                                "{}  {:<7} total {:>12}  fee {:>11}  payout {:>12}  {}",
                                e.job_id,
                                views::payment_name(e.method),
                                e.total.to_string(),
                                e.fee.to_string(),
                                e.payout.to_string(),
                                e.status.as_str()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            );
        }
    }
    Ok(())
}
