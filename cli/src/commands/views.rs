//! How jobs, offers and negotiations are shown: one text form for people, one JSON form for
//! scripts, shared by the Friend and customer commands.

use chrono::{DateTime, Utc};
use friend_core::{InboxItem, LocalNegotiation, LocalQuote};
use friend_protocol::{CompensationCause, JobDetails, Offer, Timing, VisitView};
use serde_json::{Value, json};

/// "now" or the slot in UTC.
pub fn timing(t: &Timing) -> String {
    match t {
        Timing::Now => "now".into(),
        Timing::Slot { start, end } => format!(
            "slot {}–{}",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%H:%M UTC")
        ),
        Timing::Unknown => "unknown".into(),
    }
}

/// A time of day as the apps show it, "HH:MM UTC" (the CLI has no time zone to show it in).
pub fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// A visit window, "2030-05-01 14:00–15:00 UTC".
pub fn window(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let end_format = if start.date_naive() == end.date_naive() {
        "%H:%M UTC"
    } else {
        "%Y-%m-%d %H:%M UTC"
    };
    format!(
        "{}–{}",
        start.format("%Y-%m-%d %H:%M"),
        end.format(end_format)
    )
}

/// Why a compensation fee is owed, in words.
pub fn compensation_cause(c: CompensationCause) -> &'static str {
    match c {
        CompensationCause::LateCancellation => "late cancellation",
        CompensationCause::NoShow => "no-show",
        CompensationCause::Unknown => "compensation",
    }
}

/// The lines about the time between the accept and the arrival, and the compensation owed.
fn visit_lines(v: &VisitView) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(a) = &v.appointment {
        lines.push(format!(
            "  visit: {}{}",
            window(a.start, a.end),
            if a.moved {
                " (moved from the booked slot)"
            } else {
                ""
            }
        ));
    }
    if let Some(r) = &v.en_route {
        lines.push(format!(
            "  on the way, arriving about {} (sent {})",
            clock(r.eta),
            clock(r.sent_at)
        ));
    }
    if v.reopened > 0 {
        lines.push(format!("  offered again {} time(s)", v.reopened));
    }
    if let Some(c) = &v.compensation {
        lines.push(format!(
            "  compensation ({}): {} charged, platform fee {}, Friend's payout {}",
            compensation_cause(c.cause),
            c.settlement.charged,
            c.settlement.fee,
            c.settlement.payout
        ));
    }
    lines
}

/// One inbox line.
pub fn inbox_line(item: &InboxItem) -> String {
    let o = &item.offer;
    let distance = item
        .distance_m
        .map(|d| format!("{:>6.1} km", d / 1000.0))
        .unwrap_or_else(|| "  remote ".into());
    format!(
        "{}  {}  {:<26} {:<22} {:>11}  {}  expires in {} min",
        o.id,
        distance,
        o.title,
        o.district.as_deref().unwrap_or("-"),
        o.orientation_price.to_string(),
        timing(&o.timing),
        item.expires_in_secs / 60
    )
}

/// An inbox item as JSON.
pub fn inbox_json(item: &InboxItem) -> Value {
    json!({
        "offer": offer_json(&item.offer),
        "distance_m": item.distance_m,
        "expires_in_secs": item.expires_in_secs,
    })
}

/// An offer as JSON (the wire form).
pub fn offer_json(o: &Offer) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// A job as JSON (the wire form).
pub fn job_json(d: &JobDetails) -> Value {
    serde_json::to_value(d).unwrap_or(Value::Null)
}

/// A job for people: what, where, who, state and money.
pub fn job_text(d: &JobDetails) -> String {
    let mut lines = vec![
        format!("job {}  ({})", d.id, d.state.as_str()),
        format!(
            "  {} — {}  [{}]",
            d.title,
            d.orientation_price,
            d.category.as_str()
        ),
        format!("  \"{}\"", d.description),
        format!("  {} · {}", timing(&d.timing), d.place.as_str()),
    ];
    if let Some(a) = &d.address {
        lines.push(format!(
            "  address: {}, {} {}",
            a.street, a.postal_code, a.city
        ));
    } else if let Some(district) = &d.district {
        lines.push(format!("  district: {district}"));
    }
    lines.push(format!("  contact: {} {}", d.contact.name, d.contact.phone));
    if let Some(notes) = &d.access_notes {
        lines.push(format!("  access: {notes}"));
    }
    if let Some(f) = &d.friend {
        lines.push(format!("  Friend: {} ({})", f.name, f.tier.as_str()));
    }
    lines.extend(visit_lines(&d.visit));
    if let Some(total) = d.final_total {
        lines.push(format!(
            "  completed at {total}{}",
            d.payment
                .map(|p| format!(", paid {}", payment_name(p)))
                .unwrap_or_default()
        ));
    }
    if let Some(stars) = d.rating {
        lines.push(format!("  rated {stars} of 5"));
    }
    lines.join("\n")
}

/// Stable name of a payment method.
pub fn payment_name(p: friend_protocol::PaymentMethod) -> &'static str {
    match p {
        friend_protocol::PaymentMethod::Online => "online",
        friend_protocol::PaymentMethod::Cash => "cash",
        friend_protocol::PaymentMethod::Unknown => "unknown",
    }
}

fn quote_json(q: &LocalQuote) -> Value {
    json!({
        "version": q.quote.version,
        "proposed_by": q.proposed_by.as_str(),
        "answer": q.answer,
        "total": q.quote.total,
        "reason": q.quote.reason,
        "items": q.quote.items,
        "proposal": q.proposal,
        "acceptance": q.acceptance,
    })
}

fn quote_text(q: &LocalQuote) -> String {
    let mut lines = vec![format!(
        "  v{} by {}: {} ({:?})",
        q.quote.version,
        q.proposed_by.as_str(),
        q.quote.total,
        q.answer
    )];
    for i in &q.quote.items {
        lines.push(format!(
            "    {:>3} × {:<36} {:>12}  [{}]",
            i.quantity,
            i.description,
            i.unit_price.to_string(),
            i.kind.as_str()
        ));
    }
    if let Some(r) = &q.quote.reason {
        lines.push(format!("    reason: {r}"));
    }
    lines.join("\n")
}

/// A negotiation as JSON.
pub fn negotiation_json(n: &LocalNegotiation) -> Value {
    json!({
        "latest": n.latest.as_ref().map(quote_json),
        "agreed": n.agreed.as_ref().map(quote_json),
        "unsent_steps": n.unsent_steps,
    })
}

/// A negotiation for people.
pub fn negotiation_text(n: &LocalNegotiation) -> String {
    let mut lines = Vec::new();
    match &n.latest {
        Some(q) => {
            lines.push("latest proposal:".to_owned());
            lines.push(quote_text(q));
        }
        None => lines.push("no proposal yet".to_owned()),
    }
    match &n.agreed {
        Some(q) if n.latest.as_ref().map(|l| l.quote.version) != Some(q.quote.version) => {
            lines.push("agreed (in force):".to_owned());
            lines.push(quote_text(q));
        }
        Some(_) => lines.push("the latest proposal is agreed".to_owned()),
        None => {}
    }
    if n.unsent_steps > 0 {
        lines.push(format!(
            "{} step(s) not yet acknowledged by the backend",
            n.unsent_steps
        ));
    }
    lines.join("\n")
}
