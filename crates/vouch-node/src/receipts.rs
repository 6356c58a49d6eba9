//! Receipts issued by this node, by id, in their canonical encoding.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use vouch_codec::{Digest, Receipt};
use vouch_hub::HubError;

const RECEIPTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("receipts");

fn db(e: impl std::fmt::Display) -> HubError {
    HubError::Db(e.to_string())
}

pub(crate) struct ReceiptStore {
    db: Arc<Database>,
}

impl ReceiptStore {
    pub fn open(db: Arc<Database>) -> Result<Self, HubError> {
        let tx = db.begin_write().map_err(self::db)?;
        tx.open_table(RECEIPTS).map_err(self::db)?;
        tx.commit().map_err(self::db)?;
        Ok(Self { db })
    }

    pub fn put(&self, r: &Receipt) -> Result<(), HubError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(RECEIPTS)
            .map_err(db)?
            .insert(&r.id().0, r.to_bytes().as_slice())
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(())
    }

    pub fn get(&self, id: &Digest) -> Result<Option<Receipt>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(RECEIPTS).map_err(db)?;
        match table.get(&id.0).map_err(db)? {
            // Our own store holds only receipts we encoded; a decode failure means corruption.
            Some(v) => Receipt::from_bytes(v.value())
                .map(Some)
                .map_err(|e| HubError::Db(format!("stored receipt {id}: {e}"))),
            None => Ok(None),
        }
    }

    pub fn count(&self) -> Result<u64, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        tx.open_table(RECEIPTS).map_err(db)?.len().map_err(db)
    }
}
