//! The parts of the OpenAPI document that no single handler states: the security schemes, and the
//! answers every operation gets from the layers and extractors it goes through (HTTP layer, token,
//! role, path, query, `Idempotency-Key`, JSON body). Each class is described once here and added
//! to every operation it applies to, so each operation lists every status it can return.

use crate::extract::MAX_IDEMPOTENCY_KEY_LEN;
use crate::http1::{MAX_HEAD_BYTES, MAX_HEADER_FIELDS, MAX_URI_BYTES};
use friend_protocol::ErrorCode;
use serde_json::{Value, json};
use utoipa::openapi::OpenApi;

/// Security scheme of routes for Friends (a customer's token is `403 forbidden`).
pub const FRIEND: &str = "friend";
/// Security scheme of routes for customers (a Friend's token is `403 forbidden`).
pub const CUSTOMER: &str = "customer";
/// Security scheme of routes for any account, Friend or customer.
pub const ACCOUNT: &str = "account";
/// Security scheme of the operator's routes.
pub const ADMIN: &str = "admin";

/// Adds the security schemes and the cross-cutting answers, and drops `unknown` from enums.
pub struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (FRIEND, "The bearer token of a Friend account."),
            (CUSTOMER, "The bearer token of a customer account."),
            (
                ACCOUNT,
                "The bearer token of an account, Friend or customer.",
            ),
            (ADMIN, "The operator's admin token."),
        ] {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        // The edits below are on the JSON form; the typed form is only rebuilt from it, so a
        // failure (which the tests would show) leaves the document as the handlers declared it.
        let Ok(mut doc) = serde_json::to_value(&*openapi) else {
            return;
        };
        if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
            for operation in paths.values_mut().filter_map(Value::as_object_mut) {
                for op in operation.values_mut() {
                    add_class_answers(op);
                }
            }
        }
        if let Some(schemas) = doc.pointer_mut("/components/schemas") {
            drop_unknown(schemas);
        }
        match serde_json::from_value(doc) {
            Ok(done) => *openapi = done,
            Err(e) => tracing::error!("OpenAPI document post-processing failed: {e}"),
        }
    }
}

/// The answers of the classes `op` belongs to: (status, code, when).
fn class_answers(op: &Value) -> Vec<(u16, ErrorCode, String)> {
    let mut out = Vec::new();
    let schemes: Vec<&str> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().map(String::as_str))
        .collect();
    if !schemes.is_empty() {
        let who = if schemes.contains(&ADMIN) {
            "the admin token is missing or wrong"
        } else {
            "the bearer token is missing, malformed or unknown"
        };
        out.push((401, ErrorCode::Unauthorized, who.into()));
        out.push((
            503,
            ErrorCode::Unavailable,
            "the storage is busy: retry later".into(),
        ));
    }
    for (scheme, other) in [(FRIEND, "a customer"), (CUSTOMER, "a Friend")] {
        if schemes.contains(&scheme) {
            out.push((403, ErrorCode::Forbidden, format!("the token is {other}'s")));
        }
    }
    for param in op["parameters"].as_array().into_iter().flatten() {
        let name = param["name"].as_str().unwrap_or("");
        match param["in"].as_str() {
            Some("path") => out.push((
                400,
                ErrorCode::InvalidInput,
                format!("`{name}` is not of the documented form"),
            )),
            Some("query") => out.push((
                400,
                ErrorCode::InvalidInput,
                format!("`{name}` is not of the documented type or range"),
            )),
            Some("header") if name.eq_ignore_ascii_case("idempotency-key") => {
                out.push((
                    400,
                    ErrorCode::InvalidInput,
                    format!(
                        "the Idempotency-Key is empty, longer than {MAX_IDEMPOTENCY_KEY_LEN} \
                         characters or not visible ASCII"
                    ),
                ));
                out.push((
                    422,
                    ErrorCode::IdempotencyKeyReused,
                    "the Idempotency-Key was used before with another request".into(),
                ));
            }
            _ => {}
        }
    }
    if op.get("requestBody").is_some() {
        out.push((
            400,
            ErrorCode::InvalidJson,
            "the body is not JSON (sent as application/json) of the documented shape, types and \
             ranges"
                .into(),
        ));
        out.push((
            413,
            ErrorCode::BodyTooLarge,
            format!("the body is larger than {} bytes", super::MAX_BODY_BYTES),
        ));
        out.push((
            408,
            ErrorCode::RequestTimeout,
            format!(
                "the body did not arrive within {} s (nothing was done; send it again)",
                crate::extract::BODY_TIMEOUT.as_secs()
            ),
        ));
    }
    // The HTTP layer answers these before any route is chosen.
    out.extend([
        (
            400,
            ErrorCode::BadRequest,
            "the request head is not well-formed HTTP/1.1 (e.g. an invalid Content-Length)".into(),
        ),
        (
            414,
            ErrorCode::UriTooLong,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        ),
        (
            431,
            ErrorCode::HeadersTooLarge,
            format!(
                "the request head is larger than {MAX_HEAD_BYTES} bytes or has more than \
                 {MAX_HEADER_FIELDS} fields"
            ),
        ),
    ]);
    out
}

/// Adds `op`'s class answers to its responses: a status it lacks gets an `ApiError` response, a
/// status it has gets the codes its description does not name yet.
fn add_class_answers(op: &mut Value) {
    let answers = class_answers(op);
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, code, why) in answers {
        let response = responses.entry(status.to_string()).or_insert_with(|| {
            json!({
                "description": "",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
            })
        });
        let description = response["description"].as_str().unwrap_or("");
        if description.contains(code.as_str()) {
            continue;
        }
        let line = format!("`{}`: {why}", code.as_str());
        response["description"] = if description.is_empty() {
            line.into()
        } else {
            format!("{description}; {line}").into()
        };
    }
}

/// Removes `unknown` from every enum, and every `oneOf` branch tagged `unknown`: the value exists
/// so that clients tolerate values of newer servers; this server never sends it and refuses it.
fn drop_unknown(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| v != "unknown");
            }
            if let Some(Value::Array(branches)) = map.get_mut("oneOf") {
                branches.retain(|b| !is_unknown_branch(b));
            }
            map.values_mut().for_each(drop_unknown);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unknown),
        _ => {}
    }
}

/// A tagged-union branch whose tag can only be `unknown`.
fn is_unknown_branch(branch: &Value) -> bool {
    branch["properties"].as_object().is_some_and(|props| {
        props.values().any(|p| {
            p["enum"]
                .as_array()
                .is_some_and(|e| e == &[json!("unknown")])
        })
    })
}
