//! ONNX model inspection and inference with tract: signatures, input validation, a bounded compiled-model cache.
//!
//! [`inspect`] reads a model's signature and operator list from the file with bounded memory (it streams
//! over the protobuf, skipping weights), so a 1 GB model is checked at upload without being loaded.
//! [`Engine`] is the seam to inference backends; [`TractEngine`] is the one backend today.
//! [`ModelCache`] compiles each model once and shares it across concurrent requests.

pub mod cache;
pub mod conformance;
pub mod convert;
pub mod inspect;
pub mod tract;
pub mod validate;

use std::path::Path;
use std::sync::Arc;

use vouch_codec::TensorMap;

pub use cache::ModelCache;
pub use inspect::{InspectError, ModelInfo, inspect};
pub use tract::{DEFAULT_MAX_ELEMENTS, TractEngine};
pub use validate::{InputError, validate_inputs};

/// Inference failures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The engine could not load or optimise the model.
    #[error("model cannot be compiled: {0}")]
    Compile(String),
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Run(String),
    /// The engine panicked; the panic was contained.
    #[error("engine fault (contained): {0}")]
    Panic(String),
    /// A tensor cannot be converted between the engine and Vouch.
    #[error("tensor {name:?}: {reason}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor of the run would exceed the engine's element limit (refused before it is allocated when its size
    /// follows from the input shapes or the op's inputs).
    #[error("node {node:?} would produce {elements} elements, above this node's limit of {max}")]
    TooLarge {
        /// The model node.
        node: String,
        /// Its output's element count.
        elements: u64,
        /// The limit.
        max: u64,
    },
}

/// An inference backend.
pub trait Engine: Send + Sync {
    /// Name and version, recorded in receipts (`tract-onnx 0.23.9`).
    fn id(&self) -> String;
    /// Loads and optimises the model at `path`, whose signature is `info`: for every input size when
    /// `shapes` is `None` (open dimensions stay symbolic), or for exactly the given input shapes.
    fn compile(
        &self,
        path: &Path,
        info: &ModelInfo,
        shapes: Option<&[Vec<u64>]>,
    ) -> Result<Arc<dyn CompiledModel>, EngineError>;
}

/// A model ready to run; shared by concurrent requests.
pub trait CompiledModel: Send + Sync {
    /// Runs on validated inputs; returns the outputs by name.
    fn run(&self, inputs: &TensorMap) -> Result<TensorMap, EngineError>;
}

/// Runs `f`, turning a panic into [`EngineError::Panic`]: third-party engines must not bring the node down.
pub(crate) fn contain<T>(f: impl FnOnce() -> Result<T, EngineError>) -> Result<T, EngineError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(EngineError::Panic(msg))
        }
    }
}
