//! Which Friends were long-polling when a booking was committed, seen at the embedded backend's
//! HTTP layer — the check that the backend pushes no offer to them.
//!
//! The backend's rule is "no waiting long-poll at commit time": a foreground app between two
//! long-polls (applying the last answer, or paused for a sync of its own) is pushed, and rightly.
//! So the simulation cannot judge by the app being in the foreground; it needs the moment. A
//! middleware in front of the routes sees every Friend's long-poll (`GET /v1/sync` with a wait)
//! and every booking (`POST /v1/customer/jobs`). A Friend counts as long-polling at a booking's
//! commit when one of their long-polls
//!
//! - was in flight for at least [`MARGIN`] when the booking request arrived (past its own
//!   authentication and subscription, which take well under that),
//! - answered with the booked job in its body (it read the feed after the commit), and
//! - was woken meanwhile (the backend's wake count of the account rose while it was in flight):
//!   it waited, subscribed, rather than finding the job at its first look.
//!
//! A long-poll that waited when the job was committed meets all three; one that found it at its
//! first look after the commit was not waiting then and meets neither of the last two.

use super::ids::FriendIx;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use friend_backend::Backend;
use friend_protocol::{AccountId, JobId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a long-poll must have been in flight when a booking arrives to count as waiting.
pub const MARGIN: Duration = Duration::from_millis(5);

/// A long-poll a booking in flight looked at.
#[derive(Debug)]
struct Watched {
    friend: FriendIx,
    /// Bookings that watch it and have not answered yet.
    bookings_open: usize,
    /// Jobs booked meanwhile, to look for in its answer once it has one.
    jobs: Vec<JobId>,
    /// Its answer (`None`: none, e.g. the app went away) and whether it was woken, once it ended.
    ended: Option<(Option<Bytes>, bool)>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// Long-polls in flight: id → (Friend, arrived).
    in_flight: HashMap<u64, (FriendIx, Instant)>,
    watched: HashMap<u64, Watched>,
    /// Per booked job, the Friends long-polling at its commit.
    long_polling: HashMap<JobId, Vec<FriendIx>>,
}

/// The long-polls and bookings the middleware saw.
pub struct Polls {
    backends: Vec<Backend>,
    friends: RwLock<HashMap<String, (FriendIx, AccountId)>>,
    state: Mutex<State>,
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

impl Watched {
    /// Whether this long-poll, once ended, shows it was waiting when `job` was committed.
    fn waited_for(&self, job: JobId) -> bool {
        match &self.ended {
            Some((Some(body), woken)) => *woken && contains(body, job.to_string().as_bytes()),
            _ => false,
        }
    }
}

impl State {
    fn judge(&mut self, id: u64, job: JobId) {
        if let Some(w) = self.watched.get(&id)
            && w.waited_for(job)
        {
            self.long_polling.entry(job).or_default().push(w.friend);
        }
    }

    fn forget_if_done(&mut self, id: u64) {
        if self
            .watched
            .get(&id)
            .is_some_and(|w| w.ended.is_some() && w.bookings_open == 0)
        {
            self.watched.remove(&id);
        }
    }
}

/// Ends a long-poll's record when its request is done or dropped.
struct PollEnd {
    polls: Arc<Polls>,
    id: u64,
    account: AccountId,
    wakes_before: u64,
    done: bool,
}

impl PollEnd {
    /// The long-poll answered with `body`.
    fn finish(mut self, body: Option<Bytes>) {
        let woken = self.polls.wake_count(self.account) > self.wakes_before;
        self.polls.poll_ended(self.id, body, woken);
        self.done = true;
    }
}

impl Drop for PollEnd {
    fn drop(&mut self) {
        if !self.done {
            // Dropped unanswered (the app went away): nothing shows it waited.
            self.polls.poll_ended(self.id, None, false);
        }
    }
}

impl Polls {
    /// Watches the long-polls of the registered Friends on `backends` (every instance).
    pub fn new(backends: Vec<Backend>) -> Polls {
        Polls {
            backends,
            friends: RwLock::new(HashMap::new()),
            state: Mutex::new(State::default()),
        }
    }

    /// How often `account`'s long-polls were woken, on any instance.
    fn wake_count(&self, account: AccountId) -> u64 {
        self.backends.iter().map(|b| b.wake_count(account)).sum()
    }

    /// Watches the long-polls carrying bearer token `token`: Friend `friend`, account `account`.
    pub fn register(&self, token: &str, friend: FriendIx, account: AccountId) {
        if let Ok(mut f) = self.friends.write() {
            f.insert(token.to_owned(), (friend, account));
        }
    }

    /// The Friends that were long-polling when `job` was booked (see the module docs).
    pub fn long_polling_at(&self, job: JobId) -> Vec<FriendIx> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.long_polling.get(&job).cloned())
            .unwrap_or_default()
    }

    fn poll_started(self: &Arc<Self>, friend: FriendIx, account: AccountId) -> Option<PollEnd> {
        let wakes_before = self.wake_count(account);
        let mut state = self.state.lock().ok()?;
        state.next += 1;
        let id = state.next;
        state.in_flight.insert(id, (friend, Instant::now()));
        Some(PollEnd {
            polls: self.clone(),
            id,
            account,
            wakes_before,
            done: false,
        })
    }

    fn poll_ended(&self, id: u64, body: Option<Bytes>, woken: bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.in_flight.remove(&id);
        let Some(w) = state.watched.get_mut(&id) else {
            return;
        };
        w.ended = Some((body, woken));
        for job in std::mem::take(&mut w.jobs) {
            state.judge(id, job);
        }
        state.forget_if_done(id);
    }

    /// A booking arrived: the long-polls in flight long enough to be waiting.
    fn booking_started(&self) -> Vec<u64> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let waiting: Vec<(u64, FriendIx)> = state
            .in_flight
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= MARGIN)
            .map(|(id, (friend, _))| (*id, *friend))
            .collect();
        for (id, friend) in &waiting {
            state
                .watched
                .entry(*id)
                .or_insert(Watched {
                    friend: *friend,
                    bookings_open: 0,
                    jobs: Vec::new(),
                    ended: None,
                })
                .bookings_open += 1;
        }
        waiting.into_iter().map(|(id, _)| id).collect()
    }

    /// The booking answered: `job` when it was booked.
    fn booking_ended(&self, watched: &[u64], job: Option<JobId>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for id in watched {
            let Some(w) = state.watched.get_mut(id) else {
                continue;
            };
            w.bookings_open = w.bookings_open.saturating_sub(1);
            if let Some(job) = job {
                if w.ended.is_some() {
                    state.judge(*id, job);
                } else {
                    w.jobs.push(job);
                }
            }
            state.forget_if_done(*id);
        }
    }

    fn friend_of(&self, req: &Request) -> Option<(FriendIx, AccountId)> {
        let token = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        self.friends.read().ok()?.get(token).copied()
    }

    async fn observe(self: Arc<Self>, req: Request, next: Next) -> Response {
        let path = req.uri().path();
        if req.method() == Method::POST && path == "/v1/customer/jobs" {
            let watched = self.booking_started();
            let response = next.run(req).await;
            let (response, body) = buffered(response).await;
            let job = body.as_deref().and_then(|b| {
                serde_json::from_slice::<serde_json::Value>(b)
                    .ok()?
                    .get("id")?
                    .as_str()?
                    .parse()
                    .ok()
            });
            self.booking_ended(&watched, job);
            return response;
        }
        let waits = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|p| p.starts_with("wait=") && p != "wait=0")
        });
        let poll = (req.method() == Method::GET && path == "/v1/sync" && waits)
            .then(|| self.friend_of(&req))
            .flatten()
            .and_then(|(friend, account)| self.poll_started(friend, account));
        let Some(end) = poll else {
            return next.run(req).await;
        };
        let response = next.run(req).await;
        let (response, body) = buffered(response).await;
        end.finish(body);
        response
    }
}

/// The response with its body read (every answer of this backend is a small JSON document).
async fn buffered(response: Response) -> (Response, Option<Bytes>) {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => (
            Response::from_parts(parts, Body::from(bytes.clone())),
            Some(bytes),
        ),
        Err(_) => (Response::from_parts(parts, Body::empty()), None),
    }
}

/// `router` behind the long-poll observer.
pub fn layer(router: axum::Router, polls: Arc<Polls>) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| polls.clone().observe(req, next),
    ))
}
