//! The ledger state on disk: the tables that grow with the number of users (accounts, models; see
//! [`vouch_ledger::Spill`]) and the checkpoint they belong to, in a redb database next to the chain storage.
//!
//! Every checkpoint (each `Timing::snapshot_every` executed blocks, and right after a state sync) writes, in one
//! durable transaction, the entries those tables changed since the previous one and the rest of the executed chain
//! (the ledger's resident tables, headers, roots: [`crate::snapshot::encode_local`]) with its height. Memory then
//! forgets the spilled entries, so it holds only what changed since the last checkpoint. At start the chain restores
//! the checkpoint, recomputes the state root from every entry (on disk and resident) and checks it against the root
//! recorded for that height, then replays the blocks after it from marshal's archive; a checkpoint that does not
//! check out is discarded with the tables (the chain replays from genesis: blocks stay in the archive).
//!
//! The root does not depend on this layout: validators with and without a store agree on it (tests run both).

use std::fmt::Display;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use vouch_ledger::{Backing, Write};

/// The checkpoint: height (big-endian) then the chain's local snapshot bytes.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHECKPOINT: &str = "checkpoint";
/// The checkpoint's height alone (big-endian), for status queries.
const HEIGHT: &str = "height";
/// redb's page cache for the store (its default is 1 GiB per database, which would make the cache, not the state,
/// what grows a node's memory).
pub const CACHE_BYTES: usize = 32 << 20;
/// The spilled tables (named by the ledger's codecs).
const TABLES: [&str; 2] = ["accounts", "models"];

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger store: {0}")]
pub struct StoreError(String);

fn fail<E: Display>(e: E) -> StoreError {
    StoreError(e.to_string())
}

/// A redb database holding the spilled ledger tables and the checkpoint they belong to.
#[derive(Debug)]
pub struct StateStore {
    db: Database,
}

impl StateStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path).map_err(fail)?;
        let tx = db.begin_write().map_err(fail)?;
        tx.open_table(META).map_err(fail)?;
        for name in TABLES {
            tx.open_table(table(name)).map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        Ok(Self { db })
    }

    /// The last checkpoint: its height and the chain's local snapshot bytes.
    pub fn checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(fail)?;
        let t = tx.open_table(META).map_err(fail)?;
        let Some(v) = t.get(CHECKPOINT).map_err(fail)? else { return Ok(None) };
        let v = v.value();
        let Some((h, rest)) = v.split_first_chunk::<8>() else {
            return Err(StoreError("the checkpoint record is truncated".into()));
        };
        Ok(Some((u64::from_be_bytes(*h), rest.to_vec())))
    }

    /// The last checkpoint's height.
    pub fn checkpoint_height(&self) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(fail)?;
        let t = tx.open_table(META).map_err(fail)?;
        let Some(v) = t.get(HEIGHT).map_err(fail)? else { return Ok(None) };
        let h: [u8; 8] = v.value().try_into().map_err(|_| StoreError("the checkpoint height is not 8 bytes".into()))?;
        Ok(Some(u64::from_be_bytes(h)))
    }

    /// Writes a checkpoint durably: the changed entries of each spilled table, and the chain's local snapshot at
    /// `height`.
    pub fn put(&self, height: u64, writes: &[(&'static str, Vec<Write>)], snapshot: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(fail)?;
        for (name, entries) in writes {
            if !TABLES.contains(name) {
                return Err(StoreError(format!("no spilled table named {name}")));
            }
            let mut t = tx.open_table(table(name)).map_err(fail)?;
            for (k, v) in entries {
                match v {
                    Some(v) => t.insert(k.as_slice(), v.as_slice()).map(|_| ()),
                    None => t.remove(k.as_slice()).map(|_| ()),
                }
                .map_err(fail)?;
            }
        }
        let mut record = height.to_be_bytes().to_vec();
        record.extend_from_slice(snapshot);
        let mut meta = tx.open_table(META).map_err(fail)?;
        meta.insert(CHECKPOINT, record.as_slice()).map_err(fail)?;
        meta.insert(HEIGHT, height.to_be_bytes().as_slice()).map_err(fail)?;
        drop(meta);
        tx.commit().map_err(fail)
    }

    /// Empties the store (no checkpoint, no entries): before the chain moves a state held wholly in memory onto it.
    pub fn reset(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(fail)?;
        let mut meta = tx.open_table(META).map_err(fail)?;
        meta.remove(CHECKPOINT).map_err(fail)?;
        meta.remove(HEIGHT).map_err(fail)?;
        drop(meta);
        for name in TABLES {
            let def = table(name);
            tx.delete_table(def).map_err(fail)?;
            tx.open_table(def).map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    /// Entries of a spilled table on disk.
    pub fn len(&self, name: &str) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(fail)?;
        tx.open_table(table(name)).map_err(fail)?.len().map_err(fail)
    }

    /// Whether every spilled table is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        for name in TABLES {
            if self.len(name)? > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Backing for StateStore {
    fn get(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let read = || -> Result<Option<Vec<u8>>, StoreError> {
            let tx = self.db.begin_read().map_err(fail)?;
            let t = tx.open_table(table(name)).map_err(fail)?;
            Ok(t.get(key).map_err(fail)?.map(|v| v.value().to_vec()))
        };
        read().map_err(|e| e.to_string())
    }

    fn scan(&self, name: &str, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), String> {
        let mut read = || -> Result<(), StoreError> {
            let tx = self.db.begin_read().map_err(fail)?;
            let t = tx.open_table(table(name)).map_err(fail)?;
            for entry in t.iter().map_err(fail)? {
                let (k, v) = entry.map_err(fail)?;
                f(k.value(), v.value());
            }
            Ok(())
        };
        read().map_err(|e| e.to_string())
    }
}
