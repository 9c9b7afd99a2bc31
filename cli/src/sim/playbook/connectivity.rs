//! Losing and finding the signal: a tunnel (an offline spell) starts and ends; a Friend who
//! worked in a basement comes back online. Either way the outbox replays what was queued offline,
//! and the items still pending at that moment are noted so the audit can follow them.

use super::Next;
use crate::sim::devices::{Offline, code};
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::{FriendIx, JobIx};
use crate::sim::metrics::Dev;
use friend_core::FriendSession;
use friend_core::store::outbox::ItemStatus;

impl Sim {
    /// A tunnel: the Friend's proxy goes dark for `secs` (unless they are offline already).
    pub(super) fn spell_start(&self, at: VTime, friend: FriendIx, secs: i64) -> Next {
        let Some(device) = self.friend_device(friend) else {
            return Vec::new();
        };
        let started = device.update(|s| {
            if s.offline.is_some() {
                return false;
            }
            s.offline = Some(Offline::Spell { until: at + secs });
            true
        });
        if started != Some(true) {
            return Vec::new();
        }
        device.proxy.go_offline();
        self.metrics.count("offline.spells");
        vec![(at + secs, Event::SpellEnd { friend })]
    }

    /// The tunnel ends: an open session replays its outbox at once.
    pub(super) async fn spell_end(&self, friend: FriendIx) -> Next {
        let Some(device) = self.friend_device(friend) else {
            return Vec::new();
        };
        let ended = device.update(|s| {
            if matches!(s.offline, Some(Offline::Spell { .. })) {
                s.offline = None;
                true
            } else {
                false
            }
        });
        if ended != Some(true) {
            return Vec::new();
        }
        device.proxy.go_online();
        if device.is_open() {
            if let Some(fs) = self.friend_session(friend, "spell_end").await {
                self.note_replays(friend, &fs).await;
            }
            self.sync_friend(friend, "spell_end.replay").await;
        }
        Vec::new()
    }

    /// The Friend has signal again after working offline on `job` (or none): replay the outbox
    /// (the backend tells the customer), resume long-polling, and let the customer rate a job
    /// completed offline.
    pub(super) async fn back_online(
        &self,
        at: VTime,
        friend: FriendIx,
        job: Option<JobIx>,
    ) -> Next {
        let Some(device) = self.friend_device(friend) else {
            return Vec::new();
        };
        device.update(|s| s.offline = None);
        device.proxy.go_online();
        self.metrics.count("offline.back_online");
        if let Some(fs) = self.friend_session(friend, "back_online").await {
            self.note_replays(friend, &fs).await;
            self.sync_friend(friend, "back_online.replay").await;
        }
        if device.foreground
            && let Err(e) = device.start_foreground().await
        {
            self.metrics.error("back_online.foreground", &code(&e));
        }
        let Some(job) = job else { return Vec::new() };
        let Some(spec) = self.world.job(job) else {
            return Vec::new();
        };
        let mut next = Vec::new();
        let completed = self
            .metrics
            .job(job, |r| r.negotiation.final_total.is_some())
            .unwrap_or(false);
        if completed && let Some((_, delay)) = spec.behaviour.rating {
            next.push((at + delay, Event::Rate { job }));
        }
        next
    }

    /// Notes the outbox items still pending as the Friend comes back online: the sync that
    /// follows replays them, and the audit reports their outcomes.
    async fn note_replays(&self, friend: FriendIx, fs: &FriendSession) {
        if let Ok(items) = fs.outbox().await {
            let pending = items
                .iter()
                .filter(|i| i.status == ItemStatus::Pending)
                .map(|i| i.id);
            self.metrics.replayed(Dev::Friend(friend), pending);
        }
    }
}
