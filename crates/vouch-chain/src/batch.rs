//! Batched settlement: a node settles many receipts with one `SettleBatch` transaction carrying the root of a binary
//! Merkle tree over its members. A member's leaf binds the receipt id and its executor (the batch's sender); the
//! tree is commonware's [`bmt`] over SHA-256 (the same tree as a block's transactions), which hashes each leaf with
//! its position and finalizes the root with the leaf count, so neither can be changed under a fixed root.

use bytes::Bytes;
use commonware_codec::{Decode as _, Encode as _};
use commonware_cryptography::{Hasher, Sha256, sha256};
use commonware_storage::bmt;
use vouch_codec::Digest;
use vouch_codec::tx::Address;

use crate::block::digest_bytes;

/// Domain of a batch leaf.
pub const LEAF_DOMAIN: &[u8] = b"VOUCH_SETTLE_LEAF_V1";

/// Why a batch path does not place a receipt in a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not decode.
    #[error("malformed batch path: {0}")]
    Malformed(String),
    /// The path is for a batch of another size.
    #[error("batch path is for {found} members, the batch has {expected}")]
    CountMismatch {
        /// The settling transaction's count.
        expected: u32,
        /// The path's.
        found: u32,
    },
    /// The index is outside the batch.
    #[error("batch index {index} is outside the batch of {count}")]
    IndexOutOfRange {
        /// The anchor's index.
        index: u32,
        /// The batch's count.
        count: u32,
    },
    /// The path does not lead from the receipt's leaf to the root.
    #[error("the receipt's leaf does not lead to the batch root: {0}")]
    NotInBatch(String),
}

/// The leaf of receipt `receipt` executed by `executor`.
pub fn leaf(receipt: &Digest, executor: &Address) -> sha256::Digest {
    Sha256::hash(&[LEAF_DOMAIN, &receipt.0, executor])
}

/// A batch: its members in order, with the tree over them.
pub struct Batch {
    tree: bmt::Tree<sha256::Digest>,
    count: u32,
}

impl Batch {
    /// The batch of `receipts` (at least one, at most `u32::MAX - 1`), all executed by `executor`.
    pub fn new(receipts: &[Digest], executor: &Address) -> Self {
        assert!(!receipts.is_empty(), "a batch has members");
        let mut b = bmt::Builder::<Sha256>::new(receipts.len());
        for r in receipts {
            b.add(&leaf(r, executor));
        }
        Self { tree: b.build(), count: receipts.len() as u32 }
    }

    /// The root a `SettleBatch` names.
    pub fn root(&self) -> Digest {
        Digest(digest_bytes(&self.tree.root()))
    }

    /// Number of members.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The encoded path of member `index`.
    pub fn path(&self, index: u32) -> Option<Vec<u8>> {
        let proof = self.tree.proof(index).ok()?;
        Some(proof.encode().to_vec())
    }
}

/// Checks that `path` places receipt `receipt` executed by `executor` at `index` of the batch with `root` and
/// `count` members.
pub fn verify_path(
    receipt: &Digest,
    executor: &Address,
    index: u32,
    path: &[u8],
    root: &Digest,
    count: u32,
) -> Result<(), PathError> {
    let proof = bmt::Proof::<sha256::Digest>::decode_cfg(Bytes::copy_from_slice(path), &1)
        .map_err(|e| PathError::Malformed(e.to_string()))?;
    if proof.leaf_count != count {
        return Err(PathError::CountMismatch { expected: count, found: proof.leaf_count });
    }
    if index >= count {
        return Err(PathError::IndexOutOfRange { index, count });
    }
    proof
        .verify_element_inclusion::<Sha256>(&leaf(receipt, executor), index, &sha256::Digest::from(root.0))
        .map_err(|e| PathError::NotInBatch(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<Digest> {
        (0..n).map(|i| Digest([i; 32])).collect()
    }

    #[test]
    fn every_member_verifies_and_nothing_else_does() {
        let me = [7; 32];
        for n in [1u8, 2, 3, 5, 8, 13] {
            let members = ids(n);
            let b = Batch::new(&members, &me);
            for (i, r) in members.iter().enumerate() {
                let path = b.path(i as u32).unwrap();
                assert_eq!(verify_path(r, &me, i as u32, &path, &b.root(), n as u32), Ok(()));
                // Another executor, another receipt or another root: refused.
                assert!(matches!(
                    verify_path(r, &[8; 32], i as u32, &path, &b.root(), n as u32),
                    Err(PathError::NotInBatch(_))
                ));
                assert!(matches!(
                    verify_path(&Digest([99; 32]), &me, i as u32, &path, &b.root(), n as u32),
                    Err(PathError::NotInBatch(_))
                ));
                assert!(matches!(
                    verify_path(r, &me, i as u32, &path, &Digest([1; 32]), n as u32),
                    Err(PathError::NotInBatch(_))
                ));
                assert_eq!(
                    verify_path(r, &me, i as u32, &path, &b.root(), n as u32 + 1),
                    Err(PathError::CountMismatch { expected: n as u32 + 1, found: n as u32 })
                );
            }
            assert_eq!(
                verify_path(&members[0], &me, n as u32, &b.path(0).unwrap(), &b.root(), n as u32),
                Err(PathError::IndexOutOfRange { index: n as u32, count: n as u32 })
            );
        }
        assert!(matches!(
            verify_path(&Digest([0; 32]), &me, 0, &[1, 2], &Digest([0; 32]), 1),
            Err(PathError::Malformed(_))
        ));
    }
}
