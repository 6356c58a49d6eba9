//! Receipts issued by this node, by id, in their canonical encoding.
//!
//! Writes go through one writer thread that commits every receipt waiting at that moment in a single durable
//! (fsynced) redb transaction, and only then answers each request: concurrent requests share one fsync
//! instead of queueing for one each, and no receipt is acknowledged before it is on disk.

use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tokio::sync::oneshot;
use vouch_codec::{Digest, Receipt};
use vouch_hub::HubError;

const RECEIPTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("receipts");
/// Most receipts committed in one transaction.
const MAX_BATCH: usize = 256;

fn db(e: impl std::fmt::Display) -> HubError {
    HubError::Db(e.to_string())
}

type Pending = (Digest, Vec<u8>, oneshot::Sender<Result<(), String>>);

pub(crate) struct ReceiptStore {
    db: Arc<Database>,
    writer: mpsc::Sender<Pending>,
}

fn commit(db: &Database, batch: &[Pending]) -> Result<(), String> {
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = tx.open_table(RECEIPTS).map_err(|e| e.to_string())?;
        for (id, bytes, _) in batch {
            table.insert(&id.0, bytes.as_slice()).map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

impl ReceiptStore {
    pub fn open(db: Arc<Database>) -> Result<Self, HubError> {
        let tx = db.begin_write().map_err(self::db)?;
        tx.open_table(RECEIPTS).map_err(self::db)?;
        tx.commit().map_err(self::db)?;
        let (writer, rx) = mpsc::channel::<Pending>();
        let wdb = db.clone();
        std::thread::Builder::new()
            .name("receipt-writer".into())
            .spawn(move || {
                // Ends when the store (the only sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    let result = commit(&wdb, &batch);
                    if let Err(e) = &result {
                        tracing::error!(error = %e, n = batch.len(), "receipts.commit failed");
                    }
                    for (_, _, done) in batch {
                        let _ = done.send(result.clone());
                    }
                }
            })
            .map_err(HubError::Io)?;
        Ok(Self { db, writer })
    }

    /// Stores a receipt durably; resolves once it is committed.
    pub async fn put(&self, r: &Receipt) -> Result<(), HubError> {
        let (done, wait) = oneshot::channel();
        self.writer.send((r.id(), r.to_bytes(), done)).map_err(|_| HubError::Db("receipt writer stopped".into()))?;
        wait.await.map_err(|_| HubError::Db("receipt writer stopped".into()))?.map_err(HubError::Db)
    }

    pub fn get(&self, id: &Digest) -> Result<Option<Receipt>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(RECEIPTS).map_err(db)?;
        match table.get(&id.0).map_err(db)? {
            // Our own store holds only receipts we encoded; a decode failure means corruption.
            Some(v) => {
                Receipt::from_bytes(v.value()).map(Some).map_err(|e| HubError::Db(format!("stored receipt {id}: {e}")))
            }
            None => Ok(None),
        }
    }

    pub fn count(&self) -> Result<u64, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        tx.open_table(RECEIPTS).map_err(db)?.len().map_err(db)
    }
}
