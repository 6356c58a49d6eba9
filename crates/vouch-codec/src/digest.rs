//! 32-byte blake3 digests, always computed under an explicit domain so that a hash of one kind of
//! object can never be confused with a hash of another.

use std::fmt;
use std::str::FromStr;

/// Domain-separation strings. Each names exactly one use; changing one is a format change.
pub mod domain {
    /// Receipt signatures: `ed25519(VOUCH_RECEIPT_V1 || receipt id)`.
    pub const RECEIPT_SIGNATURE: &str = "VOUCH_RECEIPT_V1";
    /// The receipt id: `blake3_derive_key(VOUCH_RECEIPT_ID_V1, canonical body)`.
    pub const RECEIPT_ID: &str = "VOUCH_RECEIPT_ID_V1";
    /// Digest of a canonical tensor map (receipt inputs and outputs).
    pub const TENSORS: &str = "VOUCH_TENSORS_V1";
    /// Transaction signatures: `ed25519(VOUCH_TX_V1 || tx id)`.
    pub const TX_SIGNATURE: &str = "VOUCH_TX_V1";
    /// The transaction id: `blake3_derive_key(VOUCH_TX_ID_V1, canonical body)`.
    pub const TX_ID: &str = "VOUCH_TX_ID_V1";
    /// A node key's proof of possession for its operator account: `ed25519(VOUCH_NODE_BIND_V1 || account)`.
    pub const NODE_BIND: &str = "VOUCH_NODE_BIND_V1";
    /// A consensus key's proof of possession for the account that bonds it as a validator:
    /// `ed25519(VOUCH_VALIDATOR_BIND_V1 || account)`.
    pub const VALIDATOR_BIND: &str = "VOUCH_VALIDATOR_BIND_V1";
    /// Job ids: `blake3_derive_key(VOUCH_JOB_V1, tx id)`.
    pub const JOB: &str = "VOUCH_JOB_V1";
    /// Executor selection: `blake3_derive_key(VOUCH_ASSIGN_V1, seed || job)`, read as an XOF.
    pub const ASSIGN: &str = "VOUCH_ASSIGN_V1";
    /// The ledger state root.
    pub const STATE: &str = "VOUCH_STATE_V1";
    /// An account's signature over a model push ([`crate::push_message`]).
    pub const PUSH_SIGNATURE: &str = "VOUCH_PUSH_V1";
}

/// A 32-byte digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// `blake3` in derive-key mode under `domain`, over `data`.
    pub fn of(domain: &str, data: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key(domain);
        h.update(data);
        Self(*h.finalize().as_bytes())
    }
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl FromStr for Digest {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }
}
