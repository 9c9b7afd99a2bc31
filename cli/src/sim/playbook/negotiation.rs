//! The price agreed on site: the Friend's first quote, the customer's answer (accept, counter,
//! reject), the Friend's answer to a counter or a rejection, an amendment when more work turns up
//! — online through the backend, or, with the Friend in the basement, by payload exchange between
//! the two phones.

use super::Next;
use crate::sim::devices::code;
use crate::sim::driver::Sim;
use crate::sim::events::{Event, VTime};
use crate::sim::ids::{FriendIx, JobIx};
use crate::sim::metrics::Dev;
use crate::sim::model::Answer;
use crate::sim::quotes;
use friend_core::{CoreError, CustomerSession, FriendSession, LocalNegotiation};
use friend_protocol::JobId;
use friend_protocol::negotiation::{Answer as QuoteAnswer, Party};

/// The version of the proposal waiting for an answer (0: none).
fn pending_version(n: &LocalNegotiation) -> u32 {
    n.pending().map(|q| q.quote.version).unwrap_or(0)
}

impl Sim {
    /// The Friend proposes the first quote: delivered online, or shown to the customer's phone
    /// when there is no signal.
    pub(super) async fn quote(&self, at: VTime, job: JobIx) -> Next {
        let (Some(winner), Some(id), Some(spec)) =
            (self.winner(job), self.job_id(job), self.world.job(job))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(winner) {
            return vec![(until + 30, Event::Quote { job })];
        }
        let Some(fs) = self.friend_session(winner, "quote").await else {
            return Vec::new();
        };
        let items = quotes::first(&spec.service, &spec.behaviour.quote);
        let reason = quotes::reason_for(&items, &spec.service);
        let first_total = quotes::total(&items);
        let Some(payload) = self.queued(
            Dev::Friend(winner),
            "consent",
            "propose",
            fs.propose(id, items, reason).await,
        ) else {
            return Vec::new();
        };
        self.metrics.job(job, |r| {
            r.negotiation.proposals += 1;
            r.negotiation.first_total = Some(first_total);
        });
        let mut rng = self.rng(job, 5);
        if self.offline_on_job(winner) {
            let Some(cs) = self.customer_session(spec.customer, "quote.offline").await else {
                return Vec::new();
            };
            match self
                .exchange_offline(job, winner, id, &fs, &cs, payload)
                .await
            {
                Ok(()) => {
                    self.metrics.job(job, |r| r.negotiation.offline = true);
                    self.metrics.count("negotiation.offline_exchange");
                }
                Err(e) => self.metrics.error("offline_exchange", &code(&e)),
            }
            return vec![(at + self.work_secs(job), Event::Complete { job })];
        }
        self.sync_friend(winner, "quote.deliver").await;
        vec![(at + rng.i64(60..240), Event::CustomerAnswer { job })]
    }

    /// Consent by payload exchange with the Friend offline: the devices show each other QR codes;
    /// the customer's phone (online) uploads what it imports, the Friend's replays later.
    async fn exchange_offline(
        &self,
        job: JobIx,
        winner: FriendIx,
        id: JobId,
        fs: &FriendSession,
        cs: &CustomerSession,
        proposal: String,
    ) -> Result<(), CoreError> {
        let Some(spec) = self.world.job(job) else {
            return Ok(());
        };
        let (fd, cd) = (Dev::Friend(winner), Dev::Customer(spec.customer));
        let seen = cs.import_consent(id, &proposal).await?;
        self.metrics.queued(cd, "consent");
        let v1 = pending_version(&seen);
        let first = seen
            .pending()
            .map(|q| q.quote.items.clone())
            .unwrap_or_else(|| quotes::bare(&spec.service));
        // The customer's answer, then the Friend's, each by payload.
        let (friend_side, customer_answers) = match spec.behaviour.answer {
            Answer::Accept => (None, true),
            Answer::Counter(percent) => {
                self.metrics.job(job, |r| r.negotiation.countered = true);
                let items = quotes::discounted(&first, percent, "Counter-offer");
                let reason = quotes::reason_for(&items, &spec.service);
                let counter = cs.counter(id, items, reason).await?;
                self.metrics.queued(cd, "consent");
                let mine = fs.import_consent(id, &counter).await?;
                self.metrics.queued(fd, "consent");
                if spec.behaviour.friend_takes_counter {
                    let acceptance = fs.accept_quote(id, pending_version(&mine)).await?;
                    self.metrics.queued(fd, "consent");
                    (Some(acceptance), false)
                } else {
                    let items = quotes::discounted(&first, percent / 2, "Meet in the middle");
                    let reason = quotes::reason_for(&items, &spec.service);
                    let middle = fs.propose(id, items, reason).await?;
                    self.metrics.queued(fd, "consent");
                    cs.import_consent(id, &middle).await?;
                    self.metrics.queued(cd, "consent");
                    (None, true)
                }
            }
            Answer::Reject => {
                // Said, not signed: the Friend offers the bare service instead.
                self.metrics.job(job, |r| r.negotiation.rejected = true);
                let bare = fs.propose(id, quotes::bare(&spec.service), None).await?;
                self.metrics.queued(fd, "consent");
                cs.import_consent(id, &bare).await?;
                self.metrics.queued(cd, "consent");
                (None, true)
            }
        };
        if let Some(acceptance) = friend_side {
            cs.import_consent(id, &acceptance).await?;
            self.metrics.queued(cd, "consent");
        }
        if customer_answers {
            let n = cs.negotiation(id).await?;
            let version = if n.pending().is_some() {
                pending_version(&n)
            } else {
                v1
            };
            let acceptance = cs.accept_quote(id, version).await?;
            self.metrics.queued(cd, "consent");
            fs.import_consent(id, &acceptance).await?;
            self.metrics.queued(fd, "consent");
        }
        self.metrics.job(job, |r| r.negotiation.proposals += 1);
        Ok(())
    }

    /// The customer answers the Friend's proposal: the drawn answer the first time, accept after.
    pub(super) async fn customer_answer(&self, at: VTime, job: JobIx) -> Next {
        let (Some(id), Some(spec)) = (self.job_id(job), self.world.job(job)) else {
            return Vec::new();
        };
        let customer = spec.customer;
        let Some(cs) = self.customer_session(customer, "customer_answer").await else {
            return Vec::new();
        };
        self.sync_customer(customer, "customer_answer.sync").await;
        let n = match cs.negotiation(id).await {
            Ok(n) => n,
            Err(e) => {
                self.metrics.error("customer_answer", &code(&e));
                return Vec::new();
            }
        };
        let Some(pending) = n
            .pending()
            .filter(|q| q.proposed_by == Party::Friend)
            .cloned()
        else {
            return self.retry(
                at,
                job,
                Event::CustomerAnswer { job },
                "customer_answer.waiting",
            );
        };
        let round = self.metrics.job(job, |r| {
            r.retries = 0;
            r.round += 1;
            r.round - 1
        });
        let mut rng = self.rng(job, 6 + u64::from(round.unwrap_or(0)));
        let version = pending.quote.version;
        let answer = if round == Some(0) {
            spec.behaviour.answer
        } else {
            Answer::Accept
        };
        match answer {
            Answer::Accept => {
                if self
                    .queued(
                        Dev::Customer(customer),
                        "consent",
                        "customer_accept",
                        cs.accept_quote(id, version).await,
                    )
                    .is_none()
                {
                    return Vec::new();
                }
                self.sync_customer(customer, "customer_accept.deliver")
                    .await;
                let amend = spec.behaviour.amendment.is_some()
                    && self
                        .metrics
                        .job(job, |r| r.negotiation.amendment.is_none())
                        .unwrap_or(false);
                if amend {
                    vec![(at + rng.i64(600..1800), Event::Amend { job })]
                } else {
                    vec![(at + self.work_secs(job), Event::Complete { job })]
                }
            }
            Answer::Counter(percent) => {
                self.metrics.job(job, |r| r.negotiation.countered = true);
                let items = quotes::discounted(&pending.quote.items, percent, "Counter-offer");
                let reason = quotes::reason_for(&items, &spec.service);
                self.queued(
                    Dev::Customer(customer),
                    "consent",
                    "counter",
                    cs.counter(id, items, reason).await,
                );
                self.sync_customer(customer, "counter.deliver").await;
                vec![(at + rng.i64(60..180), Event::FriendAnswer { job })]
            }
            Answer::Reject => {
                self.metrics.job(job, |r| r.negotiation.rejected = true);
                self.queued(
                    Dev::Customer(customer),
                    "reject",
                    "reject",
                    cs.reject_quote(id, version).await,
                );
                self.sync_customer(customer, "reject.deliver").await;
                vec![(at + rng.i64(60..180), Event::FriendAnswer { job })]
            }
        }
    }

    /// The Friend answers the customer's counter (takes it, or meets in the middle) or rejection
    /// (offers the bare service).
    pub(super) async fn friend_answer(&self, at: VTime, job: JobIx) -> Next {
        let (Some(winner), Some(id), Some(spec)) =
            (self.winner(job), self.job_id(job), self.world.job(job))
        else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(winner) {
            return vec![(until + 30, Event::FriendAnswer { job })];
        }
        let Some(fs) = self.friend_session(winner, "friend_answer").await else {
            return Vec::new();
        };
        self.sync_friend(winner, "friend_answer.sync").await;
        let n = match fs.negotiation(id).await {
            Ok(n) => n,
            Err(e) => {
                self.metrics.error("friend_answer", &code(&e));
                return Vec::new();
            }
        };
        let mut rng = self.rng(job, 20);
        if let Some(counter) = n
            .pending()
            .filter(|q| q.proposed_by == Party::Customer)
            .cloned()
        {
            self.metrics.job(job, |r| r.retries = 0);
            if spec.behaviour.friend_takes_counter {
                let version = counter.quote.version;
                if self
                    .queued(
                        Dev::Friend(winner),
                        "consent",
                        "friend_accept",
                        fs.accept_quote(id, version).await,
                    )
                    .is_some()
                {
                    self.sync_friend(winner, "friend_accept.deliver").await;
                    return vec![(at + self.work_secs(job), Event::Complete { job })];
                }
                return Vec::new();
            }
            let percent = match spec.behaviour.answer {
                Answer::Counter(p) => p / 2,
                _ => 5,
            };
            let first = quotes::first(&spec.service, &spec.behaviour.quote);
            let middle = quotes::discounted(&first, percent, "Meet in the middle");
            let reason = quotes::reason_for(&middle, &spec.service);
            self.queued(
                Dev::Friend(winner),
                "consent",
                "propose_middle",
                fs.propose(id, middle, reason).await,
            );
            self.metrics.job(job, |r| r.negotiation.proposals += 1);
            self.sync_friend(winner, "propose_middle.deliver").await;
            return vec![(at + rng.i64(60..180), Event::CustomerAnswer { job })];
        }
        let rejected = n
            .latest
            .as_ref()
            .is_some_and(|q| q.answer == QuoteAnswer::Rejected);
        if rejected {
            self.metrics.job(job, |r| r.retries = 0);
            self.queued(
                Dev::Friend(winner),
                "consent",
                "propose_bare",
                fs.propose(id, quotes::bare(&spec.service), None).await,
            );
            self.metrics.job(job, |r| r.negotiation.proposals += 1);
            self.sync_friend(winner, "propose_bare.deliver").await;
            return vec![(at + rng.i64(60..180), Event::CustomerAnswer { job })];
        }
        self.retry(
            at,
            job,
            Event::FriendAnswer { job },
            "friend_answer.waiting",
        )
    }

    /// More work found after agreement: the Friend proposes an amendment to the agreed quote.
    pub(super) async fn amend(&self, at: VTime, job: JobIx) -> Next {
        let (Some(winner), Some(id)) = (self.winner(job), self.job_id(job)) else {
            return Vec::new();
        };
        if let Some(until) = self.spell_until(winner) {
            return vec![(until + 30, Event::Amend { job })];
        }
        let Some(fs) = self.friend_session(winner, "amend").await else {
            return Vec::new();
        };
        self.sync_friend(winner, "amend.sync").await;
        let agreed = match fs.negotiation(id).await {
            Ok(n) => n.agreed.map(|q| q.quote.items),
            Err(e) => {
                self.metrics.error("amend", &code(&e));
                None
            }
        };
        let Some(agreed) = agreed else {
            return self.retry(at, job, Event::Amend { job }, "amend.waiting");
        };
        let (items, reason) = quotes::amended(&agreed);
        if self
            .queued(
                Dev::Friend(winner),
                "consent",
                "amend",
                fs.propose(id, items, Some(reason)).await,
            )
            .is_none()
        {
            return vec![(at + self.work_secs(job), Event::Complete { job })];
        }
        self.metrics.job(job, |r| {
            r.retries = 0;
            r.negotiation.proposals += 1;
            r.negotiation.amendment = Some(false);
        });
        self.sync_friend(winner, "amend.deliver").await;
        let mut rng = self.rng(job, 30);
        vec![(at + rng.i64(60..180), Event::CustomerAmendAnswer { job })]
    }

    /// The customer accepts or rejects the amendment; the work goes on either way.
    pub(super) async fn customer_amend_answer(&self, at: VTime, job: JobIx) -> Next {
        let (Some(id), Some(spec)) = (self.job_id(job), self.world.job(job)) else {
            return Vec::new();
        };
        let customer = spec.customer;
        let Some(cs) = self.customer_session(customer, "amend_answer").await else {
            return Vec::new();
        };
        self.sync_customer(customer, "amend_answer.sync").await;
        let pending = match cs.negotiation(id).await {
            Ok(n) => n
                .pending()
                .filter(|q| q.proposed_by == Party::Friend)
                .map(|q| q.quote.version),
            Err(e) => {
                self.metrics.error("amend_answer", &code(&e));
                None
            }
        };
        let Some(version) = pending else {
            return self.retry(
                at,
                job,
                Event::CustomerAmendAnswer { job },
                "amend_answer.waiting",
            );
        };
        self.metrics.job(job, |r| r.retries = 0);
        if spec.behaviour.amendment == Some(true) {
            if self
                .queued(
                    Dev::Customer(customer),
                    "consent",
                    "amend_accept",
                    cs.accept_quote(id, version).await,
                )
                .is_some()
            {
                self.metrics
                    .job(job, |r| r.negotiation.amendment = Some(true));
            }
        } else {
            self.queued(
                Dev::Customer(customer),
                "reject",
                "amend_reject",
                cs.reject_quote(id, version).await,
            );
        }
        self.sync_customer(customer, "amend_answer.deliver").await;
        vec![(at + self.work_secs(job) / 2, Event::Complete { job })]
    }
}
