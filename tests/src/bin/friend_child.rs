//! A Friend device in a child process, for crash tests: the parent kills it with SIGKILL at random
//! moments and checks that the database it leaves behind is consistent.
//!
//! Usage: `friend-child DB URL TOKEN MODE` where MODE is
//! - `sync`: sync in a loop;
//! - `outbox`: sync, queue a check-in for every held job and a decline for every offer not yet
//!   queued (printing `queued <outbox id>` after each commit), deliver, repeat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use friend_core::{FriendSession, SessionConfig, StaticSecrets};
use std::sync::Arc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, url, token, mode] = args.as_slice() else {
        eprintln!("usage: friend-child DB URL TOKEN sync|outbox");
        std::process::exit(2);
    };
    friend_tests::install_crypto_provider();
    let secrets = Arc::new(StaticSecrets::new(token.clone(), friend_tests::TEST_KEY));
    let mut config = SessionConfig::new(db, url.as_str());
    config.sync_page_limit = 7; // many small pages: more places to be killed between
    let session = FriendSession::open(config, secrets).await.expect("open");
    println!("opened");
    loop {
        let _ = session.sync_once().await;
        if mode == "outbox" {
            let queued: Vec<_> = session
                .outbox()
                .await
                .expect("outbox")
                .into_iter()
                .map(|i| i.job_id)
                .collect();
            for job in session.my_jobs().await.expect("jobs") {
                if !queued.contains(&job.details.id)
                    && job.details.state == friend_protocol::JobState::Assigned
                {
                    let id = session.check_in(job.details.id).await.expect("check in");
                    println!("queued {id}");
                }
            }
            let here = friend_tests::point(friend_tests::places::ZURICH);
            let inbox = session
                .inbox(here, 50.0, Default::default())
                .await
                .expect("inbox");
            for item in inbox.items {
                if !queued.contains(&item.offer.id) {
                    let id = session
                        .decline(item.offer.id, friend_protocol::DeclineReason::NoTime)
                        .await
                        .expect("decline");
                    println!("queued {id}");
                }
            }
            let _ = session.deliver_outbox().await;
        }
    }
}
