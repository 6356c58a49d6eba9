//! The hiding STARK configuration of private-input proofs: salted Merkle leaves (width-12 Poseidon2, rate 8),
//! randomized trace and quotient codewords, and the same FRI parameters and security as the public proofs.

use p3_challenger::DuplexChallenger;
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_fri::HidingFriPcs;
use p3_goldilocks::default_goldilocks_poseidon2_8;
use p3_merkle_tree::MerkleTreeHidingMmcs;
use p3_symmetric::{PaddingFreeSponge, TruncatedPermutation};
use rand010::SeedableRng;
use rand010::rngs::StdRng;

use crate::{Challenge, Val};

pub(crate) type Perm = p3_goldilocks::Poseidon2Goldilocks<8>;
type Hash = PaddingFreeSponge<p3_goldilocks::Poseidon2Goldilocks<12>, 12, 8, 4>;
type Compress = TruncatedPermutation<Perm, 2, 4, 8>;
type HMmcs = MerkleTreeHidingMmcs<
    <Val as p3_field::Field>::Packing,
    <Val as p3_field::Field>::Packing,
    Hash,
    Compress,
    StdRng,
    2,
    4,
    4,
>;
type HChallengeMmcs = ExtensionMmcs<Val, Challenge, HMmcs>;
type HPcs = HidingFriPcs<Val, Radix2DitParallel<Val>, HMmcs, HChallengeMmcs, StdRng>;
/// The hiding STARK configuration.
pub type HidingConfig = p3_uni_stark::StarkConfig<HPcs, Challenge, DuplexChallenger<Val, Perm, 8, 4>>;

/// Random codewords the hiding PCS mixes into each batch (at least the extension degree).
const RANDOM_CODEWORDS: usize = 4;
/// Smallest instance height: the hiding PCS needs `2 * (extension degree * opening points + queries)` = 116
/// random rows per committed trace, so every trace is at least this tall.
pub(crate) const MIN_HEIGHT: usize = 128;

/// The hiding configuration. `seed` makes its randomness deterministic: only for the model setup, whose
/// preprocessed columns are public and must commit the same way on every machine. Proofs use fresh OS randomness.
pub fn hiding_config(seed: Option<&str>) -> HidingConfig {
    let rng = |label: &str| match seed {
        Some(s) => StdRng::from_seed(*blake3::Hasher::new_derive_key(s).update(label.as_bytes()).finalize().as_bytes()),
        None => rand010::make_rng(),
    };
    let perm = default_goldilocks_poseidon2_8();
    let leaf = p3_goldilocks::default_goldilocks_poseidon2_12();
    let mmcs = |label| HMmcs::new(Hash::new(leaf.clone()), Compress::new(perm.clone()), 0, rng(label));
    let fri = crate::config::fri_parameters(HChallengeMmcs::new(mmcs("fri")));
    let pcs = HPcs::new(Radix2DitParallel::default(), mmcs("trace"), fri, RANDOM_CODEWORDS, rng("pcs"));
    HidingConfig::new(pcs, DuplexChallenger::new(perm))
}
