//! Why proving or verifying failed.

/// Why proving or verifying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZkError {
    /// The model has a layer the prover does not handle yet.
    #[error("layer {layer} ({kind}) cannot be proven yet")]
    UnsupportedLayer {
        /// Layer index.
        layer: usize,
        /// Kind.
        kind: &'static str,
    },
    /// The input does not fit the model.
    #[error("input: {0}")]
    Input(String),
    /// The prover failed (a bug, or an inconsistent witness).
    #[error("proving layer {layer} failed: {reason}")]
    Prove {
        /// Layer index.
        layer: usize,
        /// What happened.
        reason: String,
    },
    /// The proof does not decode.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The proof was made for other parameters or another version.
    #[error("proof header mismatch: {0}")]
    Header(String),
    /// The claimed input or output differs from the proof's.
    #[error("the proof is for another {0}")]
    PublicMismatch(&'static str),
    /// A layer without parameters does not follow from its public input.
    #[error("layer {layer}: public activations are not the layer's function of its input")]
    LayerMismatch {
        /// Layer index.
        layer: usize,
    },
    /// A layer's STARK does not verify.
    #[error("layer {layer}: proof does not verify: {reason}")]
    LayerProof {
        /// Layer index.
        layer: usize,
        /// The verifier's error.
        reason: String,
    },
    /// The batch proof (private input) does not verify.
    #[error("proof does not verify{}: {reason}", .instance.as_ref().map(|i| format!(" ({i})")).unwrap_or_default())]
    Proof {
        /// The verifier's error.
        reason: String,
        /// The instance whose constraints fail, when the verifier can tell (`instance 2: linear, layer 0, ...`).
        instance: Option<String>,
    },
    /// The commitment does not match the model structure.
    #[error("model commitment mismatch: {0}")]
    Commitment(String),
}
