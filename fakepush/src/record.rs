//! What both fakes share: the record of received requests, the reply script, the hold gate, and the
//! waits that tests block on. A fake's handler records a request first, then passes the gate, then
//! decides its answer, then notes the status — so a held or abandoned request is visible as
//! received with no status.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::server::Stopped;

/// Which gateway a request was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// Firebase Cloud Messaging (HTTP v1), Android.
    Fcm,
    /// Apple Push Notification service, iOS.
    Apns,
}

/// One request a fake received on its push endpoint (for FCM: not the token endpoint, which is
/// counted separately), as received, plus the status it was answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The gateway that received it.
    pub platform: Platform,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path, e.g. `/3/device/a0b1…` or `/v1/projects/friendcore-test/messages:send`.
    pub path: String,
    /// HTTP version as `hyper` prints it: `HTTP/1.1`, `HTTP/2.0`.
    pub http_version: String,
    /// Every header, names lower-case (repeated headers joined with `, `; values that are not
    /// UTF-8 converted lossily).
    pub headers: BTreeMap<String, String>,
    /// The device token addressed: FCM `message.token` of the body, APNs the last path segment.
    /// `None` when the request names none.
    pub device_token: Option<String>,
    /// The body parsed as JSON; `Value::Null` when it is empty or not JSON.
    pub body: Value,
    /// When the fake received it (system clock).
    pub received_at: DateTime<Utc>,
    /// The status the fake answered with; `None` while it is held or being answered, and for good
    /// when it is [`abandoned`](Request::abandoned).
    pub status: Option<u16>,
    /// Never answered and never will be: the client went away (closed the connection, reset the
    /// stream) or the fake was stopped while the request waited (held).
    pub abandoned: bool,
}

impl Request {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether the fake answered it with a 2xx status: the gateway accepted the push.
    pub fn is_delivered(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    /// The push's data map: FCM `message.data`; APNs every top-level key of the payload except
    /// `aps`. Values that are not JSON strings are given as their JSON text.
    pub fn data(&self) -> BTreeMap<String, String> {
        let object = match self.platform {
            Platform::Fcm => self.body["message"]["data"].as_object(),
            Platform::Apns => self.body.as_object(),
        };
        object
            .into_iter()
            .flatten()
            .filter(|(k, _)| !(self.platform == Platform::Apns && *k == "aps"))
            .map(|(k, v)| (k.clone(), text(v)))
            .collect()
    }

    /// The push's collapse key: FCM `message.android.collapse_key`; APNs the `apns-collapse-id`
    /// header.
    pub fn collapse_key(&self) -> Option<String> {
        match self.platform {
            Platform::Fcm => self.body["message"]["android"]["collapse_key"]
                .as_str()
                .map(str::to_string),
            Platform::Apns => self.header("apns-collapse-id").map(str::to_string),
        }
    }

    /// The visible title: FCM `message.notification.title`; APNs `aps.alert.title`.
    pub fn title(&self) -> Option<String> {
        self.alert()["title"].as_str().map(str::to_string)
    }

    /// The visible text: FCM `message.notification.body`; APNs `aps.alert.body`.
    pub fn text(&self) -> Option<String> {
        self.alert()["body"].as_str().map(str::to_string)
    }

    /// This request as a [`Delivery`] when it was answered 2xx and names a device token.
    pub fn delivery(&self) -> Option<Delivery> {
        if !self.is_delivered() {
            return None;
        }
        Some(Delivery {
            platform: self.platform,
            device_token: self.device_token.clone()?,
            collapse_key: self.collapse_key(),
            data: self.data(),
            title: self.title(),
            text: self.text(),
            body: self.body.clone(),
            received_at: self.received_at,
        })
    }

    fn alert(&self) -> &Value {
        match self.platform {
            Platform::Fcm => &self.body["message"]["notification"],
            Platform::Apns => &self.body["aps"]["alert"],
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// A push the fake accepted (answered 2xx), in the same shape for both platforms.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The gateway that accepted it.
    pub platform: Platform,
    /// The device token it was addressed to.
    pub device_token: String,
    /// Its collapse key ([`Request::collapse_key`]).
    pub collapse_key: Option<String>,
    /// Its data map ([`Request::data`]).
    pub data: BTreeMap<String, String>,
    /// Its visible title ([`Request::title`]).
    pub title: Option<String>,
    /// Its visible text ([`Request::text`]).
    pub text: Option<String>,
    /// The whole JSON body as received.
    pub body: Value,
    /// When the fake received it.
    pub received_at: DateTime<Utc>,
}

/// A scripted answer: status, extra headers, JSON body. `Value::Null` sends an empty body.
///
/// A reply whose status or header is not valid HTTP is answered as a 500 whose body says why, so a
/// mistake in a test script shows up in the fake's record instead of a silent drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers, e.g. `("retry-after", "7")`.
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Value::Null` for none.
    pub body: Value,
}

impl Reply {
    /// A reply with `status` and JSON `body`, no extra header.
    pub fn new(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `Retry-After: {seconds}`.
    pub fn with_retry_after(self, seconds: u64) -> Reply {
        self.with_header("retry-after", &seconds.to_string())
    }

    /// An FCM v1 (Google API) error: `{"error": {"code", "status"}}`, plus a
    /// `google.firebase.fcm.v1.FcmError` detail with `errorCode` when one is given.
    ///
    /// For example `Reply::fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"))
    /// .with_retry_after(7)` or `Reply::fcm_error(503, "UNAVAILABLE", None)`.
    pub fn fcm_error(code: u16, status: &str, error_code: Option<&str>) -> Reply {
        let mut body = json!({ "error": { "code": code, "status": status } });
        if let Some(error_code) = error_code {
            body["error"]["details"] = json!([{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }]);
        }
        Reply::new(code, body)
    }

    /// FCM's answer for a token that is no longer registered: 404 `NOT_FOUND`, `UNREGISTERED`.
    pub fn fcm_unregistered() -> Reply {
        Reply::fcm_error(404, "NOT_FOUND", Some("UNREGISTERED"))
    }

    /// An APNs error: `status` with `{"reason": reason}`, e.g. `Reply::apns_error(403,
    /// "ExpiredProviderToken")` or `Reply::apns_error(429, "TooManyRequests").with_retry_after(5)`.
    pub fn apns_error(status: u16, reason: &str) -> Reply {
        Reply::new(status, json!({ "reason": reason }))
    }

    /// APNs' answer for a token that is no longer active: 410 `Unregistered` with the time (ms)
    /// Apple last knew it valid, here now.
    pub fn apns_unregistered() -> Reply {
        Reply::new(
            410,
            json!({ "reason": "Unregistered", "timestamp": Utc::now().timestamp_millis() }),
        )
    }
}

/// Whether requests on the push endpoint are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Answered as they come.
    Open,
    /// Recorded, then kept waiting.
    Holding,
    /// The fake is stopped: nothing is answered any more.
    Stopped,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    queue: VecDeque<Reply>,
    rules: HashMap<String, Reply>,
}

/// A recorded request on its way to an answer.
pub(crate) struct Pending<'a> {
    recorder: &'a Recorder,
    index: usize,
    answered: bool,
}

impl Pending<'_> {
    /// Its index in the record.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Waits while the fake holds requests; `Err` once it is stopped.
    pub(crate) async fn pass_gate(&self) -> Result<(), Stopped> {
        self.recorder.pass_gate().await
    }

    /// Notes the status it was answered with.
    pub(crate) fn answered(mut self, status: u16) {
        self.answered = true;
        self.recorder
            .update(self.index, |r| r.status = Some(status));
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.recorder.update(self.index, |r| r.abandoned = true);
        }
    }
}

/// The record, script and gate of one fake.
pub(crate) struct Recorder {
    /// `FakeFcm` or `FakeApns`, for messages.
    name: &'static str,
    state: Mutex<State>,
    /// Bumped on every recorded request and every answer; the waits watch it.
    changed: watch::Sender<()>,
    gate: watch::Sender<Gate>,
}

impl Recorder {
    pub(crate) fn new(name: &'static str) -> Recorder {
        Recorder {
            name,
            state: Mutex::new(State::default()),
            changed: watch::channel(()).0,
            gate: watch::channel(Gate::Open).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide what the fake recorded.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a received request (with no status yet); the handle notes its answer, or that it
    /// was abandoned when it is dropped unanswered (the handler's future was dropped).
    pub(crate) fn record(&self, request: Request) -> Pending<'_> {
        let index = {
            let mut state = self.lock();
            state.requests.push(request);
            state.requests.len() - 1
        };
        self.changed.send_replace(());
        Pending {
            recorder: self,
            index,
            answered: false,
        }
    }

    /// Updates request `index` and wakes the waits.
    fn update(&self, index: usize, update: impl FnOnce(&mut Request)) {
        if let Some(request) = self.lock().requests.get_mut(index) {
            update(request);
        }
        self.changed.send_replace(());
    }

    /// Waits while the fake holds requests; `Err` once it is stopped.
    pub(crate) async fn pass_gate(&self) -> Result<(), Stopped> {
        let mut gate = self.gate.subscribe();
        let open = gate
            .wait_for(|g| *g != Gate::Holding)
            .await
            .is_ok_and(|g| *g == Gate::Open);
        if open { Ok(()) } else { Err(Stopped) }
    }

    /// Whether the fake was stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        *self.gate.borrow() == Gate::Stopped
    }

    /// The scripted reply for a push to `device_token`: its rule, else the next queued reply.
    pub(crate) fn scripted(&self, device_token: Option<&str>) -> Option<Reply> {
        let mut state = self.lock();
        if let Some(rule) = device_token.and_then(|t| state.rules.get(t)) {
            return Some(rule.clone());
        }
        state.queue.pop_front()
    }

    pub(crate) fn queue_reply(&self, reply: Reply) {
        self.lock().queue.push_back(reply);
    }

    pub(crate) fn always_reply_to(&self, device_token: &str, reply: Reply) {
        self.lock().rules.insert(device_token.to_string(), reply);
    }

    pub(crate) fn forget_token_rule(&self, device_token: &str) {
        self.lock().rules.remove(device_token);
    }

    pub(crate) fn clear_script(&self) {
        let mut state = self.lock();
        state.queue.clear();
        state.rules.clear();
    }

    pub(crate) fn queued_replies(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn hold(&self) {
        self.gate.send_if_modified(|g| {
            let hold = *g == Gate::Open;
            if hold {
                *g = Gate::Holding;
            }
            hold
        });
    }

    pub(crate) fn release(&self) {
        self.gate.send_if_modified(|g| {
            let release = *g == Gate::Holding;
            if release {
                *g = Gate::Open;
            }
            release
        });
    }

    pub(crate) fn stop(&self) {
        self.gate.send_replace(Gate::Stopped);
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    pub(crate) fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.lock()
            .requests
            .iter()
            .filter_map(Request::delivery)
            .collect()
    }

    pub(crate) fn delivery_count(&self) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.delivery().is_some())
            .count()
    }

    pub(crate) async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Request>, String> {
        self.wait(timeout, "requests", |requests| {
            (requests.len() >= n).then(|| requests.to_vec())
        })
        .await
        .map_err(|summary| format!("{summary}, wanted {n} requests"))
    }

    pub(crate) async fn wait_for_deliveries(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Delivery>, String> {
        self.wait(timeout, "deliveries", |requests| {
            let deliveries: Vec<Delivery> = requests.iter().filter_map(Request::delivery).collect();
            (deliveries.len() >= n).then_some(deliveries)
        })
        .await
        .map_err(|summary| format!("{summary}, wanted {n} deliveries"))
    }

    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&[Request]) -> bool,
    ) -> Result<Vec<Request>, String> {
        self.wait(timeout, "a condition", |requests| {
            condition(requests).then(|| requests.to_vec())
        })
        .await
    }

    /// Waits until `ready` returns `Some` for the recorded requests, woken by every change; on
    /// timeout, `Err` with a summary of what was received.
    async fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&[Request]) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribed before the first look, so no change between the look and the wait is missed.
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(found) = ready(&self.lock().requests) {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                // Timed out (or the fake is gone, which cannot happen while `self` lives).
                _ => break,
            }
        }
        let state = self.lock();
        if let Some(found) = ready(&state.requests) {
            return Ok(found);
        }
        let statuses: Vec<String> = state
            .requests
            .iter()
            .map(|r| match (r.status, r.abandoned) {
                (Some(status), _) => status.to_string(),
                (None, true) => "abandoned".into(),
                (None, false) => "waiting".into(),
            })
            .collect();
        Err(format!(
            "{}: timed out after {timeout:?} waiting for {what}; received {} requests, answered [{}]",
            self.name,
            state.requests.len(),
            statuses.join(", ")
        ))
    }
}

/// The controls both fakes share, written once. The fake type must have `async fn bind() ->
/// io::Result<Self>`, `fn recorder(&self) -> &Recorder`, an `addr: SocketAddr` field and a
/// `running: Arc<Running>` field.
macro_rules! gateway_controls {
    ($fake:ident) => {
        impl $fake {
            #[doc = concat!("[`", stringify!($fake), "::bind`] for test code, where a failure to bind is the test's failure report.")]
            ///
            /// # Panics
            ///
            /// If no loopback port can be bound.
            pub async fn start() -> $fake {
                $fake::bind().await.unwrap_or_else(|e| {
                    panic!(
                        "{}: cannot listen on 127.0.0.1:0: {e}",
                        stringify!($fake)
                    )
                })
            }

            /// `http://127.0.0.1:PORT`: the base URL to give the client under test.
            pub fn base_url(&self) -> String {
                format!("http://{}", self.addr)
            }

            /// The listening address.
            pub fn addr(&self) -> std::net::SocketAddr {
                self.addr
            }

            /// Answers the next push that passes the fake's checks with `reply` (replies queue up in
            /// order). A device-token rule ([`Self::always_reply_to`]) comes first and does not use
            /// up a queued reply.
            pub fn queue_reply(&self, reply: $crate::Reply) {
                self.recorder().queue_reply(reply);
            }

            /// Answers every push to `device_token` that passes the fake's checks with `reply`,
            /// until [`Self::forget_token_rule`] — e.g. a dead token, whatever order a concurrent
            /// sender uses. Replaces an earlier rule for that token.
            pub fn always_reply_to(&self, device_token: &str, reply: $crate::Reply) {
                self.recorder().always_reply_to(device_token, reply);
            }

            /// Removes the rule for `device_token`.
            pub fn forget_token_rule(&self, device_token: &str) {
                self.recorder().forget_token_rule(device_token);
            }

            /// Drops every queued reply and token rule: pushes are accepted again.
            pub fn clear_script(&self) {
                self.recorder().clear_script();
            }

            /// How many queued replies are not used yet.
            pub fn queued_replies(&self) -> usize {
                self.recorder().queued_replies()
            }

            /// From now on pushes are recorded as received but not answered (not even checked)
            /// until [`Self::release`]. Requests already being answered are not affected.
            ///
            /// To kill a sender between sending and hearing the answer: `hold()`, wait for its
            /// requests ([`Self::wait_for_requests`]), kill it, then — before `release()` — wait
            /// until the fake has seen the connections go ([`Self::wait_until`] every request
            /// [`abandoned`]($crate::Request::abandoned)), so none of them is answered and
            /// counted as a delivery after all.
            pub fn hold(&self) {
                self.recorder().hold();
            }

            /// Stops holding: every held push still waiting is checked and answered now (in no
            /// particular order), and new ones as they come. A held push whose client went away
            /// meanwhile is never answered and stays without a status.
            pub fn release(&self) {
                self.recorder().release();
            }

            /// Every request received on the push endpoint so far, in arrival order.
            pub fn requests(&self) -> Vec<$crate::Request> {
                self.recorder().requests()
            }

            /// How many requests the push endpoint received.
            pub fn request_count(&self) -> usize {
                self.recorder().request_count()
            }

            /// The pushes answered 2xx so far, in arrival order.
            pub fn deliveries(&self) -> Vec<$crate::Delivery> {
                self.recorder().deliveries()
            }

            /// How many pushes were answered 2xx.
            pub fn delivery_count(&self) -> usize {
                self.recorder().delivery_count()
            }

            /// Waits until at least `n` requests were received (answered or not) and returns all
            /// of them; after `timeout`, `Err` describing what did arrive. Woken by the fake on
            /// every request, no polling.
            pub async fn wait_for_requests(
                &self,
                n: usize,
                timeout: std::time::Duration,
            ) -> Result<Vec<$crate::Request>, String> {
                self.recorder().wait_for_requests(n, timeout).await
            }

            /// Waits until at least `n` pushes were answered 2xx and returns all deliveries; after
            /// `timeout`, `Err` describing what did arrive. Woken by the fake on every answer, no
            /// polling.
            pub async fn wait_for_deliveries(
                &self,
                n: usize,
                timeout: std::time::Duration,
            ) -> Result<Vec<$crate::Delivery>, String> {
                self.recorder().wait_for_deliveries(n, timeout).await
            }

            /// Waits until `condition` holds for the requests received so far (checked now and
            /// after every request and answer) and returns them; after `timeout`, `Err`
            /// describing what did arrive.
            pub async fn wait_until(
                &self,
                timeout: std::time::Duration,
                condition: impl Fn(&[$crate::Request]) -> bool,
            ) -> Result<Vec<$crate::Request>, String> {
                self.recorder().wait_until(timeout, condition).await
            }

            /// Stops the fake now, for every handle: the listener closes, open connections are
            /// dropped and held pushes are never answered. Dropping the last handle does the same.
            pub fn stop(&self) {
                self.running.stop();
            }
        }
    };
}

pub(crate) use gateway_controls;
