//! Receipts: settlement (the anchor of a receipt is its settling transaction).

use vouch_codec::Digest;

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
}
