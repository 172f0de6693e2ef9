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
        let jobs = self.jobs.clone();
        let key = key.to_string();
        self.tracker.spawn(
            async move {
                fut.await;
                jobs.lock().unwrap().remove(&key);
                let _ = done_tx.send(true);
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
