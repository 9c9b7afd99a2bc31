//! The device subcommands a Friend and a customer run alike — `quote`, `accept-quote`,
//! `reject-quote`, `import`, `outbox`, `push-token` — written once over the core's [`Session`].

use super::device::{
    Delivery, Device, deliver, delivered_text, emit, outbox_lines, payload_arg, pending_version,
    sync, try_sync,
};
use super::views;
use crate::args::{PushTokenArgs, QuoteAnswer};
use crate::exit::{CliError, CliResult};
use friend_core::Session;
use friend_core::outbox::push::{DEVICE_QUEUE, token_tag};
use friend_protocol::JobId;
use friend_protocol::push::PushPlatform;
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

/// `push-token`: registers this device's push token (or with `--remove` removes the one it
/// registered) through the outbox, then delivers and reports it like the other queued actions.
/// The token is named only by its tag.
pub(crate) async fn push_token(device: &Device, s: &Session, args: PushTokenArgs) -> CliResult<()> {
    if args.remove {
        let registered = s.push_token().await.map_err(|e| device.err(e))?;
        let id = s.unregister_push_token().await.map_err(|e| device.err(e))?;
        let (Some((platform, tag)), Some(id)) = (registered, id) else {
            emit(
                device,
                json!({"removed": null, "queued": false, "applied": false}),
                || "no push token is registered on this device: nothing to remove".to_owned(),
            );
            return Ok(());
        };
        let d = deliver(device, s, DEVICE_QUEUE, Some(id)).await?;
        emit(
            device,
            json!({"removed": tag, "platform": platform.as_str(), "queued": true,
                   "applied": matches!(d, Delivery::Applied)}),
            || {
                delivered_text(
                    &d,
                    &format!("removal of push token {tag} ({})", platform.as_str()),
                )
            },
        );
        return Ok(());
    }
    let (Some(platform), Some(token)) = (args.platform, args.device_token) else {
        return Err(CliError::usage(
            "push-token needs --platform and TOKEN, or --remove",
        ));
    };
    let platform = PushPlatform::from(platform);
    let id = s
        .register_push_token(platform, &token)
        .await
        .map_err(|e| device.err(e))?;
    let tag = token_tag(&token);
    // Nothing new queued (the same token again): report the registration queued before, if kept.
    let d = deliver(device, s, DEVICE_QUEUE, id).await?;
    let what = match id {
        Some(_) => format!("push token {tag} ({})", platform.as_str()),
        None => format!(
            "push token {tag} ({}, already registered: nothing new sent)",
            platform.as_str()
        ),
    };
    emit(
        device,
        json!({"registered": tag, "platform": platform.as_str(), "queued": id.is_some(),
               "applied": matches!(d, Delivery::Applied)}),
        || delivered_text(&d, &what),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command, CustomerCommand, FriendCommand, PushPlatformArg};
    use clap::Parser;

    /// The push token is its own argument: it never takes the place of `--token`, the account's
    /// bearer token (both are "token" to a person).
    #[test]
    fn the_push_token_is_not_the_bearer_token() {
        let cli = Cli::try_parse_from([
            "friendctl",
            "friend",
            "--token",
            "dev-friend-anna",
            "push-token",
            "--platform",
            "fcm",
            "fcm-device-token",
        ])
        .unwrap();
        let Command::Friend(args) = cli.command else {
            panic!("a friend command")
        };
        assert_eq!(args.device.token.as_deref(), Some("dev-friend-anna"));
        let FriendCommand::PushToken(push) = args.command else {
            panic!("push-token")
        };
        assert_eq!(push.device_token.as_deref(), Some("fcm-device-token"));
        assert_eq!(push.platform, Some(PushPlatformArg::Fcm));

        let cli = Cli::try_parse_from([
            "friendctl",
            "customer",
            "push-token",
            "--remove",
            "--token",
            "dev-customer-heidi",
        ])
        .unwrap();
        let Command::Customer(args) = cli.command else {
            panic!("a customer command")
        };
        assert_eq!(args.device.token.as_deref(), Some("dev-customer-heidi"));
        assert!(matches!(args.command, CustomerCommand::PushToken(p) if p.remove));

        for bad in [
            &["friendctl", "friend", "push-token"][..],
            &[
                "friendctl",
                "friend",
                "push-token",
                "--platform",
                "web",
                "t",
            ],
            &["friendctl", "friend", "push-token", "--remove", "t"],
            &[
                "friendctl",
                "friend",
                "push-token",
                "--remove",
                "--platform",
                "fcm",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
