//! The logger bridge: `tracing` events → the app's [`Logger`] (Logcat, OSLog, a crash reporter).
//!
//! Privacy: FriendCore's own events (targets `friend_*`) carry ids, counts, codes and durations,
//! never personal data, tokens or positions. Third-party crates (HTTP, TLS) are forwarded at warn and
//! error only, whatever the level chosen, since their debug output may include request details.
//!
//! The subscriber is installed once per process; calling [`init_logging`] again swaps the logger
//! and level. Before the first call nothing is recorded and events cost next to nothing.

use std::cell::Cell;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once, RwLock};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something unexpected that FriendCore handled.
    Warn,
    /// Session lifecycle and sync summaries.
    Info,
    /// Every exported call with its duration and outcome code.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }

    fn of(level: &tracing::Level) -> LogLevel {
        match *level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// Where it comes from, e.g. `friend_ffi::friend` (use it as the Logcat tag or OSLog category).
    pub target: String,
    /// The message followed by its fields as `key=value`.
    pub message: String,
}

/// Receives FriendCore's log records, implemented by the app. Called on FriendCore's threads.
#[uniffi::export(foreign)]
pub trait Logger: Send + Sync {
    /// One record.
    fn log(&self, record: LogRecord);
}

struct Sink {
    level: LevelFilter,
    logger: Arc<dyn Logger>,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALL: Once = Once::new();

/// Sends FriendCore's logs at `level` (and more severe) to `logger`. Call once at app start; a later
/// call replaces the logger and level.
#[uniffi::export]
pub fn init_logging(level: LogLevel, logger: Arc<dyn Logger>) {
    if let Ok(mut sink) = SINK.write() {
        *sink = Some(Sink {
            level: level.filter(),
            logger,
        });
    }
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ForeignLayer);
        // Fails only if the host process installed a global subscriber itself; then it keeps it.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    tracing::callsite::rebuild_interest_cache();
}

fn current_level() -> LevelFilter {
    SINK.read()
        .ok()
        .and_then(|s| s.as_ref().map(|s| s.level))
        .unwrap_or(LevelFilter::OFF)
}

/// Whether an event of `meta` is forwarded at the current level.
fn wanted(meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("friend_");
    let max = if ours {
        current_level()
    } else {
        current_level().min(LevelFilter::WARN)
    };
    *meta.level() <= max
}

struct ForeignLayer;

thread_local! {
    /// Set while the foreign logger runs, so events it causes (re-entrancy) are dropped.
    static IN_LOGGER: Cell<bool> = const { Cell::new(false) };
}

impl<S: Subscriber> Layer<S> for ForeignLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        wanted(meta)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if IN_LOGGER.with(Cell::get) {
            return;
        }
        let logger = SINK
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.logger.clone()));
        let Some(logger) = logger else { return };
        let meta = event.metadata();
        let mut text = Text::default();
        event.record(&mut text);
        let record = LogRecord {
            level: LogLevel::of(meta.level()),
            target: meta.target().to_owned(),
            message: text.finish(),
        };
        IN_LOGGER.with(|f| f.set(true));
        // A throwing logger must not unwind into whatever emitted the event.
        let _ = catch_unwind(AssertUnwindSafe(|| logger.log(record)));
        IN_LOGGER.with(|f| f.set(false));
    }
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} {}", self.message, self.fields),
        }
    }
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<LogRecord>>);
    impl Logger for Collect {
        fn log(&self, record: LogRecord) {
            self.0.lock().unwrap().push(record);
        }
    }

    #[test]
    fn events_reach_the_logger_at_its_level_and_others_only_when_severe() {
        let logger = Arc::new(Collect(Mutex::new(Vec::new())));
        init_logging(LogLevel::Debug, logger.clone());
        tracing::debug!(pages = 2, "synced");
        tracing::trace!("too verbose");
        tracing::debug!(target: "hyper::proto", "third-party detail");
        tracing::warn!(target: "hyper::proto", "third-party warning");
        let got = logger.0.lock().unwrap().clone();
        let ours: Vec<_> = got
            .iter()
            .filter(|r| r.message.contains("synced"))
            .collect();
        assert_eq!(ours.len(), 1, "{got:?}");
        assert_eq!(ours[0].message, "synced pages=2");
        assert_eq!(ours[0].level, LogLevel::Debug);
        assert!(ours[0].target.starts_with("friend_ffi"));
        assert!(!got.iter().any(|r| r.message.contains("too verbose")));
        assert!(!got.iter().any(|r| r.message.contains("third-party detail")));
        assert!(
            got.iter()
                .any(|r| r.message.contains("third-party warning"))
        );
    }
}
