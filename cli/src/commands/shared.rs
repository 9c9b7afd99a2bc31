//! The device subcommands a Friend and a customer run alike — `quote`, `accept-quote`,
//! `reject-quote`, `import`, `outbox` — written once over the core's [`Session`].

use super::device::{
    Delivery, Device, deliver, delivered_text, emit, outbox_lines, payload_arg, pending_version,
    sync, try_sync,
};
use super::views;
use crate::args::QuoteAnswer;
use crate::exit::CliResult;
use friend_core::Session;
use friend_protocol::JobId;
use serde_json::json;

/// `quote`: the job's negotiation as this device knows it.
pub(crate) async fn quote(device: &Device, s: &Session, job: JobId) -> CliResult<()> {
    sync(device, s).await?;
    let n = s.negotiation(job).await.map_err(|e| device.err(e))?;
    emit(device, views::negotiation_json(&n), || {
        views::negotiation_text(&n)
    });
    Ok(())
}

/// `accept-quote`: accepts the pending proposal and prints the signed payload for `peer_device`
/// (e.g. "the customer's device") to show as a QR code.
pub(crate) async fn accept_quote(
    device: &Device,
    s: &Session,
    QuoteAnswer { job, version }: QuoteAnswer,
    peer_device: &str,
) -> CliResult<()> {
    sync(device, s).await?;
    let version = pending_version(device, s, job, version).await?;
    let payload = s
        .accept_quote(job, version)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, None).await?;
    emit(
        device,
        json!({"payload": payload, "version": version, "applied": matches!(d, Delivery::Applied)}),
        || {
            format!(
                "{}\npayload for {peer_device} (QR):\n{payload}",
                delivered_text(&d, &format!("accepted v{version}"))
            )
        },
    );
    Ok(())
}

/// `reject-quote`: rejects the pending proposal.
pub(crate) async fn reject_quote(
    device: &Device,
    s: &Session,
    QuoteAnswer { job, version }: QuoteAnswer,
) -> CliResult<()> {
    sync(device, s).await?;
    let version = pending_version(device, s, job, version).await?;
    let id = s
        .reject_quote(job, version)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, Some(id)).await?;
    emit(
        device,
        json!({"rejected": version, "applied": matches!(d, Delivery::Applied)}),
        || delivered_text(&d, &format!("rejected v{version}")),
    );
    Ok(())
}

/// `import`: verifies and applies a payload from the other device ("-" reads it from stdin).
pub(crate) async fn import(
    device: &Device,
    s: &Session,
    job: JobId,
    payload: &str,
) -> CliResult<()> {
    let payload = payload_arg(payload)?;
    // The other party's device key arrives with the job: be current first.
    sync(device, s).await?;
    let n = s
        .import_consent(job, &payload)
        .await
        .map_err(|e| device.err(e))?;
    let d = deliver(device, s, job, None).await?;
    let mut json = views::negotiation_json(&n);
    json["applied"] = json!(matches!(d, Delivery::Applied));
    emit(device, json, || {
        format!(
            "{}\n{}",
            delivered_text(&d, "imported and verified"),
            views::negotiation_text(&n)
        )
    });
    Ok(())
}

/// `outbox`: every outbox item with its outcome, after a delivery attempt unless `--offline`.
pub(crate) async fn outbox(device: &Device, s: &Session) -> CliResult<()> {
    if !device.offline {
        // Only to refresh the listing: a failed attempt shows in the items themselves.
        try_sync(device, s).await?;
    }
    let items = s.outbox().await.map_err(|e| device.err(e))?;
    let (json, text) = outbox_lines(&items);
    emit(device, json, || text);
    Ok(())
}
