//! Vouch's core types (tensors, model ids, receipts, transactions) and their one canonical, versioned byte
//! encoding.
//!
//! Every structure that is hashed or signed implements [`Canonical`] with this crate's [`Writer`] and [`Reader`]:
//! the ones here, and in other crates the ledger's genesis, records and events (`vouch-ledger`) and the chain's
//! headers, blocks and transaction records (`vouch-chain`; a block's bytes are also its commonware-codec encoding,
//! which consensus needs). The encoding is little-endian, length-prefixed and versioned; JSON is a view over the
//! same values (see [`receipt::ReceiptJson`] and [`tensor::TensorJson`]). The zk artefacts that receipts carry
//! (structure, commitments, proofs) are `vouch-zk`'s own postcard bytes, opaque here. Golden fixtures pin the bytes
//! (`vouch-receipt`, `vouch-chain` and `vouch-zk` tests): changing one is a deliberate format change.

pub mod canon;
pub mod digest;
pub mod model_id;
pub mod receipt;
pub mod signature;
pub mod tee;
pub mod tensor;
pub mod tx;

pub use canon::{Canonical, DecodeError, Limits, Reader, Writer};
pub use digest::{Digest, domain};
pub use model_id::{ModelId, ModelIdError};
pub use receipt::{AgreementRule, Anchor, BatchPath, Evidence, Extension, Mode, Receipt, ReceiptBody, ReceiptJson};
pub use signature::{Dim, TensorSpec};
pub use tee::{PlatformReport, TeeEvidence};
pub use tensor::{DType, Tensor, TensorData, TensorError, TensorMap};

/// What an account signs to push a model version: the repository name, the version asked for (empty for "next"),
/// and the model id of the bytes. A model name belongs to the account whose signed push created it.
pub fn push_message(name: &str, version: Option<&str>, model: &ModelId) -> Vec<u8> {
    let mut w = Writer::new();
    w.str(name);
    w.str(version.unwrap_or(""));
    w.bytes(&model.to_cid_bytes());
    w.finish()
}
