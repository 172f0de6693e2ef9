//! The event hub: sequence numbers, live broadcast and replay from the store. A leaf: it
//! knows nothing of handlers or containers beyond the wire event.
//!
//! Writers allocate a `seq` with [`EventHub::prepare`], persist the record in the same redb
//! transaction as the change it describes, then [`EventHub::publish`] it. The registry does
//! all three under one lock, so live order and stored order are the same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::clock;
use super::store::{Store, StoreError};

/// An event as the hub hands it out: its `seq`, owner and wire JSON.
pub use super::store::EventRecord;
use crate::api::{Event, EventBody};

/// Room in the live channel per subscriber before it lags and falls back to replay.
const CHANNEL_CAPACITY: usize = 4096;

/// A replay reads the store in pages of this many events.
pub const REPLAY_PAGE: usize = 500;

pub struct EventHub {
    next_seq: AtomicU64,
    tx: broadcast::Sender<Arc<EventRecord>>,
    store: Store,
}

impl EventHub {
    pub fn new(store: Store) -> Result<Self, StoreError> {
        let last = store.last_event_seq()?;
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Ok(Self {
            next_seq: AtomicU64::new(last + 1),
            tx,
            store,
        })
    }

    /// Builds the stored and wire form of an event with the next sequence number.
    pub fn prepare(&self, user_id: &str, body: EventBody) -> EventRecord {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let event = Event {
            body,
            seq,
            timestamp: clock::rfc3339(clock::now_ms()),
        };
        EventRecord {
            seq,
            user_id: user_id.to_string(),
            json: serde_json::to_string(&event).unwrap_or_default(),
        }
    }

    pub fn publish(&self, record: EventRecord) {
        // No subscribers is fine.
        let _ = self.tx.send(Arc::new(record));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.tx.subscribe()
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst) - 1
    }

    /// Stored events after `after`, oldest first.
    pub async fn replay(&self, after: u64) -> Result<Vec<EventRecord>, StoreError> {
        self.store
            .run(move |s| s.events_after(after, REPLAY_PAGE))
            .await
    }

    /// The oldest event still retained.
    pub async fn oldest_seq(&self) -> Result<Option<u64>, StoreError> {
        self.store.run(|s| s.first_event_seq()).await
    }
}
