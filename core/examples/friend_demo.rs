//! A Friend device against a running backend: open a session, sync, list offers near Zürich main
//! station, and race for the nearest one.
//!
//! ```sh
//! cargo run --release -p friend-backend &          # seeds dev accounts on a new database
//! cargo run -p friend-core --example friend_demo   # uses dev-friend-anna
//! ```

use friend_core::{FriendSession, InboxFilter, SessionConfig, StaticSecrets};
use friend_protocol::GeoPoint;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::var("FRIEND_BACKEND").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("FRIEND_TOKEN").unwrap_or_else(|_| "dev-friend-anna".into());
    let dir = std::env::temp_dir().join("friendcore-demo");
    std::fs::create_dir_all(&dir)?;
    // In an app the key comes from the platform keystore; a fixed one is fine for a demo.
    let secrets = Arc::new(StaticSecrets::new(token, [7u8; 32]));
    let session =
        FriendSession::open(SessionConfig::new(dir.join("anna.db"), url), secrets).await?;

    let report = session.sync_once().await?;
    println!(
        "synced {} changes in {} pages",
        report.changes, report.pages
    );
    let here = GeoPoint::new(47.3779, 8.5403)?;
    let inbox = session.inbox(here, 30.0, InboxFilter::default()).await?;
    println!("{} offers within 30 km:", inbox.items.len());
    for item in &inbox.items {
        let km = item
            .distance_m
            .map(|d| format!("{:.1} km", d / 1000.0))
            .unwrap_or_else(|| "remote".into());
        println!(
            "  {km:>8}  {}  {}  ({})",
            item.offer.title,
            item.offer.orientation_price,
            item.offer.district.as_deref().unwrap_or("-")
        );
    }
    if let Some(nearest) = inbox.items.first() {
        println!("accepting {} …", nearest.offer.id);
        match session.accept(nearest.offer.id).await? {
            friend_core::AcceptResult::Won(job) => {
                let address = job
                    .address
                    .map(|a| format!("{}, {}", a.street, a.district()))
                    .unwrap_or_default();
                println!(
                    "won: {} at {address}, call {} ({})",
                    job.title, job.contact.name, job.contact.phone
                );
            }
            other => println!("{other:?}"),
        }
    }
    session.shutdown();
    Ok(())
}
