//! The proof systems' shared parameters: the field (Goldilocks, with a degree-2 extension for challenges), the
//! Poseidon2 Merkle commitments, FRI, and the security level stated in every proof header.

use p3_challenger::DuplexChallenger;
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_field::extension::BinomialExtensionField;
use p3_fri::{FriParameters, TwoAdicFriPcs};
use p3_goldilocks::{Goldilocks, Poseidon2Goldilocks, default_goldilocks_poseidon2_8};
use p3_merkle_tree::MerkleTreeMmcs;
use p3_symmetric::{PaddingFreeSponge, TruncatedPermutation};
use p3_uni_stark::StarkConfig;

/// The base field.
pub type Val = Goldilocks;
pub(crate) type Perm = Poseidon2Goldilocks<8>;
pub(crate) type Hash = PaddingFreeSponge<Perm, 8, 4, 4>;
pub(crate) type Compress = TruncatedPermutation<Perm, 2, 4, 8>;
pub(crate) type ValMmcs =
    MerkleTreeMmcs<<Val as p3_field::Field>::Packing, <Val as p3_field::Field>::Packing, Hash, Compress, 2, 4>;
pub(crate) type Challenge = BinomialExtensionField<Val, 2>;
pub(crate) type ChallengeMmcs = ExtensionMmcs<Val, Challenge, ValMmcs>;
pub(crate) type Challenger = DuplexChallenger<Val, Perm, 8, 4>;
pub(crate) type Pcs = TwoAdicFriPcs<Val, Radix2DitParallel<Val>, ValMmcs, ChallengeMmcs>;
/// The STARK configuration.
pub type Config = StarkConfig<Pcs, Challenge, Challenger>;

/// Security parameters, stated in every proof header.
pub const SECURITY: Security = Security { log_blowup: 2, num_queries: 54, query_pow_bits: 8, extension_degree: 2 };
/// Proof format version.
pub const PROOF_VERSION: u16 = 1;

/// FRI parameters of the proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Security {
    /// log2 of the FRI blowup.
    pub log_blowup: usize,
    /// FRI queries.
    pub num_queries: usize,
    /// Proof-of-work bits before the queries.
    pub query_pow_bits: usize,
    /// Degree of the challenge extension over Goldilocks.
    pub extension_degree: usize,
}

impl Security {
    /// Conjectured bits: `queries * log_blowup + grinding`.
    pub fn conjectured_bits(&self) -> usize {
        self.num_queries * self.log_blowup + self.query_pow_bits
    }
}

/// The STARK configuration with [`SECURITY`].
pub fn config() -> Config {
    let perm = default_goldilocks_poseidon2_8();
    let mmcs = ValMmcs::new(Hash::new(perm.clone()), Compress::new(perm.clone()), 0);
    let fri = fri_parameters(ChallengeMmcs::new(mmcs.clone()));
    Config::new(Pcs::new(Radix2DitParallel::default(), mmcs, fri), Challenger::new(perm))
}

/// FRI with [`SECURITY`]'s blowup, queries and grinding (both proof systems).
pub(crate) fn fri_parameters<M>(mmcs: M) -> FriParameters<M> {
    FriParameters {
        log_blowup: SECURITY.log_blowup,
        log_final_poly_len: 0,
        max_log_arity: 1,
        num_queries: SECURITY.num_queries,
        batch_proof_of_work_bits: 0,
        commit_proof_of_work_bits: 0,
        query_proof_of_work_bits: SECURITY.query_pow_bits,
        mmcs,
    }
}
