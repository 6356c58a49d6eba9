//! The on-disk index of a node: every finalized transaction's block height, index and result by id, and the state
//! root after every height, in a redb database next to the chain storage. The executed chain keeps only its recent
//! blocks' records, headers and roots in memory (and in its snapshots); older records and roots are read from here
//! and older headers from marshal's block archive, so memory and snapshots stay bounded as the chain grows. Each
//! block is written in one durable transaction; replaying a block after a restart writes the same values again.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use vouch_codec::{Digest, Limits, Reader, Writer};
use vouch_ledger::Event;

use crate::chain::TxRecord;

const TXS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("txs");
/// State root after each height.
const ROOTS: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("roots");

/// A redb-backed map from transaction id to [`TxRecord`].
#[derive(Debug)]
pub struct TxIndex {
    db: Database,
}

fn db_err(e: impl std::fmt::Display) -> String {
    format!("transaction index: {e}")
}

/// A record's bytes: height, index, then `0 ‖ events` or `1 ‖ error text`.
pub(crate) fn encode_record(w: &mut Writer, r: &TxRecord) {
    w.u64(r.height);
    w.u32(r.index);
    match &r.result {
        Ok(evs) => {
            w.u8(0);
            Event::encode_list(w, evs);
        }
        Err(e) => {
            w.u8(1);
            w.str(e);
        }
    }
}

pub(crate) fn decode_record(r: &mut Reader<'_>) -> Result<TxRecord, vouch_codec::DecodeError> {
    let height = r.u64("height")?;
    let index = r.u32("index")?;
    let result = match r.u8("result")? {
        0 => Ok(Event::decode_list(r)?),
        1 => Err(r.str("error")?.to_owned()),
        v => return Err(vouch_codec::DecodeError::InvalidValue { what: "result", value: v.into() }),
    };
    Ok(TxRecord { height, index, result })
}

impl TxIndex {
    /// Opens (creating) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(TXS).map_err(db_err)?;
        tx.open_table(ROOTS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Writes one block's state root and transaction records durably.
    pub fn put(&self, height: u64, root: &Digest, records: &[(Digest, TxRecord)]) -> Result<(), String> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            tx.open_table(ROOTS).map_err(db_err)?.insert(height, &root.0).map_err(db_err)?;
            let mut t = tx.open_table(TXS).map_err(db_err)?;
            for (id, rec) in records {
                let mut w = Writer::new();
                encode_record(&mut w, rec);
                t.insert(&id.0, w.finish().as_slice()).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// A record by transaction id.
    pub fn get(&self, id: &Digest) -> Result<Option<TxRecord>, String> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(TXS).map_err(db_err)?;
        let Some(v) = t.get(&id.0).map_err(db_err)? else { return Ok(None) };
        let limits = Limits { max_items: u64::from(u32::MAX), ..Limits::default() };
        let mut r = Reader::with_limits(v.value(), limits);
        decode_record(&mut r).map(Some).map_err(db_err)
    }

    /// The state root after `height`.
    pub fn root(&self, height: u64) -> Result<Option<Digest>, String> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(ROOTS).map_err(db_err)?;
        Ok(t.get(height).map_err(db_err)?.map(|v| Digest(*v.value())))
    }

    /// Records stored.
    pub fn len(&self) -> Result<u64, String> {
        let tx = self.db.begin_read().map_err(db_err)?;
        tx.open_table(TXS).map_err(db_err)?.len().map_err(db_err)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> Result<bool, String> {
        Ok(self.len()? == 0)
    }
}
