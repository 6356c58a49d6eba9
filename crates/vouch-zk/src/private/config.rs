//! The hiding STARK configurations of private-input proofs: salted Merkle leaves, randomized trace and quotient
//! codewords.
//!
//! - **Versions 3 and 4** ([`HidingConfig`]; version 4, made now, changed only how instances are laid out): the Keccak commitments of version 2 with compact parameters
//!   ([`PRIVATE_SECURITY`]): FRI blowup 8 and 32 queries instead of blowup 4 and 54 (a query opens one row of every
//!   committed matrix, so the proof shrinks with the query count), folding by 8 down to a degree-4 final polynomial,
//!   2 random codewords per matrix (the extension degree, the least the hiding PCS accepts) and 2-element (128-bit)
//!   leaf salts. With version 3's byte range checks (`gadget::Range::Bytes`), proofs are 2.0-2.3x smaller than
//!   version 2's at about the same proving time (BENCHMARKS.md).
//! - **Version 2** ([`HidingConfigV2`], verified only): Merkle leaves and nodes hashed with Keccak-f[1600] (a
//!   136-byte-rate sponge over the field elements' bytes, 8 leaves at a time with AVX-512), Fiat-Shamir by a
//!   Keccak-256 hash challenger; the public proofs' FRI parameters ([`SECURITY`](crate::SECURITY)), 4 random
//!   codewords, 4-element salts.
//! - **Version 1** ([`HidingConfigV1`], verified only, so receipts issued with it stay checkable): width-12 Poseidon2
//!   leaves (rate 8), width-8 Poseidon2 nodes and a Poseidon2 duplex challenger; version 2's parameters.
//!
//! All have 256-bit digests (128-bit collision resistance). The private proofs are never recursed, so nothing needs
//! an arithmetization-friendly hash outside the circuit; the in-circuit commitments (input, hidden weights) stay
//! Poseidon2 (`commit.rs`).
//!
//! **Soundness.** Every version claims at least 100 bits in the *conjectured* FRI regime (the random-words
//! conjecture Plonky3 0.8's calculator uses; the ethSTARK estimate `queries * log_blowup + grinding` gives 116 bits
//! for versions 1-2 and 104 for version 3). In the *proven* regime (Johnson-bound list decoding, round by round) the
//! same parameters give far less (about 60 bits for version 2 and 50 for version 3): no parameter set here claims
//! proven 100-bit soundness, which would need about 2.5x the queries. `tests::plonky3_security_of_every_version`
//! computes both with Plonky3's calculator.

use p3_challenger::{DuplexChallenger, HashChallenger, SerializingChallenger64};
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_fri::{FriParameters, HidingFriPcs};
use p3_goldilocks::default_goldilocks_poseidon2_8;
use p3_keccak::{Keccak256Hash, KeccakF};
use p3_merkle_tree::MerkleTreeHidingMmcs;
use p3_symmetric::{CompressionFunctionFromHasher, PaddingFreeSponge, SerializingHasher, TruncatedPermutation};
use rand010::SeedableRng;
use rand010::rngs::StdRng;

use crate::config::SECURITY;
use crate::{Challenge, Security, Val};

type U64Hash = PaddingFreeSponge<KeccakF, 25, 17, 4>;
type Hash = SerializingHasher<U64Hash>;
type Compress = CompressionFunctionFromHasher<U64Hash, 2, 4>;
/// Keccak Merkle commitments with `SALT`-element leaf salts.
type KeccakMmcs<const SALT: usize> = MerkleTreeHidingMmcs<
    [Val; p3_keccak::VECTOR_LEN],
    [u64; p3_keccak::VECTOR_LEN],
    Hash,
    Compress,
    StdRng,
    2,
    4,
    SALT,
>;
type KeccakPcs<const SALT: usize> = HidingFriPcs<
    Val,
    Radix2DitParallel<Val>,
    KeccakMmcs<SALT>,
    ExtensionMmcs<Val, Challenge, KeccakMmcs<SALT>>,
    StdRng,
>;
type KeccakChallenger = SerializingChallenger64<Val, HashChallenger<u8, Keccak256Hash, 32>>;
/// The hiding STARK configuration of version-3 private proofs (Keccak, compact parameters).
pub type HidingConfig = p3_uni_stark::StarkConfig<KeccakPcs<2>, Challenge, KeccakChallenger>;
/// The hiding STARK configuration of version-2 private proofs (Keccak), kept to verify them.
pub type HidingConfigV2 = p3_uni_stark::StarkConfig<KeccakPcs<4>, Challenge, KeccakChallenger>;

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

/// FRI parameters of version-3 private proofs (stated in their headers): 104 conjectured bits by the ethSTARK
/// estimate, about 102 by the random-words one (see the module docs).
pub const PRIVATE_SECURITY: Security =
    Security { log_blowup: 3, num_queries: 32, query_pow_bits: 8, extension_degree: 2 };
/// Version 3's FRI folding: by `2^3` per round, down to a final polynomial of `2^2` coefficients.
const FOLD_LOG_ARITY: usize = 3;
const LOG_FINAL_POLY_LEN: usize = 2;
/// Random codewords the hiding PCS mixes into each matrix (at least the extension degree): version 3, versions 1-2.
const RANDOM_CODEWORDS: usize = 2;
const RANDOM_CODEWORDS_V2: usize = 4;
/// Smallest instance height: the hiding PCS needs `2 * (extension degree * opening points + queries)` random rows
/// per committed trace (72 for version 3, 116 for versions 1-2), so every trace is at least this tall.
pub(crate) const MIN_HEIGHT: usize = 128;

/// The FRI parameters of a private proof format version (`None`: no such version).
pub fn private_security(version: u16) -> Option<Security> {
    match version {
        1 | 2 => Some(SECURITY),
        3 | 4 => Some(PRIVATE_SECURITY),
        _ => None,
    }
}

/// The randomness of a configuration. `seed` makes it deterministic: only for the model setup, whose preprocessed
/// columns are public and must commit the same way on every machine. Proofs use fresh OS randomness.
fn rng(seed: Option<&str>, label: &str) -> StdRng {
    match seed {
        Some(s) => StdRng::from_seed(*blake3::Hasher::new_derive_key(s).update(label.as_bytes()).finalize().as_bytes()),
        None => rand010::make_rng(),
    }
}

/// Keccak leaf salting of the Merkle trees labelled `label`.
fn keccak_mmcs<const SALT: usize>(seed: Option<&str>, label: &str) -> KeccakMmcs<SALT> {
    let u64_hash = U64Hash::new(KeccakF);
    KeccakMmcs::new(Hash::new(u64_hash), Compress::new(u64_hash), 0, rng(seed, label))
}

/// Version 3's FRI parameters ([`PRIVATE_SECURITY`], folding by 8).
pub(crate) fn fri_parameters_v3<M>(mmcs: M) -> FriParameters<M> {
    let s = PRIVATE_SECURITY;
    FriParameters {
        log_blowup: s.log_blowup,
        log_final_poly_len: LOG_FINAL_POLY_LEN,
        max_log_arity: FOLD_LOG_ARITY,
        num_queries: s.num_queries,
        batch_proof_of_work_bits: 0,
        commit_proof_of_work_bits: 0,
        query_proof_of_work_bits: s.query_pow_bits,
        mmcs,
    }
}

/// The version-3 hiding configuration (see [`rng`] for `seed`).
pub fn hiding_config(seed: Option<&str>) -> HidingConfig {
    let fri = fri_parameters_v3(ExtensionMmcs::new(keccak_mmcs(seed, "fri")));
    let pcs = KeccakPcs::new(
        Radix2DitParallel::default(),
        keccak_mmcs(seed, "trace"),
        fri,
        RANDOM_CODEWORDS,
        rng(seed, "pcs"),
    );
    HidingConfig::new(pcs, SerializingChallenger64::from_hasher(vec![], Keccak256Hash))
}

/// The version-2 hiding configuration (see [`rng`] for `seed`).
pub fn hiding_config_v2(seed: Option<&str>) -> HidingConfigV2 {
    let fri = crate::config::fri_parameters(ExtensionMmcs::new(keccak_mmcs(seed, "fri")));
    let pcs = KeccakPcs::new(
        Radix2DitParallel::default(),
        keccak_mmcs(seed, "trace"),
        fri,
        RANDOM_CODEWORDS_V2,
        rng(seed, "pcs"),
    );
    HidingConfigV2::new(pcs, SerializingChallenger64::from_hasher(vec![], Keccak256Hash))
}

/// The version-1 hiding configuration (see [`rng`] for `seed`).
pub fn hiding_config_v1(seed: Option<&str>) -> HidingConfigV1 {
    let perm = default_goldilocks_poseidon2_8();
    let leaf = p3_goldilocks::default_goldilocks_poseidon2_12();
    let mmcs = |label| HMmcsV1::new(HashV1::new(leaf.clone()), CompressV1::new(perm.clone()), 0, rng(seed, label));
    let fri = crate::config::fri_parameters(HChallengeMmcsV1::new(mmcs("fri")));
    let pcs = HPcsV1::new(Radix2DitParallel::default(), mmcs("trace"), fri, RANDOM_CODEWORDS_V2, rng(seed, "pcs"));
    HidingConfigV1::new(pcs, DuplexChallenger::new(perm))
}
