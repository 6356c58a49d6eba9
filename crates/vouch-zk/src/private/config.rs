//! The hiding STARK configurations of private-input proofs: salted Merkle leaves, randomized trace and quotient
//! codewords, and the same FRI parameters and security as the public proofs.
//!
//! - **Version 2** ([`HidingConfig`], made now): Merkle leaves and nodes hashed with Keccak-f[1600] (a 136-byte-rate
//!   sponge over the field elements' bytes, 8 leaves at a time with AVX-512), Fiat-Shamir by a Keccak-256 hash
//!   challenger. About a quarter faster to prove and twice as fast to verify as version 1 on the bench models:
//!   hashing the hiding Merkle trees was 40-50% of proving with Poseidon2.
//! - **Version 1** ([`HidingConfigV1`], verified only, so receipts issued with it stay checkable): width-12 Poseidon2
//!   leaves (rate 8), width-8 Poseidon2 nodes and a Poseidon2 duplex challenger.
//!
//! Both have 256-bit digests (128-bit collision resistance). The private proofs are never recursed, so nothing needs
//! an arithmetization-friendly hash outside the circuit; the in-circuit commitments (input, hidden weights) stay
//! Poseidon2 (`commit.rs`).

use p3_challenger::{DuplexChallenger, HashChallenger, SerializingChallenger64};
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_fri::HidingFriPcs;
use p3_goldilocks::default_goldilocks_poseidon2_8;
use p3_keccak::{Keccak256Hash, KeccakF};
use p3_merkle_tree::MerkleTreeHidingMmcs;
use p3_symmetric::{CompressionFunctionFromHasher, PaddingFreeSponge, SerializingHasher, TruncatedPermutation};
use rand010::SeedableRng;
use rand010::rngs::StdRng;

use crate::{Challenge, Val};

type U64Hash = PaddingFreeSponge<KeccakF, 25, 17, 4>;
type Hash = SerializingHasher<U64Hash>;
type Compress = CompressionFunctionFromHasher<U64Hash, 2, 4>;
type HMmcs =
    MerkleTreeHidingMmcs<[Val; p3_keccak::VECTOR_LEN], [u64; p3_keccak::VECTOR_LEN], Hash, Compress, StdRng, 2, 4, 4>;
type HChallengeMmcs = ExtensionMmcs<Val, Challenge, HMmcs>;
type HPcs = HidingFriPcs<Val, Radix2DitParallel<Val>, HMmcs, HChallengeMmcs, StdRng>;
/// The hiding STARK configuration of version-2 private proofs (Keccak).
pub type HidingConfig =
    p3_uni_stark::StarkConfig<HPcs, Challenge, SerializingChallenger64<Val, HashChallenger<u8, Keccak256Hash, 32>>>;

type PermV1 = p3_goldilocks::Poseidon2Goldilocks<8>;
type HashV1 = PaddingFreeSponge<p3_goldilocks::Poseidon2Goldilocks<12>, 12, 8, 4>;
type CompressV1 = TruncatedPermutation<PermV1, 2, 4, 8>;
type HMmcsV1 = MerkleTreeHidingMmcs<
    <Val as p3_field::Field>::Packing,
    <Val as p3_field::Field>::Packing,
    HashV1,
    CompressV1,
    StdRng,
    2,
    4,
    4,
>;
type HChallengeMmcsV1 = ExtensionMmcs<Val, Challenge, HMmcsV1>;
type HPcsV1 = HidingFriPcs<Val, Radix2DitParallel<Val>, HMmcsV1, HChallengeMmcsV1, StdRng>;
/// The hiding STARK configuration of version-1 private proofs (Poseidon2), kept to verify them.
pub type HidingConfigV1 = p3_uni_stark::StarkConfig<HPcsV1, Challenge, DuplexChallenger<Val, PermV1, 8, 4>>;

/// Random codewords the hiding PCS mixes into each batch (at least the extension degree).
const RANDOM_CODEWORDS: usize = 4;
/// Smallest instance height: the hiding PCS needs `2 * (extension degree * opening points + queries)` = 116
/// random rows per committed trace, so every trace is at least this tall.
pub(crate) const MIN_HEIGHT: usize = 128;

/// The randomness of a configuration. `seed` makes it deterministic: only for the model setup, whose preprocessed
/// columns are public and must commit the same way on every machine. Proofs use fresh OS randomness.
fn rng(seed: Option<&str>, label: &str) -> StdRng {
    match seed {
        Some(s) => StdRng::from_seed(*blake3::Hasher::new_derive_key(s).update(label.as_bytes()).finalize().as_bytes()),
        None => rand010::make_rng(),
    }
}

/// The version-2 hiding configuration (see [`rng`] for `seed`).
pub fn hiding_config(seed: Option<&str>) -> HidingConfig {
    let u64_hash = U64Hash::new(KeccakF);
    let mmcs = |label| HMmcs::new(Hash::new(u64_hash), Compress::new(u64_hash), 0, rng(seed, label));
    let fri = crate::config::fri_parameters(HChallengeMmcs::new(mmcs("fri")));
    let pcs = HPcs::new(Radix2DitParallel::default(), mmcs("trace"), fri, RANDOM_CODEWORDS, rng(seed, "pcs"));
    HidingConfig::new(pcs, SerializingChallenger64::from_hasher(vec![], Keccak256Hash))
}

/// The version-1 hiding configuration (see [`rng`] for `seed`).
pub fn hiding_config_v1(seed: Option<&str>) -> HidingConfigV1 {
    let perm = default_goldilocks_poseidon2_8();
    let leaf = p3_goldilocks::default_goldilocks_poseidon2_12();
    let mmcs = |label| HMmcsV1::new(HashV1::new(leaf.clone()), CompressV1::new(perm.clone()), 0, rng(seed, label));
    let fri = crate::config::fri_parameters(HChallengeMmcsV1::new(mmcs("fri")));
    let pcs = HPcsV1::new(Radix2DitParallel::default(), mmcs("trace"), fri, RANDOM_CODEWORDS, rng(seed, "pcs"));
    HidingConfigV1::new(pcs, DuplexChallenger::new(perm))
}
