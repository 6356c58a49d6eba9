//! Receipts issued by this node, by id, in their canonical encoding; the ids this node still has to settle on the
//! ledger (written in the same transaction as the receipt); and the batches it settles them in: a batch is written
//! (members, each member's place, pending) in the same transaction that takes its members off the unsettled list,
//! so a duty is always either unsettled or in a batch, across crashes. A batch stays pending until the ledger
//! records its root; its members stay, for anchors.
//!
//! Writes go through one writer thread that commits every receipt waiting at that moment in a single durable
//! (fsynced) redb transaction, and only then answers each request: concurrent requests share one fsync
//! instead of queueing for one each, and no receipt is acknowledged before it is on disk.

use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::oneshot;
use vouch_codec::{Digest, Receipt};
use vouch_hub::HubError;

const RECEIPTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("receipts");
/// Receipt ids this node settles and the ledger has not recorded yet.
const UNSETTLED: TableDefinition<&[u8; 32], ()> = TableDefinition::new("unsettled");
/// Batches this node settles: root -> member ids (32 bytes each), in leaf order.
const BATCHES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("settle_batches");
/// Each batched receipt's place: id -> batch root and leaf index (big-endian u32).
const MEMBERS: TableDefinition<&[u8; 32], &[u8; 36]> = TableDefinition::new("settle_members");
/// Batches whose root the ledger has not recorded yet: root -> when last submitted (Unix ms; 0: not yet).
const PENDING: TableDefinition<&[u8; 32], u64> = TableDefinition::new("settle_pending");
/// Batches the ledger recorded: root -> the height of the settling block (kept after the ledger prunes the batch).
const SETTLED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("settle_recorded");
/// Most receipts committed in one transaction.
const MAX_BATCH: usize = 256;

fn db(e: impl std::fmt::Display) -> HubError {
    HubError::Db(e.to_string())
}

/// One write: a receipt's id, its bytes (none: only the settlement duty), whether this node settles it.
type Pending = (Digest, Option<Vec<u8>>, bool, oneshot::Sender<Result<(), String>>);

pub(crate) struct ReceiptStore {
    db: Arc<Database>,
    writer: mpsc::Sender<Pending>,
}

fn commit(db: &Database, batch: &[Pending]) -> Result<(), String> {
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = tx.open_table(RECEIPTS).map_err(|e| e.to_string())?;
        let mut unsettled = tx.open_table(UNSETTLED).map_err(|e| e.to_string())?;
        for (id, bytes, settle, _) in batch {
            if let Some(bytes) = bytes {
                table.insert(&id.0, bytes.as_slice()).map_err(|e| e.to_string())?;
            }
            if *settle {
                unsettled.insert(&id.0, ()).map_err(|e| e.to_string())?;
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

impl ReceiptStore {
    pub fn open(db: Arc<Database>) -> Result<Self, HubError> {
        let tx = db.begin_write().map_err(self::db)?;
        tx.open_table(RECEIPTS).map_err(self::db)?;
        tx.open_table(UNSETTLED).map_err(self::db)?;
        tx.open_table(BATCHES).map_err(self::db)?;
        tx.open_table(MEMBERS).map_err(self::db)?;
        tx.open_table(PENDING).map_err(self::db)?;
        tx.open_table(SETTLED).map_err(self::db)?;
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
                    for (_, _, _, done) in batch {
                        let _ = done.send(result.clone());
                    }
                }
            })
            .map_err(HubError::Io)?;
        Ok(Self { db, writer })
    }

    async fn write(&self, id: Digest, bytes: Option<Vec<u8>>, settle: bool) -> Result<(), HubError> {
        let (done, wait) = oneshot::channel();
        self.writer.send((id, bytes, settle, done)).map_err(|_| HubError::Db("receipt writer stopped".into()))?;
        wait.await.map_err(|_| HubError::Db("receipt writer stopped".into()))?.map_err(HubError::Db)
    }

    /// Stores a receipt durably; resolves once it is committed. With `settle`, the same transaction records that
    /// this node owes its settlement.
    pub async fn put(&self, r: &Receipt, settle: bool) -> Result<(), HubError> {
        self.write(r.id(), Some(r.to_bytes()), settle).await
    }

    /// Durably records that this node owes the settlement of a receipt it does not store (a quorum round's).
    pub async fn owe_settlement(&self, id: Digest) -> Result<(), HubError> {
        self.write(id, None, true).await
    }

    /// Up to `limit` receipt ids this node still owes a settlement for.
    pub fn unsettled(&self, limit: usize) -> Result<Vec<Digest>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(UNSETTLED).map_err(db)?;
        let mut out = vec![];
        for row in table.iter().map_err(db)?.take(limit) {
            out.push(Digest(*row.map_err(db)?.0.value()));
        }
        Ok(out)
    }

    /// Durably moves `ids` (taken from [`ReceiptStore::unsettled`]) off the unsettled list into a new pending batch
    /// with `root`.
    pub fn create_batch(&self, root: &Digest, ids: &[Digest]) -> Result<(), HubError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut unsettled = tx.open_table(UNSETTLED).map_err(db)?;
            let mut members = tx.open_table(MEMBERS).map_err(db)?;
            for (i, id) in ids.iter().enumerate() {
                unsettled.remove(&id.0).map_err(db)?;
                let mut place = [0u8; 36];
                place[..32].copy_from_slice(&root.0);
                place[32..].copy_from_slice(&(i as u32).to_be_bytes());
                members.insert(&id.0, &place).map_err(db)?;
            }
            let bytes: Vec<u8> = ids.iter().flat_map(|d| d.0).collect();
            tx.open_table(BATCHES).map_err(db)?.insert(&root.0, bytes.as_slice()).map_err(db)?;
            tx.open_table(PENDING).map_err(db)?.insert(&root.0, 0).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// Batches the ledger has not recorded yet, with when each was last submitted (Unix ms; 0: never).
    pub fn pending_batches(&self) -> Result<Vec<(Digest, u64)>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(PENDING).map_err(db)?;
        let mut out = vec![];
        for row in table.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push((Digest(*k.value()), v.value()));
        }
        Ok(out)
    }

    /// Records when a pending batch was submitted (0: due again at once).
    pub fn batch_submitted(&self, root: &Digest, at_ms: u64) -> Result<(), HubError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(PENDING).map_err(db)?.insert(&root.0, at_ms).map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Marks batches as recorded by the ledger at these heights (no longer pending; their members stay, for
    /// anchors).
    pub fn batches_settled(&self, roots: &[(Digest, u64)]) -> Result<(), HubError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut pending = tx.open_table(PENDING).map_err(db)?;
            let mut settled = tx.open_table(SETTLED).map_err(db)?;
            for (root, height) in roots {
                pending.remove(&root.0).map_err(db)?;
                settled.insert(&root.0, height).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// The height at which the ledger recorded a batch of this node's, once seen.
    pub fn batch_height(&self, root: &Digest) -> Result<Option<u64>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(SETTLED).map_err(db)?;
        Ok(table.get(&root.0).map_err(db)?.map(|v| v.value()))
    }

    /// The members of a batch this node made, in leaf order.
    pub fn batch_members(&self, root: &Digest) -> Result<Option<Vec<Digest>>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(BATCHES).map_err(db)?;
        let Some(v) = table.get(&root.0).map_err(db)? else { return Ok(None) };
        let bytes = v.value();
        if !bytes.len().is_multiple_of(32) || bytes.is_empty() {
            return Err(HubError::Db(format!("stored batch {root} is corrupt")));
        }
        Ok(Some(bytes.chunks_exact(32).map(|c| Digest(c.try_into().expect("32 bytes"))).collect()))
    }

    /// Where a receipt this node batched sits: the batch root and its leaf index.
    pub fn batch_place(&self, id: &Digest) -> Result<Option<(Digest, u32)>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(MEMBERS).map_err(db)?;
        Ok(table.get(&id.0).map_err(db)?.map(|v| {
            let place = v.value();
            (Digest(place[..32].try_into().expect("32 bytes")), u32::from_be_bytes(place[32..].try_into().expect("4")))
        }))
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

    /// Receipts owed and not yet in a batch, batches pending, batches recorded.
    pub fn settlement_backlog(&self) -> Result<(u64, u64, u64), HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        Ok((
            tx.open_table(UNSETTLED).map_err(db)?.len().map_err(db)?,
            tx.open_table(PENDING).map_err(db)?.len().map_err(db)?,
            tx.open_table(SETTLED).map_err(db)?.len().map_err(db)?,
        ))
    }

    pub fn count(&self) -> Result<u64, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        tx.open_table(RECEIPTS).map_err(db)?.len().map_err(db)
    }
}
