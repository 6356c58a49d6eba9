//! Vouch's core types (tensors, model ids, receipts) and their one canonical, versioned byte encoding.
//!
//! Everything that is hashed or signed in Vouch is encoded here, and only here. The encoding is
//! little-endian, length-prefixed and versioned; JSON is a view over the same values (see
//! [`receipt::ReceiptJson`] and [`tensor::TensorJson`]). Golden fixtures in `tests/golden` pin the bytes:
//! changing one is a deliberate format change.

pub mod canon;
pub mod digest;
pub mod model_id;
pub mod receipt;
pub mod signature;
pub mod tensor;
pub mod tx;

pub use canon::{DecodeError, Limits, Reader, Writer};
pub use digest::{Digest, domain};
pub use model_id::{ModelId, ModelIdError};
pub use receipt::{AgreementRule, Anchor, Evidence, Extension, Mode, Receipt, ReceiptBody, ReceiptJson};
pub use signature::{Dim, TensorSpec};
pub use tensor::{DType, Tensor, TensorData, TensorError, TensorMap};
