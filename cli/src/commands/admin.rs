//! `friendctl admin`: the admin routes of a running backend over plain HTTP — suspend and
//! reactivate a Friend, rotate a token, read the audit and the metrics. Answers are printed as
//! the backend sends them (JSON pretty-printed, the metrics as text); a refusal exits with the
//! code its kind calls for (4: the token, 5: the action).

use crate::args::{AdminArgs, AdminCommand};
use crate::exit::{CliError, CliResult, Exit};

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> CliResult<()> {
    super::device::install_crypto_provider();
    let client = reqwest::Client::builder()
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
        .bearer_auth(&args.token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.map_err(|e| {
        CliError::new(
            Exit::Unreachable,
            format!("cannot reach the backend at {base}: {e}"),
        )
    })?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| CliError::new(Exit::Unreachable, format!("reading the answer: {e}")))?;
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
