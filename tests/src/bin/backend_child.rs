//! The reference backend in a child process, for crash and shutdown tests: the parent kills it with
//! SIGKILL and starts it again on the same database, or stops it with SIGTERM (it drains, as the
//! real binaries do: `friend_backend::shutdown_signal`).
//!
//! Usage: `backend-child DB [FCM_CREDENTIALS FCM_URL]`. Serves on 127.0.0.1 (any free port) with
//! the admin token `test-admin`, no dev seed, pushes to the FCM gateway at `FCM_URL` if given;
//! prints `listening http://127.0.0.1:PORT` once it accepts requests, `stopped` after a shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use friend_backend::push::{FcmSettings, PushSettings};
use friend_backend::{Backend, Config};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, fcm) = match args.as_slice() {
        [_, db] => (db, None),
        [_, db, credentials, fcm_url] => (db, Some((credentials, fcm_url))),
        _ => {
            eprintln!("usage: backend-child DB [FCM_CREDENTIALS FCM_URL]");
            std::process::exit(2);
        }
    };
    friend_tests::install_crypto_provider();
    let mut config = Config::new(db);
    config.seed_dev_data = false;
    config.admin_token = Some("test-admin".into());
    if let Some((credentials, fcm_url)) = fcm {
        config.push = PushSettings {
            fcm: Some(FcmSettings {
                credentials: credentials.into(),
                url: Some(fcm_url.clone()),
            }),
            ..PushSettings::default()
        };
    }
    let backend = Backend::open(config).expect("open backend");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("listening http://{}", listener.local_addr().expect("addr"));
    backend
        .serve(listener, friend_backend::shutdown_signal())
        .await
        .expect("serve");
    println!("stopped");
}
