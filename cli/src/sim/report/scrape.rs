//! The backend's own metrics against the simulation: `/metrics` scraped at the end of the day
//! must count the bookings, the accepts won and the pushes sent that the simulation saw.

use super::{Push, Race, TimeToAccept, Visit};
use friend_backend::metrics::sample;
use serde::Serialize;
use std::fmt::Write as _;

/// One figure, as the metrics and as the simulation count it.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Pair {
    /// From `/metrics`.
    pub metrics: Option<f64>,
    /// From the simulation.
    pub simulation: f64,
}

impl Pair {
    fn agrees(&self) -> bool {
        self.metrics == Some(self.simulation)
    }
}

/// The metrics check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scrape {
    /// `friend_bookings_total` vs the bookings that reached the server.
    pub bookings: Pair,
    /// `friend_accepts_total{outcome="won"}` vs the `Won` answers the devices got plus the wins
    /// whose answer was lost (the server holds them).
    pub accepts_won: Pair,
    /// `friend_push_sent_total` vs the pushes the fake gateways accepted.
    pub pushes_sent: Pair,
    /// All three agree.
    pub agree: bool,
}

impl Scrape {
    /// From the scraped text and the report's sections.
    pub fn build(
        texts: &[String],
        bookings: usize,
        t: &TimeToAccept,
        visit: &Visit,
        race: &Race,
        push: &Push,
    ) -> Scrape {
        // Summed over the instances (each counts what it decided).
        let value = |series: &str| {
            texts
                .iter()
                .filter_map(|t| sample(t, series))
                .reduce(|a, b| a + b)
        };
        let bookings = Pair {
            metrics: value("friend_bookings_total"),
            simulation: bookings as f64,
        };
        let accepts_won = Pair {
            metrics: value("friend_accepts_total{outcome=\"won\"}"),
            simulation: (t.accepted + visit.found_again + race.answers_lost) as f64,
        };
        let pushes_sent = Pair {
            metrics: value("friend_push_sent_total"),
            simulation: (push.offer_pushes + push.to_customers + push.to_friends) as f64,
        };
        Scrape {
            agree: bookings.agrees() && accepts_won.agrees() && pushes_sent.agrees(),
            bookings,
            accepts_won,
            pushes_sent,
        }
    }

    /// The section for people.
    pub(crate) fn write_text(&self, o: &mut String) {
        let f = |p: &Pair| {
            format!(
                "{} / {}",
                p.metrics.map_or("–".into(), |m| format!("{m:.0}")),
                p.simulation
            )
        };
        let _ = writeln!(
            o,
            "\nThe backend's /metrics against the simulation (metrics / simulation): bookings {} · accepts won {} · pushes sent {} — {}",
            f(&self.bookings),
            f(&self.accepts_won),
            f(&self.pushes_sent),
            if self.agree { "agree" } else { "DIFFER" }
        );
    }
}
