//! Accounts: transfers.

use vouch_codec::tx::Address;

use crate::error::TxError;
use crate::state::{State, TxCtx};
use crate::types::Event;

impl State {
    /// `Transfer`: moves `amount` (non-zero) from the sender to `to`.
    pub(crate) fn transfer(&mut self, c: &TxCtx<'_>, to: &Address, amount: u64) -> Result<Vec<Event>, TxError> {
        if amount == 0 {
            return Err(TxError::InvalidAmount);
        }
        let needed = c.spend(amount)?;
        if *to != c.tx.from && self.account(to).balance.checked_add(amount).is_none() {
            return Err(TxError::InvalidAmount);
        }
        self.charge(c.tx.from, needed, c.tx.fee);
        self.accounts.entry_or_default(*to).balance += amount;
        Ok(vec![])
    }
}
