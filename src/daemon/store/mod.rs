//! The only code that touches redb and rmp-serde: tables, records and their versioned codec.
//!
//! Every record is written as `Envelope { v, r }` with `rmp_serde::to_vec_named`, so a field
//! added later (with `#[serde(default)]`) still reads old records. Transactions are short and
//! synchronous; async callers go through [`Store::run`], which moves them off the runtime.

mod records;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use records::*;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// The last 64 KiB of each container's set-up output, raw bytes.
const SETUP_LOGS: TableDefinition<&str, &[u8]> = TableDefinition::new("setup_logs");

/// The version written into every envelope. Bump it when a record changes incompatibly and
/// teach [`decode`] the old one.
const RECORD_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(Box<redb::Error>),
    #[error("record encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("record decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("record version {0} is newer than this rexecd understands")]
    FutureVersion(u32),
    #[error("store task failed: {0}")]
    Task(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    r: T,
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    v: u32,
    r: &'a T,
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    Ok(rmp_serde::to_vec_named(&EnvelopeRef {
        v: RECORD_VERSION,
        r: record,
    })?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let env: Envelope<T> = rmp_serde::from_slice(bytes)?;
    if env.v > RECORD_VERSION {
        return Err(StoreError::FutureVersion(env.v));
    }
    Ok(env.r)
}

/// One atomic change to the container records, with the event it produces.
#[derive(Debug, Default)]
pub struct ContainerChange<'a> {
    pub put: Option<&'a ContainerRecord>,
    pub delete: Option<&'a str>,
    pub event: Option<&'a EventRecord>,
    /// Keep at most this many events; older ones are pruned in the same transaction.
    pub retain_events: u64,
    /// `false` for high-frequency progress that a crash may lose (the next durable commit
    /// persists it anyway).
    pub durable: bool,
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database file and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(CONTAINERS)?;
        txn.open_table(USERS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(META)?;
        txn.open_table(SETUP_LOGS)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// This installation's id, made at first open. Docker objects carry it, so that two
    /// rexecd instances on one engine never touch each other's containers.
    pub fn instance_id(&self, fresh: impl FnOnce() -> String) -> Result<String> {
        let txn = self.db.begin_write()?;
        let id = {
            let mut meta = txn.open_table(META)?;
            let existing = meta.get("instance_id")?.map(|v| v.value().to_string());
            match existing {
                Some(id) => id,
                None => {
                    let id = fresh();
                    meta.insert("instance_id", id.as_str())?;
                    id
                }
            }
        };
        txn.commit()?;
        Ok(id)
    }

    /// Runs blocking store work on tokio's blocking pool.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn all<T: DeserializeOwned>(&self, table: TableDefinition<&str, &[u8]>) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        rec: &T,
    ) -> Result<()> {
        let bytes = encode(rec)?;
        let txn = self.db.begin_write()?;
        txn.open_table(table)?.insert(key, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn remove(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(table)?.remove(key)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        self.all(CONTAINERS)
    }

    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.all(USERS)
    }

    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.all(TOKENS)
    }

    pub fn put_user(&self, user: &UserRecord) -> Result<()> {
        self.put(USERS, &user.id, user)
    }

    pub fn delete_user(&self, id: &str) -> Result<bool> {
        self.remove(USERS, id)
    }

    pub fn put_token(&self, token: &TokenRecord) -> Result<()> {
        self.put(TOKENS, &token.id, token)
    }

    /// Writes a token's `last_used_at` without forcing it to disk: losing one in a crash
    /// costs nothing.
    pub fn touch_token(&self, token: &TokenRecord) -> Result<()> {
        let bytes = encode(token)?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None);
        txn.open_table(TOKENS)?
            .insert(token.id.as_str(), bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn delete_token(&self, id: &str) -> Result<bool> {
        self.remove(TOKENS, id)
    }

    /// Applies one container change and its event in a single transaction.
    pub fn commit_container(&self, change: ContainerChange<'_>) -> Result<()> {
        let put = change.put.map(encode).transpose()?;
        let event = change.event.map(encode).transpose()?;
        let mut txn = self.db.begin_write()?;
        if !change.durable {
            txn.set_durability(Durability::None);
        }
        {
            let mut containers = txn.open_table(CONTAINERS)?;
            if let (Some(rec), Some(bytes)) = (change.put, &put) {
                containers.insert(rec.db_id.as_str(), bytes.as_slice())?;
            }
            if let Some(id) = change.delete {
                containers.remove(id)?;
                txn.open_table(SETUP_LOGS)?.remove(id)?;
            }
        }
        if let (Some(ev), Some(bytes)) = (change.event, &event) {
            let mut events = txn.open_table(EVENTS)?;
            events.insert(ev.seq, bytes.as_slice())?;
            let keep = change.retain_events.max(1);
            if events.len()? > keep {
                let cutoff = ev.seq.saturating_sub(keep);
                events.retain_in(..=cutoff, |_, _| false)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces a container's set-up log.
    pub fn put_setup_log(&self, db_id: &str, log: &[u8], durable: bool) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None);
        }
        // Not for a container deleted meanwhile: its log went with it.
        if txn.open_table(CONTAINERS)?.get(db_id)?.is_some() {
            txn.open_table(SETUP_LOGS)?.insert(db_id, log)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn setup_log(&self, db_id: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SETUP_LOGS)?;
        let log = t.get(db_id)?.map(|v| v.value().to_vec());
        Ok(log)
    }

    /// The highest event sequence number ever stored (0 if none).
    pub fn last_event_seq(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(EVENTS)?;
        let last = t.last()?.map(|(k, _)| k.value()).unwrap_or(0);
        Ok(last)
    }

    /// The oldest retained event's sequence number, if any.
    pub fn first_event_seq(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(EVENTS)?;
        let first = t.first()?.map(|(k, _)| k.value());
        Ok(first)
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for row in t.range(after.saturating_add(1)..)? {
            let (_, v) = row?;
            out.push(decode(v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> ContainerRecord {
        ContainerRecord {
            db_id: id.into(),
            user_id: "usr_1".into(),
            name: "swift-lion-742".into(),
            image: "alpine:latest".into(),
            docker_image: "alpine:latest".into(),
            role: None,
            shell: Default::default(),
            environment: Default::default(),
            labels: Default::default(),
            memory_mb: 512,
            cpu_shares: 500,
            disk_mb: 2048,
            status: RecordStatus::Creating,
            stage: Some(RecordStage::Validating),
            progress: 10,
            error: None,
            docker_id: None,
            volume: format!("rexec-home-{id}"),
            ip_address: None,
            disk_enforced: false,
            created_at_ms: 1,
            last_used_at_ms: 1,
            expires_at_ms: None,
            setup: None,
        }
    }

    #[test]
    fn records_round_trip_through_the_envelope() {
        let rec = sample("a");
        let back: ContainerRecord = decode(&encode(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn old_records_without_new_fields_still_decode() {
        // A v1 user written before `admin` existed.
        #[derive(Serialize)]
        struct OldUser<'a> {
            id: &'a str,
            name: &'a str,
            tier: &'a str,
            created_at_ms: i64,
        }
        let bytes = rmp_serde::to_vec_named(&EnvelopeRef {
            v: 1,
            r: &OldUser {
                id: "usr_1",
                name: "ann",
                tier: "free",
                created_at_ms: 5,
            },
        })
        .unwrap();
        let u: UserRecord = decode(&bytes).unwrap();
        assert_eq!(u.name, "ann");
        assert!(!u.admin);
    }

    #[test]
    fn future_versions_are_refused_not_misread() {
        let bytes = rmp_serde::to_vec_named(&EnvelopeRef {
            v: 99,
            r: &sample("x"),
        })
        .unwrap();
        assert!(matches!(
            decode::<ContainerRecord>(&bytes),
            Err(StoreError::FutureVersion(99))
        ));
    }

    #[test]
    fn events_are_pruned_and_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let rec = sample("a");
        for seq in 1..=10 {
            let ev = EventRecord {
                seq,
                user_id: "usr_1".into(),
                json: format!("{{\"seq\":{seq}}}"),
            };
            store
                .commit_container(ContainerChange {
                    put: Some(&rec),
                    event: Some(&ev),
                    retain_events: 4,
                    durable: seq % 2 == 0,
                    ..Default::default()
                })
                .unwrap();
        }
        assert_eq!(store.first_event_seq().unwrap(), Some(7));
        assert_eq!(store.last_event_seq().unwrap(), 10);
        let seqs: Vec<u64> = store
            .events_after(7, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![8, 9, 10]);
        drop(store);
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(store.containers().unwrap(), vec![rec]);
    }

    #[test]
    fn setup_logs_live_and_die_with_their_container() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        // No record, no log: a container deleted during its set-up leaves nothing behind.
        store.put_setup_log("ghost", b"x", true).unwrap();
        assert_eq!(store.setup_log("ghost").unwrap(), None);
        let rec = sample("a");
        let put = |r: &ContainerRecord, delete: Option<&str>| {
            store
                .commit_container(ContainerChange {
                    put: delete.is_none().then_some(r),
                    delete,
                    durable: true,
                    retain_events: 10,
                    ..Default::default()
                })
                .unwrap()
        };
        put(&rec, None);
        store.put_setup_log("a", b"==> probe\n", false).unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        assert_eq!(
            store.setup_log("a").unwrap().as_deref(),
            Some(&b"==> probe\n"[..])
        );
        store
            .commit_container(ContainerChange {
                delete: Some("a"),
                durable: true,
                retain_events: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.setup_log("a").unwrap(), None);
    }
}
