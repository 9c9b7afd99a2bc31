//! The accept race: attempts and their outcomes, contested and same-instant races, and each job's
//! winner checked against the Friend the server assigned.

use crate::sim::audit::Audit;
use crate::sim::driver::Sim;
use crate::sim::ids::JobIx;
use crate::sim::metrics::{AcceptKind, JobRun};
use serde::Serialize;
use std::fmt::Write as _;

/// The accept race.
#[derive(Debug, Clone, Serialize)]
pub struct Race {
    /// Accept requests sent.
    pub accept_attempts: usize,
    /// Jobs with more than one accept attempt.
    pub contested_jobs: usize,
    /// Jobs where accepts of the same virtual second ran concurrently.
    pub same_instant_contests: usize,
    /// Accepts that took part in such a same-instant race.
    pub same_instant_accepts: usize,
    /// `Lost`: another Friend was first.
    pub race_losers: usize,
    /// `Gone`: cancelled or expired.
    pub gone: usize,
    /// `NotEligible` (overlapping slot jobs).
    pub not_eligible: usize,
    /// `Offline`.
    pub offline: usize,
    /// Core errors.
    pub errors: usize,
    /// Jobs where more than one device got `Won`.
    pub double_assignments: usize,
    /// Jobs whose winner (by `Won`) is not the server's assigned Friend.
    pub winner_mismatches: usize,
    /// Jobs no device saw `Won` for because the winner's answer was lost (their accept ended
    /// `Offline`) while the server assigned exactly that Friend: one holder, learnt by the device
    /// at its next sync through the pending-accept lookup. Not a double assignment.
    pub answers_lost: usize,
    /// Jobs checked against the server.
    pub checked_jobs: usize,
}

impl Race {
    /// From the jobs' runs, checked against the server's final answer.
    pub(crate) fn build(sim: &Sim, runs: &[JobRun], audit: &Audit) -> Race {
        let mut race = Race {
            accept_attempts: 0,
            contested_jobs: 0,
            same_instant_contests: 0,
            same_instant_accepts: 0,
            race_losers: 0,
            gone: 0,
            not_eligible: 0,
            offline: 0,
            errors: 0,
            double_assignments: 0,
            winner_mismatches: 0,
            answers_lost: 0,
            checked_jobs: 0,
        };
        for (job, run) in JobIx::all(runs.len()).zip(runs) {
            race.accept_attempts += run.attempts.len();
            if run.attempts.len() > 1 {
                race.contested_jobs += 1;
            }
            let same = run.same_instant_attempts();
            if same > 0 {
                race.same_instant_contests += 1;
                race.same_instant_accepts += same;
            }
            for (_, kind) in &run.outcomes {
                match kind {
                    AcceptKind::Lost => race.race_losers += 1,
                    AcceptKind::Gone => race.gone += 1,
                    AcceptKind::NotEligible => race.not_eligible += 1,
                    AcceptKind::Offline => race.offline += 1,
                    AcceptKind::Error => race.errors += 1,
                    AcceptKind::Won => {}
                }
            }
            if run.winners.len() > 1 {
                race.double_assignments += 1;
            }
            if run.id.is_none() {
                continue;
            }
            let Some(server) = audit.server_job(job) else {
                continue;
            };
            race.checked_jobs += 1;
            let server_friend = server.friend.as_ref().map(|f| f.id);
            let sim_friend = run
                .accepted
                .and_then(|(_, f)| f.of(&sim.friend_ids).copied());
            // A released job may show no Friend any more; otherwise the server's Friend is the winner.
            let matches = server_friend == sim_friend || (run.released && server_friend.is_none());
            let answer_lost = sim_friend.is_none()
                && server_friend.is_some_and(|holder| {
                    run.outcomes.iter().any(|(f, kind)| {
                        *kind == AcceptKind::Offline && f.of(&sim.friend_ids) == Some(&holder)
                    })
                });
            if answer_lost {
                race.answers_lost += 1;
            } else if !matches {
                race.winner_mismatches += 1;
            }
        }
        race
    }

    /// The section for people; `double_assignments` is the invariant's count (both kinds).
    pub(crate) fn write_text(&self, o: &mut String, double_assignments: usize) {
        let r = self;
        let _ = writeln!(o, "\nThe race");
        let _ = writeln!(
            o,
            "  {} accept requests · {} contested jobs · {} same-instant races ({} accepts run concurrently) · {} race losers",
            r.accept_attempts,
            r.contested_jobs,
            r.same_instant_contests,
            r.same_instant_accepts,
            r.race_losers
        );
        let _ = writeln!(
            o,
            "  gone {} · not eligible {} · offline {} · errors {}",
            r.gone, r.not_eligible, r.offline, r.errors
        );
        let _ = writeln!(
            o,
            "  double assignments: {} (Won twice: {}, Won ≠ server's Friend: {}, of {} jobs checked) · winner's answer lost, server holds them: {}",
            double_assignments,
            r.double_assignments,
            r.winner_mismatches,
            r.checked_jobs,
            r.answers_lost
        );
    }
}
