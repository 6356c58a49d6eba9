//! Transparent STARK proofs (Plonky3) that a quantized model produced an output.
//!
//! Two proof systems over one field and security level ([`config`]):
//! - [`public`] (the default `--mode zk`): the input, the output and every activation are public; each Dense/Conv
//!   layer has one uni-STARK with its parameters as preprocessed columns, and the verifier re-executes the other
//!   layers on the public activations.
//! - [`private`] (`--private-input`): one zero-knowledge batch STARK over a hiding PCS proves the whole model on a
//!   committed input; every activation stays hidden.
//!
//! Parameters: Goldilocks with a degree-2 extension (128-bit challenges), Poseidon2 Merkle trees, FRI with
//! blowup 4 (`log_blowup = 2`), 54 queries and 8 bits of query grinding: 54 * 2 + 8 = 116 bits by the
//! usual conjectured FRI estimate (see [`SECURITY`]). No trusted setup. Weights are bound, not hidden.
//!
//! Layout: `config.rs` (field, hashes, FRI, security), `gadget.rs` (bit decompositions, the requantization gadget),
//! `rows.rs` (the row layout of a linear layer), `structure.rs` (public structure, its digest and limits),
//! `public/` (layer AIR, prover, verifier, evidence), `private/` (input commitment, plan, one file per instance,
//! prover, verifier).

pub mod config;
mod error;
pub mod gadget;
pub mod private;
pub mod public;
mod rows;
mod structure;

pub(crate) use config::Challenge;
pub use config::{Config, PROOF_VERSION, SECURITY, Security, Val, config};
pub use error::ZkError;

/// The public zk proof system and its parameters, as reports name it for people.
pub const SYSTEM_DESCRIPTION: &str = "Plonky3 uni-STARK over Goldilocks, FRI blowup 4, 54 queries, 8 grinding bits";
pub use public::{
    Evidence, ModelCommitment, ModelProof, Progress, Prover, SYSTEM, commit, prove, verify, verify_evidence,
};
pub use structure::public_structure;
