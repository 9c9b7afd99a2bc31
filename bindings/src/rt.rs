//! The one tokio runtime the bindings own, and [`run`]: the only way an exported async function does
//! its work.
//!
//! Why spawn instead of `#[uniffi::export(async_runtime = "tokio")]`: uniffi polls an exported future
//! on whatever thread the app awaits it from (on Android possibly the main thread). Spawning onto a
//! multi-thread runtime of our own keeps sync-page parsing, TLS and the core's `spawn_blocking` SQLite
//! work on our threads, and gives the core the reactor its `tokio::spawn` calls need. The foreign
//! future only waits for the task's result.
//!
//! Cancellation: when Kotlin cancels a coroutine (or Swift drops the task awaiting the call) uniffi
//! drops the exported future; [`run`]'s guard then aborts the spawned task at its next await. The
//! core writes durable state before any request leaves, so an aborted call is safe to abandon
//! (blocking SQLite work already started finishes and commits on the blocking pool).
//!
//! Enforced by the `every_async_export_runs_on_the_owned_runtime` test in `lib.rs`: every `async fn`
//! of this crate must hand its work to [`run`] before its first `.await`.

use crate::error::FriendCoreError;
use std::future::Future;
use std::sync::{Once, OnceLock};
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
static CRYPTO: Once = Once::new();

/// Two workers: the work is network waits and short SQLite transactions (which run on the blocking
/// pool); phones gain nothing from one worker per core but idle threads.
const WORKER_THREADS: usize = 2;
/// Enough for several sessions' SQLite work at once; idle blocking threads exit after 10 s.
const MAX_BLOCKING_THREADS: usize = 16;

/// The owned runtime, built on first use; also installs rustls' ring provider once (the core's HTTP
/// client is built without a default provider and would panic without it).
pub(crate) fn runtime() -> Result<&'static Runtime, FriendCoreError> {
    CRYPTO.call_once(|| {
        // Err means another provider is already installed (e.g. by the host process): fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .max_blocking_threads(MAX_BLOCKING_THREADS)
                .thread_name("friendcore")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| FriendCoreError::Other {
            detail: format!("cannot start the runtime: {e}"),
        })
}

/// Runs `work` on the owned runtime and waits for its result. A panic inside becomes
/// [`FriendCoreError::Other`]; dropping the returned future (cancellation) aborts the task. `call`
/// names the exported call in debug logs (with its duration and outcome code, nothing else).
pub(crate) async fn run<T, F>(call: &'static str, work: F) -> Result<T, FriendCoreError>
where
    F: Future<Output = Result<T, FriendCoreError>> + Send + 'static,
    T: Send + 'static,
{
    let started = std::time::Instant::now();
    let mut task = AbortOnDrop(runtime()?.spawn(work));
    let result = match (&mut task.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            tracing::error!(call, "an exported call panicked; reported as an error");
            Err(FriendCoreError::Other {
                detail: "internal error (panic)".into(),
            })
        }
        Err(_) => Err(FriendCoreError::Other {
            detail: "the call was cancelled".into(),
        }),
    };
    let ms = started.elapsed().as_millis() as u64;
    match &result {
        Ok(_) => tracing::debug!(call, ms, "ok"),
        Err(e) => tracing::debug!(call, ms, code = e.code_str(), "failed"),
    }
    result
}

/// Runs a synchronous function with the owned runtime entered, for core methods that spawn
/// background tasks (e.g. the foreground sync loop) but do not wait.
pub(crate) fn enter<T>(f: impl FnOnce() -> T) -> Result<T, FriendCoreError> {
    let _entered = runtime()?.enter();
    Ok(f())
}

/// Aborts the task when the awaiting future is dropped before it finished.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Polls a future to completion on a plain thread, as a foreign executor would: no tokio context.
    fn block_on_foreign<F: Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn work_runs_on_the_owned_runtime_without_a_caller_runtime() {
        let name = block_on_foreign(run("test", async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(std::thread::current().name().map(str::to_owned))
        }));
        assert_eq!(name.unwrap().as_deref(), Some("friendcore"));
    }

    #[test]
    fn a_panic_becomes_an_error() {
        let r: Result<(), _> = block_on_foreign(run("test", async { panic!("boom") }));
        assert_eq!(r.unwrap_err().code(), "other");
    }

    #[test]
    fn dropping_the_call_aborts_the_task() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let call = run("test", async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        // Start it, then abandon it the way uniffi does when a coroutine is cancelled.
        let mut call = Box::pin(call);
        let waker = std::task::Waker::noop();
        let _ = call
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker));
        drop(call);
        std::thread::sleep(Duration::from_millis(400));
        assert!(!finished.load(Ordering::SeqCst));
    }
}
