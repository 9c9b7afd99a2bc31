//! Outbox items across all devices: queued, applied, refused (with the codes), still pending, lost;
//! and the items replayed after offline work.

use crate::sim::audit::{Audit, KindCount};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One kind of outbox item.
#[derive(Debug, Clone, Serialize)]
pub struct KindRow {
    /// Queued by the simulation.
    pub queued: u64,
    /// Applied.
    pub applied: u64,
    /// Refused.
    pub refused: u64,
    /// Still pending.
    pub pending: u64,
    /// Refusal codes.
    pub refusal_codes: BTreeMap<String, u64>,
}

impl From<&KindCount> for KindRow {
    fn from(k: &KindCount) -> KindRow {
        KindRow {
            queued: k.queued,
            applied: k.applied,
            refused: k.refused,
            pending: k.pending,
            refusal_codes: k.refusal_codes.clone(),
        }
    }
}

/// Outbox items and their outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Outbox {
    /// Queued by the simulation.
    pub queued: u64,
    /// Applied.
    pub applied: u64,
    /// Refused (with a reason).
    pub refused: u64,
    /// Still pending at the end.
    pub pending: u64,
    /// Queued actions not found applied or refused in their device's outbox.
    pub lost_writes: u64,
    /// Items the simulation did not queue.
    pub unexpected_items: u64,
    /// By kind.
    pub by_kind: BTreeMap<String, KindRow>,
    /// Items queued offline and replayed when the device was back online.
    pub replayed: u64,
    /// Their outcomes by kind.
    pub replayed_by_kind: BTreeMap<String, KindRow>,
}

impl Outbox {
    /// From the audit of every device's outbox.
    pub(crate) fn build(audit: &Audit) -> Outbox {
        let sum = |f: fn(&KindCount) -> u64, m: &BTreeMap<String, KindCount>| {
            m.values().map(f).sum::<u64>()
        };
        Outbox {
            queued: sum(|k| k.queued, &audit.outbox),
            applied: sum(|k| k.applied, &audit.outbox),
            refused: sum(|k| k.refused, &audit.outbox),
            pending: sum(|k| k.pending, &audit.outbox),
            lost_writes: audit.lost_writes,
            unexpected_items: audit.unexpected_items,
            by_kind: audit
                .outbox
                .iter()
                .map(|(k, v)| (k.clone(), v.into()))
                .collect(),
            replayed: sum(|k| k.queued, &audit.replayed),
            replayed_by_kind: audit
                .replayed
                .iter()
                .map(|(k, v)| (k.clone(), v.into()))
                .collect(),
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let b = self;
        let _ = writeln!(o, "\nOutbox");
        let _ = writeln!(
            o,
            "  {} queued · {} applied · {} refused · {} pending · lost writes {}{}",
            b.queued,
            b.applied,
            b.refused,
            b.pending,
            b.lost_writes,
            if b.unexpected_items > 0 {
                format!(" · {} unexpected", b.unexpected_items)
            } else {
                String::new()
            }
        );
        let _ = writeln!(o, "{}", kinds(&b.by_kind));
        let _ = writeln!(o, "  replayed after offline work: {} items", b.replayed);
        if !b.replayed_by_kind.is_empty() {
            let _ = writeln!(o, "{}", kinds(&b.replayed_by_kind));
        }
    }
}

/// One line per kind.
fn kinds(map: &BTreeMap<String, KindRow>) -> String {
    map.iter()
        .map(|(k, v)| {
            let codes = if v.refusal_codes.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    v.refusal_codes
                        .iter()
                        .map(|(c, n)| format!("{c} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            format!(
                "    {k:<22} {:>6} queued {:>6} applied {:>5} refused{codes}{}",
                v.queued,
                v.applied,
                v.refused,
                if v.pending > 0 {
                    format!(" {:>4} pending", v.pending)
                } else {
                    String::new()
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
