//! Signatures already verified, so a transaction is checked once per node instead of at submission, gossip, every
//! proposal over it, block verification and execution.

use std::collections::HashSet;

use vouch_codec::Digest;
use vouch_codec::tx::SignedTx;

/// Verified `(transaction id, signature)` pairs, keyed by `blake3(id ‖ signature)`. Two generations of at most
/// [`VerifiedCache::GENERATION`] entries bound the memory.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
}

impl VerifiedCache {
    const GENERATION: usize = 1 << 18;

    /// The cache key of a signed transaction: its id with its signature, so a forged copy never hits.
    pub fn key(stx: &SignedTx, id: &Digest) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&id.0);
        h.update(&stx.signature);
        *h.finalize().as_bytes()
    }

    pub fn contains(&self, k: &[u8; 32]) -> bool {
        self.current.contains(k) || self.previous.contains(k)
    }

    pub fn insert(&mut self, k: [u8; 32]) {
        if self.current.len() >= Self::GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(k);
    }
}
