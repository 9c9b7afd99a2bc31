//! The push gateways of a simulation: the loopback fakes of FCM and APNs (crate
//! `friend-fakepush`) that the embedded backend's real push dispatcher sends to, the device token
//! of every simulated phone, and what arrived at the gateways.
//!
//! Every device registers a token through its core at setup, about a third of them APNs
//! ([`APNS_SHARE`]); a few background Friends' tokens are dead at the gateway
//! ([`DEAD_TOKEN_SHARE`]), which answers every push to them "unregistered", so the backend's
//! dead-token removal runs. The backend alone decides who is pushed; the simulation only reads
//! what the gateways accepted and wakes the device each push was addressed to
//! (`playbook/push.rs`).
//!
//! Reading the gateways: an observer task per fake sees every request the moment it is answered
//! (through [`FakeFcm::wait_until`] with a condition that never holds — it is called under the
//! fake's lock after every request and answer, so it reads just the new entries without copying
//! the whole record) and files each as an [`Arrival`] (accepted) or an answered failure.
//! [`Gateway::settle`] waits until everything the backend queued so far has been answered and
//! filed: first the backend's push queue is empty (a push leaves it only after a gateway
//! answered), then the observers have caught up with every request the fakes received.

use super::ids::{CustomerIx, FriendIx};
use super::metrics::Dev;
use chrono::{DateTime, Utc};
use friend_backend::push::{ApnsSettings, FcmSettings, PushSettings};
use friend_fakepush::{FakeApns, FakeFcm, Reply, Request};
use friend_protocol::push::{PUSH_JOB_KEY, PUSH_KIND_KEY};
use friend_protocol::{JobId, PushPlatform};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Share of devices with an iPhone (APNs); the others are Android (FCM).
pub const APNS_SHARE: f64 = 0.35;
/// Share of Friends whose token is dead at the gateway (at least one when there is a background
/// Friend): always background Friends, who are pushed.
pub const DEAD_TOKEN_SHARE: f64 = 0.02;
/// Longest wait for the gateways to answer everything queued ([`Gateway::settle`]).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// While pushes are still queued, how often the queue is looked at again at the latest (it is
/// also looked at after every answer a gateway gives).
const QUEUE_LOOK: Duration = Duration::from_millis(2);
/// How long queued pushes may sit with nothing sent or answered before the dispatcher is asked to
/// look ([`Gateway::watch_queue`]).
pub const NUDGE_AFTER: Duration = Duration::from_millis(500);
/// How long one observation of a fake lasts before it is renewed (its only cost at the end is
/// a summary of the record).
const OBSERVE: Duration = Duration::from_secs(3600);

/// What a push is about, from its `kind` data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// An open job offered to a Friend.
    Offer,
    /// A job's update for its customer or holding Friend.
    Job,
    /// Anything else (none is expected).
    Other,
}

/// A push a gateway accepted (answered 2xx).
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The device its token belongs to (`None`: a token no simulated device registered).
    pub device: Option<Dev>,
    /// What it is about.
    pub kind: PushKind,
    /// The job it names.
    pub job: Option<JobId>,
    /// Its data map as JSON, FCM data or APNs `userInfo` keys — what the app hands `on_push`.
    pub payload: String,
    /// When the fake gateway received it (system clock).
    pub received_at: DateTime<Utc>,
}

/// What the gateways saw, for the report and the audit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayTally {
    /// Devices registered through FCM.
    pub fcm_devices: usize,
    /// Devices registered through APNs.
    pub apns_devices: usize,
    /// Offer pushes accepted.
    pub offers: u64,
    /// Job updates accepted for customers.
    pub to_customers: u64,
    /// Job updates accepted for Friends.
    pub to_friends: u64,
    /// Accepted pushes of another kind, or to a token no device registered.
    pub unexpected: u64,
    /// Tokens scripted dead.
    pub dead_tokens: usize,
    /// Dead tokens the backend pushed to (distinct).
    pub dead_tokens_pushed: usize,
    /// "Unregistered" answers given to dead tokens.
    pub dead_answers: u64,
    /// Other failures (not answered 2xx, not a dead token).
    pub other_failures: u64,
}

/// The state the observers fill.
#[derive(Default)]
struct Filed {
    /// Per fake (FCM, APNs): requests before this index are filed.
    cursor: [usize; 2],
    /// Per fake: filed requests at or after the cursor (answered out of order).
    ahead: [HashSet<usize>; 2],
    /// Accepted pushes not yet taken ([`Gateway::take_new`]), in filing order.
    new: Vec<Arrival>,
    /// Offer recipients by job.
    offers: HashMap<JobId, Vec<FriendIx>>,
    tally: GatewayTally,
    dead_pushed: HashSet<String>,
}

/// What the observers share with the gateway.
struct Observed {
    filed: Mutex<Filed>,
    /// Per fake: how many requests are filed (the cursor), for [`Gateway::settle`].
    caught_up: watch::Sender<[usize; 2]>,
    /// Token → device.
    devices: HashMap<String, Dev>,
    /// Tokens scripted dead.
    dead: HashSet<String>,
}

impl Observed {
    /// Files the answered requests of fake `side` it has not filed yet.
    fn observe(&self, side: usize, requests: &[Request]) {
        let Ok(mut filed) = self.filed.lock() else {
            return;
        };
        let from = filed.cursor[side];
        for (i, request) in requests.iter().enumerate().skip(from) {
            let answered = request.status.is_some() || request.abandoned;
            if answered && filed.ahead[side].insert(i) {
                self.file(&mut filed, request);
            }
        }
        let mut cursor = filed.cursor[side];
        while filed.ahead[side].remove(&cursor) {
            cursor += 1;
        }
        filed.cursor[side] = cursor;
        drop(filed);
        // Each observer publishes its own fake's cursor only: publishing both (read under the
        // lock, sent after it) let one observer put back the other's older cursor.
        self.caught_up.send_if_modified(|c| {
            let changed = c[side] != cursor;
            c[side] = cursor;
            changed
        });
    }

    fn file(&self, filed: &mut Filed, request: &Request) {
        let token = request.device_token.as_deref().unwrap_or_default();
        if !request.is_delivered() {
            if self.dead.contains(token) && matches!(request.status, Some(404 | 410)) {
                filed.tally.dead_answers += 1;
                filed.dead_pushed.insert(token.to_owned());
                filed.tally.dead_tokens_pushed = filed.dead_pushed.len();
            } else {
                filed.tally.other_failures += 1;
            }
            return;
        }
        let data = request.data();
        let device = self.devices.get(token).copied();
        let kind = match data.get(PUSH_KIND_KEY).map(String::as_str) {
            Some("offer") => PushKind::Offer,
            Some("job") => PushKind::Job,
            _ => PushKind::Other,
        };
        let job = data.get(PUSH_JOB_KEY).and_then(|j| j.parse::<JobId>().ok());
        match (kind, device) {
            (PushKind::Offer, Some(Dev::Friend(friend))) => {
                filed.tally.offers += 1;
                if let Some(job) = job {
                    filed.offers.entry(job).or_default().push(friend);
                }
            }
            (PushKind::Job, Some(Dev::Customer(_))) => filed.tally.to_customers += 1,
            (PushKind::Job, Some(Dev::Friend(_))) => filed.tally.to_friends += 1,
            _ => filed.tally.unexpected += 1,
        }
        let payload = serde_json::to_string(&data).unwrap_or_default();
        filed.new.push(Arrival {
            device,
            kind,
            job,
            payload,
            received_at: request.received_at,
        });
    }
}

/// Looks at the backend's push queue on behalf of [`Gateway::settle`].
#[derive(Default)]
struct QueueWatch {
    /// Looks asked for so far (each settle asks for one).
    wanted: watch::Sender<u64>,
    /// The last look asked for that an empty queue answered: every look asked for up to it.
    empty_for: watch::Sender<u64>,
    /// The depth the last look saw (for the error).
    depth: AtomicU64,
    /// Times the dispatcher was asked to look at its queue.
    nudges: AtomicU64,
}

/// The fake gateways, the devices' tokens and what arrived.
pub struct Gateway {
    fcm: FakeFcm,
    apns: FakeApns,
    settings: PushSettings,
    friends: Vec<(PushPlatform, String)>,
    customers: Vec<(PushPlatform, String)>,
    observed: Arc<Observed>,
    queue: Arc<QueueWatch>,
    observers: Vec<JoinHandle<()>>,
}

/// A deterministic device token: APNs 64 hex digits, FCM a registration-token-like string.
fn token(rng: &mut fastrand::Rng) -> (PushPlatform, String) {
    if rng.f64() < APNS_SHARE {
        let hex: String = (0..32).map(|_| format!("{:02x}", rng.u8(..))).collect();
        (PushPlatform::Apns, hex)
    } else {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut text = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
                .collect()
        };
        let (head, tail) = (text(22), text(134));
        (PushPlatform::Fcm, format!("{head}:APA91b{tail}"))
    }
}

impl Gateway {
    /// Starts both fakes on loopback, writes the backend's credentials into `dir`, draws every
    /// device's token from `seed` and scripts the dead ones. `background` are the Friends who
    /// are not long-polling (the dead tokens are drawn among them).
    pub async fn start(
        dir: &Path,
        seed: u64,
        friends: usize,
        customers: usize,
        background: &[FriendIx],
    ) -> Result<Gateway, String> {
        let fcm = FakeFcm::bind()
            .await
            .map_err(|e| format!("fake FCM gateway: {e}"))?;
        let apns = FakeApns::bind()
            .await
            .map_err(|e| format!("fake APNs gateway: {e}"))?;
        let credentials = dir.join("fcm-service-account.json");
        fcm.write_service_account(&credentials)
            .map_err(|e| format!("{}: {e}", credentials.display()))?;
        let key = dir.join("apns-key.p8");
        std::fs::write(&key, friend_fakepush::apns::KEY_PEM)
            .map_err(|e| format!("{}: {e}", key.display()))?;
        let settings = PushSettings {
            fcm: Some(FcmSettings {
                credentials,
                url: Some(fcm.base_url()),
            }),
            apns: Some(ApnsSettings {
                key,
                key_id: friend_fakepush::apns::KEY_ID.into(),
                team_id: friend_fakepush::apns::TEAM_ID.into(),
                topic: friend_fakepush::apns::TOPIC.into(),
                url: Some(apns.base_url()),
                sandbox: false,
            }),
            ..PushSettings::default()
        };
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x7055_70CE_u64);
        let friend_tokens: Vec<_> = (0..friends).map(|_| token(&mut rng)).collect();
        let customer_tokens: Vec<_> = (0..customers).map(|_| token(&mut rng)).collect();
        let mut pool = background.to_vec();
        rng.shuffle(&mut pool);
        let dead_count = ((friends as f64 * DEAD_TOKEN_SHARE).round() as usize)
            .max(1)
            .min(pool.len());
        let mut dead = HashSet::new();
        for friend in pool.into_iter().take(dead_count) {
            if let Some((platform, token)) = friend.of(&friend_tokens) {
                match platform {
                    PushPlatform::Fcm => fcm.always_reply_to(token, Reply::fcm_unregistered()),
                    _ => apns.always_reply_to(token, Reply::apns_unregistered()),
                }
                dead.insert(token.clone());
            }
        }
        let mut devices = HashMap::new();
        for (i, (_, t)) in friend_tokens.iter().enumerate() {
            devices.insert(t.clone(), Dev::Friend(FriendIx(i)));
        }
        for (i, (_, t)) in customer_tokens.iter().enumerate() {
            devices.insert(t.clone(), Dev::Customer(CustomerIx(i)));
        }
        let all = friend_tokens.iter().chain(&customer_tokens);
        let apns_devices = all.filter(|(p, _)| p.is_apns()).count();
        let filed = Filed {
            tally: GatewayTally {
                fcm_devices: friends + customers - apns_devices,
                apns_devices,
                dead_tokens: dead.len(),
                ..GatewayTally::default()
            },
            ..Filed::default()
        };
        let observed = Arc::new(Observed {
            filed: Mutex::new(filed),
            caught_up: watch::channel([0, 0]).0,
            devices,
            dead,
        });
        let observers = vec![
            tokio::spawn({
                let (fake, observed) = (fcm.clone(), observed.clone());
                async move {
                    loop {
                        let _ = fake
                            .wait_until(OBSERVE, |r| {
                                observed.observe(0, r);
                                false
                            })
                            .await;
                    }
                }
            }),
            tokio::spawn({
                let (fake, observed) = (apns.clone(), observed.clone());
                async move {
                    loop {
                        let _ = fake
                            .wait_until(OBSERVE, |r| {
                                observed.observe(1, r);
                                false
                            })
                            .await;
                    }
                }
            }),
        ];
        Ok(Gateway {
            fcm,
            apns,
            settings,
            friends: friend_tokens,
            customers: customer_tokens,
            observed,
            queue: Arc::new(QueueWatch::default()),
            observers,
        })
    }

    /// The backend's push configuration: both gateways, here.
    pub fn settings(&self) -> PushSettings {
        self.settings.clone()
    }

    /// The platform and token of a device.
    pub fn token_of(&self, device: Dev) -> Option<&(PushPlatform, String)> {
        match device {
            Dev::Friend(f) => f.of(&self.friends),
            Dev::Customer(c) => c.of(&self.customers),
        }
    }

    /// Starts watching `backend`'s push queue for [`Gateway::settle`]: one task looks at the
    /// queue for all the events waiting (one database read at a time, however many wait).
    ///
    /// While pushes are queued and nothing moves — no push sent, none answered — for
    /// [`NUDGE_AFTER`], it asks the dispatcher to look at its queue ([`Backend::kick_push`]) and
    /// counts it ([`Gateway::nudges`]): the dispatcher can miss the commit that queued a push and
    /// then sends it only at its 30-second idle look (seen with the queue's first row id reused
    /// right after the queue emptied). The count shows in the report; it should be 0.
    ///
    /// [`Backend::kick_push`]: friend_backend::Backend::kick_push
    pub fn watch_queue(&mut self, instances: Vec<friend_backend::Backend>) {
        let queue = self.queue.clone();
        let (fcm, apns) = (self.fcm.clone(), self.apns.clone());
        let mut filed = self.observed.caught_up.subscribe();
        self.observers.push(tokio::spawn(async move {
            let mut wanted = queue.wanted.subscribe();
            let mut answered = 0;
            loop {
                // Wait for an event that wants a look.
                let asked = match wanted.wait_for(|w| *w > answered).await {
                    Ok(w) => *w,
                    Err(_) => return,
                };
                // Every look from here on started after request `asked` was made.
                let mut seen = (0, 0, 0);
                let mut still_since = Instant::now();
                loop {
                    // The queue is shared; any instance reads it.
                    let Some(first) = instances.first() else { return };
                    let depth = match first.push_queue().await {
                        Ok((depth, _)) => depth,
                        Err(e) => {
                            tracing::warn!("reading the push queue: {e}");
                            u64::MAX
                        }
                    };
                    if depth == 0 {
                        queue.empty_for.send_replace(asked);
                        answered = asked;
                        break;
                    }
                    queue.depth.store(depth, Ordering::Relaxed);
                    let moving = (depth, fcm.request_count(), apns.request_count());
                    if moving != seen {
                        seen = moving;
                        still_since = Instant::now();
                    } else if still_since.elapsed() >= NUDGE_AFTER {
                        tracing::warn!(
                            "{depth} pushes queued and nothing sent for {NUDGE_AFTER:?}: asking the dispatcher to look"
                        );
                        // The dispatcher holding the lease is on one of them.
                        for b in &instances {
                            b.kick_push();
                        }
                        queue.nudges.fetch_add(1, Ordering::Relaxed);
                        still_since = Instant::now();
                    }
                    // A gateway's answer is filed just before the dispatcher removes the push
                    // from the queue: look again after the next answer, at the latest after a
                    // moment.
                    let _ = tokio::time::timeout(QUEUE_LOOK, filed.changed()).await;
                }
            }
        }));
    }

    /// How often the dispatcher had to be asked to look at its queue (see
    /// [`Gateway::watch_queue`]).
    pub fn nudges(&self) -> u64 {
        self.queue.nudges.load(Ordering::Relaxed)
    }

    /// Waits until every push the backend queued before the call has been answered by its
    /// gateway and filed here: the queue seen empty by a look that began after the call, then
    /// the observers caught up with every request the fakes had received by then. `Err` says
    /// what is still missing after [`SETTLE_TIMEOUT`].
    pub async fn settle(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        let mut asked = 0;
        self.queue.wanted.send_modify(|w| {
            *w += 1;
            asked = *w;
        });
        let mut empty = self.queue.empty_for.subscribe();
        let emptied = tokio::time::timeout_at(deadline, empty.wait_for(|e| *e >= asked))
            .await
            .is_ok_and(|r| r.is_ok());
        if !emptied {
            return Err(format!(
                "{} pushes still queued after {SETTLE_TIMEOUT:?}",
                self.queue.depth.load(Ordering::Relaxed)
            ));
        }
        let want = [self.fcm.request_count(), self.apns.request_count()];
        let mut filed = self.observed.caught_up.subscribe();
        let caught_up = tokio::time::timeout_at(
            deadline,
            filed.wait_for(|c| c[0] >= want[0] && c[1] >= want[1]),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if caught_up {
            return Ok(());
        }
        let filed_so_far = *filed.borrow();
        Err(format!(
            "the gateways' answers were not all filed after {SETTLE_TIMEOUT:?}: {filed_so_far:?} of {want:?}"
        ))
    }

    /// The pushes accepted since the last call, in filing order.
    pub fn take_new(&self) -> Vec<Arrival> {
        self.observed
            .filed
            .lock()
            .map(|mut f| std::mem::take(&mut f.new))
            .unwrap_or_default()
    }

    /// The Friends an offer of `job` reached so far.
    pub fn offered_to(&self, job: JobId) -> Vec<FriendIx> {
        self.observed
            .filed
            .lock()
            .ok()
            .and_then(|f| f.offers.get(&job).cloned())
            .unwrap_or_default()
    }

    /// Every job's offer recipients.
    pub fn offers(&self) -> HashMap<JobId, Vec<FriendIx>> {
        self.observed
            .filed
            .lock()
            .map(|f| f.offers.clone())
            .unwrap_or_default()
    }

    /// The Friends whose dead token the backend pushed to.
    pub fn dead_pushed(&self) -> Vec<FriendIx> {
        let Ok(filed) = self.observed.filed.lock() else {
            return Vec::new();
        };
        let mut friends: Vec<FriendIx> = filed
            .dead_pushed
            .iter()
            .filter_map(|t| match self.observed.devices.get(t) {
                Some(Dev::Friend(f)) => Some(*f),
                _ => None,
            })
            .collect();
        friends.sort_unstable();
        friends
    }

    /// The counts so far.
    pub fn tally(&self) -> GatewayTally {
        self.observed
            .filed
            .lock()
            .map(|f| f.tally.clone())
            .unwrap_or_default()
    }

    /// Stops the observers and both fakes.
    pub fn stop(&self) {
        for o in &self.observers {
            o.abort();
        }
        self.fcm.stop();
        self.apns.stop();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use friend_fakepush::Platform;
    use serde_json::json;

    fn fcm_request(token: &str, status: Option<u16>, data: serde_json::Value) -> Request {
        Request {
            platform: Platform::Fcm,
            method: "POST".into(),
            path: "/v1/projects/p/messages:send".into(),
            http_version: "HTTP/1.1".into(),
            headers: Default::default(),
            device_token: Some(token.into()),
            body: json!({ "message": { "token": token, "data": data } }),
            received_at: Utc::now(),
            status,
            abandoned: false,
        }
    }

    fn observed() -> Observed {
        Observed {
            filed: Mutex::new(Filed::default()),
            caught_up: watch::channel([0, 0]).0,
            devices: [
                ("friend".to_string(), Dev::Friend(FriendIx(3))),
                ("customer".to_string(), Dev::Customer(CustomerIx(1))),
                ("dead".to_string(), Dev::Friend(FriendIx(4))),
            ]
            .into_iter()
            .collect(),
            dead: ["dead".to_string()].into_iter().collect(),
        }
    }

    #[test]
    fn answers_are_filed_once_and_the_cursor_waits_for_the_oldest_unanswered() {
        let o = observed();
        let job = JobId::random();
        let offer = json!({ "kind": "offer", "job_id": job.to_string() });
        let update = json!({ "kind": "job", "job_id": job.to_string(), "state": "assigned" });
        let mut requests = vec![
            fcm_request("friend", None, offer.clone()),
            fcm_request("customer", Some(200), update),
            fcm_request("dead", Some(404), offer.clone()),
        ];
        o.observe(0, &requests);
        assert_eq!(
            *o.caught_up.borrow(),
            [0, 0],
            "the first is not answered yet"
        );
        assert_eq!(o.filed.lock().unwrap().new.len(), 1);

        requests[0].status = Some(200);
        requests.push(fcm_request("friend", None, offer));
        requests[3].abandoned = true;
        o.observe(0, &requests);
        o.observe(0, &requests);
        assert_eq!(*o.caught_up.borrow(), [4, 0]);

        let filed = o.filed.lock().unwrap();
        assert_eq!(filed.new.len(), 2, "two accepted pushes, each filed once");
        assert_eq!(filed.offers.get(&job), Some(&vec![FriendIx(3)]));
        let t = &filed.tally;
        assert_eq!((t.offers, t.to_customers, t.to_friends), (1, 1, 0));
        assert_eq!(
            (t.dead_answers, t.dead_tokens_pushed, t.other_failures),
            (1, 1, 1)
        );
        let payload: serde_json::Value = serde_json::from_str(&filed.new[0].payload).unwrap();
        assert_eq!(
            payload["state"], "assigned",
            "the data map, as on_push gets it"
        );
    }

    #[test]
    fn each_observer_publishes_its_own_cursor() {
        let o = observed();
        let apns = |status| Request {
            platform: Platform::Apns,
            ..fcm_request("friend", status, json!({}))
        };
        o.observe(1, &[apns(Some(200)), apns(Some(200))]);
        o.observe(0, &[fcm_request("friend", Some(200), json!({}))]);
        assert_eq!(*o.caught_up.borrow(), [1, 2]);
    }

    #[test]
    fn tokens_are_deterministic_and_valid() {
        let mut a = fastrand::Rng::with_seed(1);
        let mut b = fastrand::Rng::with_seed(1);
        let tokens: Vec<_> = (0..200).map(|_| token(&mut a)).collect();
        assert_eq!(tokens, (0..200).map(|_| token(&mut b)).collect::<Vec<_>>());
        let apns = tokens.iter().filter(|(p, _)| p.is_apns()).count();
        assert!((40..100).contains(&apns), "{apns} of 200 on APNs");
        for (platform, t) in &tokens {
            friend_protocol::push::validate_token("token", *platform, t).unwrap();
        }
    }
}
