//! `friendctl admin`: the admin routes of a running backend over HTTPS (plain HTTP only to
//! loopback, as for the device commands) — suspend and reactivate a Friend, rotate a token, read
//! the audit and the metrics. Answers are printed as the backend sends them (JSON pretty-printed,
//! the metrics as text); a bad URL or token exits 2 before anything is sent, a backend that cannot
//! be reached or does not answer in time 3, and a refusal with the code its kind calls for (4: the
//! token, 5: the action).

use crate::args::{AdminArgs, AdminCommand};
use crate::exit::{CliError, CliResult, Exit};
use friend_core::api::Api;
use friend_core::{ApiConfig, CoreError, StaticSecrets};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> CliResult<()> {
    super::device::install_crypto_provider();
    // Both checked before anything is sent: a bad URL or token is a usage error (exit 2), not a
    // failure to reach the backend.
    check_url(&args.url)?;
    let authorization = authorization(&args.token)?;
    // The device commands' bounds: the core's defaults (5 s to connect, 15 s per request).
    let defaults = ApiConfig::new(args.url.as_str());
    let timeout = args
        .timeout
        .map_or(defaults.request_timeout, Duration::from_secs);
    let client = reqwest::Client::builder()
        .connect_timeout(defaults.connect_timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| CliError::failure(format!("HTTP client: {e}")))?;
    let base = args.url.trim_end_matches('/');
    let empty = serde_json::json!({});
    let (method, path, body) = match &args.command {
        AdminCommand::Suspend { friend, reason } => (
            reqwest::Method::POST,
            format!("/v1/admin/friends/{}/suspend", segment(friend)?),
            Some(serde_json::json!({ "reason": reason })),
        ),
        AdminCommand::Qualify {
            friend,
            categories,
            communities,
            tier,
            radius,
        } => {
            let mut update = serde_json::Map::new();
            if let Some(c) = categories {
                update.insert("categories".into(), serde_json::json!(c));
            }
            if let Some(c) = communities {
                let c: Vec<&String> = c.iter().filter(|x| !x.is_empty()).collect();
                update.insert("communities".into(), serde_json::json!(c));
            }
            if let Some(t) = tier {
                update.insert("tier".into(), serde_json::json!(t));
            }
            if let Some(r) = radius {
                update.insert("radius_km".into(), serde_json::json!(r));
            }
            (
                reqwest::Method::POST,
                format!("/v1/admin/friends/{}/profile", segment(friend)?),
                Some(serde_json::Value::Object(update)),
            )
        }
        AdminCommand::Friends { limit } => (
            reqwest::Method::GET,
            format!("/v1/admin/friends?limit={limit}"),
            None,
        ),
        AdminCommand::Reactivate { friend } => (
            reqwest::Method::POST,
            format!("/v1/admin/friends/{}/reactivate", segment(friend)?),
            Some(empty),
        ),
        AdminCommand::RotateToken { account } => (
            reqwest::Method::POST,
            format!("/v1/admin/accounts/{}/rotate-token", segment(account)?),
            Some(empty),
        ),
        AdminCommand::Audit { limit } => (
            reqwest::Method::GET,
            format!("/v1/admin/audit?limit={limit}"),
            None,
        ),
        AdminCommand::Metrics => (reqwest::Method::GET, "/metrics".to_owned(), None),
    };
    let mut request = client
        .request(method, format!("{base}{path}"))
        .header(AUTHORIZATION, authorization);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request
        .send()
        .await
        .map_err(|e| transport(base, timeout, "cannot reach the backend", e))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| transport(base, timeout, "reading the answer", e))?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                Some(format!(
                    "{}: {}",
                    v["code"].as_str()?,
                    v["message"].as_str()?
                ))
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        let exit = match status.as_u16() {
            401 | 403 => Exit::Unauthorized,
            400 | 404 | 409 | 422 => Exit::Refused,
            _ => Exit::Failure,
        };
        return Err(CliError::new(exit, message));
    }
    let shown = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or(text),
        Err(_) => text,
    };
    super::device::print_out(shown.trim_end());
    Ok(())
}

/// A transport failure, a timeout included: the backend cannot be reached (exit 3), as for the
/// device commands.
fn transport(base: &str, timeout: Duration, what: &str, e: reqwest::Error) -> CliError {
    let message = if e.is_timeout() {
        format!(
            "{what} at {base}: no answer within {} s (--timeout)",
            timeout.as_secs()
        )
    } else {
        format!("{what} at {base}: {e}")
    };
    CliError::new(Exit::Unreachable, message)
}

/// The backend URL: http or https with a host, and plain http only to loopback — the rule the
/// device commands follow, applied here by the core's own client constructor ([`Api::new`]; the
/// rule itself is private to the core), so the admin token never crosses a network unencrypted.
fn check_url(url: &str) -> CliResult<()> {
    let example = "e.g. http://127.0.0.1:8080 or https://api.example.ch";
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CliError::usage(format!("--url {url:?} is not a URL ({e}); {example}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(CliError::usage(format!(
            "--url {url:?} is not an http:// or https:// URL; {example}"
        )));
    }
    // This client is never used: it only applies the rule. Its token is never read.
    let secrets = Arc::new(StaticSecrets::new(String::new(), [0; 32]));
    match Api::new(&ApiConfig::new(url), secrets) {
        Ok(_) => Ok(()),
        Err(CoreError::InvalidUrl(problem)) => Err(CliError::usage(format!(
            "--url {url:?}: {problem}; the admin token is not sent unencrypted over a network: use https://"
        ))),
        Err(e) => Err(CliError::from_core(e, url)),
    }
}

/// The `Authorization` header for the admin token; a token no HTTP header can carry (a line
/// break, a control or non-ASCII character) or an empty one is a usage error that says where.
fn authorization(token: &str) -> CliResult<HeaderValue> {
    let malformed = |problem: String| {
        CliError::usage(format!(
            "the admin token (--token or FRIEND_ADMIN_TOKEN) is malformed: {problem}"
        ))
    };
    if token.is_empty() {
        return Err(malformed("it is empty".into()));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        let problem = token
            .chars()
            .enumerate()
            .find_map(|(i, c)| {
                let at = i + 1;
                match c {
                    '\n' | '\r' => Some(format!("it contains a line break at character {at}")),
                    c if c.is_control() && c != '\t' => Some(format!(
                        "it contains the control character U+{:04X} at character {at}",
                        u32::from(c)
                    )),
                    c if !c.is_ascii() => Some(format!(
                        "it contains a non-ASCII character at character {at}"
                    )),
                    _ => None,
                }
            })
            .unwrap_or_else(|| "an HTTP header cannot carry it".into());
        malformed(problem)
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// An id for a path segment: an account id is a UUID; anything else is a usage error here rather
/// than a confusing 404 there.
fn segment(id: &str) -> CliResult<String> {
    uuid_like(id)
        .then(|| id.to_owned())
        .ok_or_else(|| CliError::usage(format!("{id:?} is not an account id (a UUID)")))
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}
