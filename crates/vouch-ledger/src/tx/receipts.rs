//! Receipts: settlement (the anchor of a receipt is its settling transaction).

use vouch_codec::Digest;
use vouch_codec::tx::MAX_BATCH_RECEIPTS;

use crate::error::TxError;
use crate::state::{State, TxCtx};
use crate::types::Event;

impl State {
    /// `SettleReceipt`: records a receipt id once, with its settling node and height.
    pub(crate) fn settle_receipt(&mut self, c: &TxCtx<'_>, receipt: &Digest) -> Result<Vec<Event>, TxError> {
        if self.receipts.contains_key(receipt) {
            return Err(TxError::ReceiptSettled(receipt.to_hex()));
        }
        let needed = c.spend(0)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        self.receipts.insert(*receipt, (c.tx.from, c.block.height));
        Ok(vec![Event::ReceiptSettled { receipt: *receipt }])
    }

    /// `SettleBatch`: records a batch root once, with its settling node, height and member count. The members are
    /// not on the ledger: each one's anchor proves its place under the root, and binds the sender as its executor.
    pub(crate) fn settle_batch(&mut self, c: &TxCtx<'_>, root: &Digest, count: u32) -> Result<Vec<Event>, TxError> {
        if count == 0 || count > MAX_BATCH_RECEIPTS {
            return Err(TxError::BadBatch(format!("{count} members (1 to {MAX_BATCH_RECEIPTS})")));
        }
        if self.batches.contains_key(root) {
            return Err(TxError::BatchSettled(root.to_hex()));
        }
        let needed = c.spend(0)?;
        self.charge(c.tx.from, needed, c.tx.fee);
        self.batches.insert(*root, (c.tx.from, c.block.height, count));
        Ok(vec![Event::BatchSettled { root: *root, count }])
    }
}
