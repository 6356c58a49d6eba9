//! The on-disk index of a node: every finalized transaction's block height, index and result by id, and the state
//! root after every height, in a redb database next to the chain storage. The executed chain keeps only its recent
//! blocks' records, headers and roots in memory (and in its snapshots); older records and roots are read from here
//! and older headers from marshal's block archive, so memory and snapshots stay bounded as the chain grows. Each
//! block is written in one durable transaction; replaying a block after a restart writes the same values again.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use vouch_codec::{Canonical, DecodeError, Digest, Limits, Reader, Writer};

use crate::record::TxRecord;

const TXS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("txs");
/// State root after each height.
const ROOTS: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("roots");

/// redb's page cache for the index.
const CACHE_BYTES: usize = 16 << 20;

/// A redb-backed map from transaction id to [`TxRecord`].
#[derive(Debug)]
pub struct TxIndex {
    db: Database,
}

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed.
    #[error("transaction index: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not decode.
    #[error("transaction index: {0}")]
    Decode(#[from] DecodeError),
}

/// Each of redb's error types into [`IndexError::Db`].
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl TxIndex {
    /// Opens (creating) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        // A bounded page cache (redb's default is 1 GiB): old records are read rarely (a resubmitted or queried old
        // transaction).
        let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(TXS)?;
        tx.open_table(ROOTS)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Writes one block's state root and transaction records durably.
    pub fn put(&self, height: u64, root: &Digest, records: &[(Digest, TxRecord)]) -> Result<(), IndexError> {
        let tx = self.db.begin_write()?;
        {
            tx.open_table(ROOTS)?.insert(height, &root.0)?;
            let mut t = tx.open_table(TXS)?;
            for (id, rec) in records {
                let mut w = Writer::new();
                rec.encode(&mut w);
                t.insert(&id.0, w.finish().as_slice())?;
            }
        }
        Ok(tx.commit()?)
    }

    /// A record by transaction id.
    pub fn get(&self, id: &Digest) -> Result<Option<TxRecord>, IndexError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TXS)?;
        let Some(v) = t.get(&id.0)? else { return Ok(None) };
        let limits = Limits { max_items: u64::from(u32::MAX), ..Limits::default() };
        let mut r = Reader::with_limits(v.value(), limits);
        Ok(Some(TxRecord::decode(&mut r)?))
    }

    /// The state root after `height`.
    pub fn root(&self, height: u64) -> Result<Option<Digest>, IndexError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ROOTS)?;
        Ok(t.get(height)?.map(|v| Digest(*v.value())))
    }

    /// Records stored.
    pub fn len(&self) -> Result<u64, IndexError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(TXS)?.len()?)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        Ok(self.len()? == 0)
    }
}
