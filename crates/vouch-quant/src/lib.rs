//! Quantization of float ONNX models to an exact integer graph, and the integer executor that defines its result.
//!
//! The zk path proves an integer computation, so its semantics come first: [`parse`] reads a float ONNX model
//! (the supported op subset, refusing anything else by name) into a chain of [`FloatLayer`]s;
//! [`quantize`] turns it, with calibration inputs, into a [`QGraph`]: int8 weights (int16 where int8 changes the argmax) with per-output-channel
//! scales, int16 activations with per-tensor scales, i64 accumulators, requantization by an integer
//! multiply and a rounding shift (half away from zero) with clamping, ReLU fused as a clamp, sigmoid/tanh as
//! lookup tables and softmax as an exp table plus an integer division. [`QGraph::run`] is the one definition
//! of the result; the prover proves exactly that. [`Report`] compares it with the float model.

mod exec;
mod float;
mod onnx;
mod quantize;

pub use exec::{
    EXP_BITS, QGraph, QLayer, Requant, TABLE_BUCKETS, TABLE_DIRECT, TABLE_SHIFT, rshift_round, table_index,
};
pub use float::{FloatGraph, FloatLayer, Pool};
pub use onnx::{SUPPORTED_OPS, parse};
pub use quantize::{Report, quantize, quantize_with};

/// `count` deterministic pseudo-random inputs of `n` values in [-1, 1) (xorshift64 from `seed`): calibration
/// sets and test inputs that are the same on every machine.
pub fn seeded_inputs(n: usize, count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
                })
                .collect()
        })
        .collect()
}

/// Why a model cannot go on the zk path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// Not a readable ONNX model.
    #[error("not a valid ONNX model: {0}")]
    Malformed(String),
    /// An operator outside the zk op set.
    #[error("operator {op} (node {node:?}) is not supported on the zk path")]
    UnsupportedOp {
        /// The op type.
        op: String,
        /// The node name.
        node: String,
    },
    /// A supported operator with an unsupported configuration.
    #[error("node {node:?} ({op}): {reason}")]
    Unsupported {
        /// The op type.
        op: String,
        /// The node name.
        node: String,
        /// What is not supported.
        reason: String,
    },
    /// The graph is not a single chain from one input to one output.
    #[error("graph shape not supported: {0}")]
    Topology(String),
    /// Calibration problems.
    #[error("calibration: {0}")]
    Calibration(String),
    /// An accumulator could overflow.
    #[error("layer {layer}: worst-case accumulator {bound} does not fit the requantization arithmetic")]
    Overflow {
        /// Layer index.
        layer: usize,
        /// Worst-case |accumulator|.
        bound: i128,
    },
    /// An input of the wrong size.
    #[error("input has {found} elements, the graph expects {expected}")]
    InputSize {
        /// Expected elements.
        expected: usize,
        /// Given elements.
        found: usize,
    },
}
