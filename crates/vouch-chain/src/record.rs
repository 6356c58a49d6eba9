//! What a finalized transaction did, and that record's bytes (the on-disk index and snapshots store it).

use vouch_codec::{Canonical, DecodeError, Reader, Writer};
use vouch_ledger::Event;

/// Where a finalized transaction landed and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Height of its block.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
    /// Its effects, or why its action failed (the ledger's error, as text; see `vouch_ledger::State::execute`: a
    /// failed action still pays its fee and consumes its nonce; a transaction failing signature, nonce or fee checks
    /// changes nothing).
    pub result: Result<Vec<Event>, String>,
}

/// Height, index, then `0 ‖ events` or `1 ‖ error text`.
impl Canonical for TxRecord {
    const WHAT: &'static str = "transaction record";

    fn encode(&self, w: &mut Writer) {
        w.u64(self.height);
        w.u32(self.index);
        match &self.result {
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

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let height = r.u64("height")?;
        let index = r.u32("index")?;
        let result = match r.u8("result")? {
            0 => Ok(Event::decode_list(r)?),
            1 => Err(r.str("error")?.to_owned()),
            v => return Err(DecodeError::InvalidValue { what: "result", value: v.into() }),
        };
        Ok(Self { height, index, result })
    }
}
