//! Background work keyed by container: one job per key at a time, each cancellable (and
//! awaitable after cancelling), all owned by the daemon's task tracker so that shutdown waits
//! for them. Creation pipelines and set-up runs are jobs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span};

struct Job {
    cancel: CancellationToken,
    done: watch::Receiver<bool>,
}

/// Takes a job out of the map when its task ends, also by a panic.
struct Done {
    jobs: Arc<Mutex<HashMap<String, Job>>>,
    key: String,
    done: watch::Sender<bool>,
}

impl Drop for Done {
    fn drop(&mut self) {
        self.jobs.lock().unwrap().remove(&self.key);
        let _ = self.done.send(true);
    }
}

#[derive(Clone)]
pub struct Jobs {
    jobs: Arc<Mutex<HashMap<String, Job>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Jobs {
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Self {
            jobs: Arc::default(),
            tracker,
            shutdown,
        }
    }

    /// Starts `work` for `key` unless a job for it is running (then `false`). `work` gets a
    /// token that is cancelled by [`cancel`](Self::cancel) and by daemon shutdown.
    pub fn try_spawn<F, Fut>(&self, key: &str, span: Span, work: F) -> bool
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.shutdown.child_token();
        let (done_tx, done_rx) = watch::channel(false);
        {
            let mut jobs = self.jobs.lock().unwrap();
            if jobs.contains_key(key) {
                return false;
            }
            jobs.insert(
                key.to_string(),
                Job {
                    cancel: cancel.clone(),
                    done: done_rx,
                },
            );
        }
        let fut = work(cancel);
        let done = Done {
            jobs: self.jobs.clone(),
            key: key.to_string(),
            done: done_tx,
        };
        self.tracker.spawn(
            async move {
                let _done = done;
                fut.await;
            }
            .instrument(span),
        );
        true
    }

    pub fn is_running(&self, key: &str) -> bool {
        self.jobs.lock().unwrap().contains_key(key)
    }

    /// Cancels the job for `key`, if any, and waits until it has finished.
    pub async fn cancel(&self, key: &str) {
        let job = self
            .jobs
            .lock()
            .unwrap()
            .get(key)
            .map(|j| (j.cancel.clone(), j.done.clone()));
        if let Some((cancel, mut done)) = job {
            cancel.cancel();
            let _ = done.wait_for(|d| *d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs() -> Jobs {
        Jobs::new(TaskTracker::new(), CancellationToken::new())
    }

    #[tokio::test]
    async fn one_job_per_key_and_cancel_waits_for_it() {
        let j = jobs();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        assert!(j.try_spawn("a", Span::none(), |cancel| async move {
            cancel.cancelled().await;
            let _ = tx.send(());
        }));
        assert!(j.is_running("a"));
        assert!(!j.try_spawn("a", Span::none(), |_| async {}));
        j.cancel("a").await;
        assert!(!j.is_running("a"));
        rx.await
            .expect("the job saw its cancellation before cancel returned");
        assert!(j.try_spawn("a", Span::none(), |_| async {}));
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_hold_its_key() {
        let j = jobs();
        assert!(j.try_spawn("p", Span::none(), |_| async { panic!("boom") }));
        for _ in 0..100 {
            if !j.is_running("p") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!j.is_running("p"));
        j.cancel("p").await; // returns at once
        assert!(j.try_spawn("p", Span::none(), |_| async {}));
    }
}
