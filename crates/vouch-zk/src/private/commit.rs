//! The input commitment: an overwrite-mode Poseidon2 sponge (width 8, rate 4) over the salt, then the input,
//! `C = Sponge(salt, x)`. Hiding while the salt is secret (4 x 63 random bits); binding by Poseidon2's collision
//! resistance (~128 bits). The sponge instance proves it in-circuit with `p3-poseidon2-air`.

use p3_field::{PrimeCharacteristicRing, PrimeField64};
use p3_goldilocks::{
    GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_FINAL, GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_INITIAL,
    GOLDILOCKS_POSEIDON2_RC_8_INTERNAL, GenericPoseidon2LinearLayersGoldilocks, default_goldilocks_poseidon2_8,
};
use p3_poseidon2_air::{Poseidon2Air, RoundConstants, num_cols};
use p3_symmetric::Permutation;
use rand010::rngs::StdRng;

use crate::gadget::fe;
use crate::{Val, ZkError};

/// Width-8 Poseidon2 over Goldilocks with the crate's default constants, as an AIR.
pub(crate) type P2Air = Poseidon2Air<Val, GenericPoseidon2LinearLayersGoldilocks, 8, 7, 1, 4, 22>;
/// Its main columns.
pub(crate) const P2_COLS: usize = num_cols::<8, 7, 1, 4, 22>();

/// The permutation's round constants.
pub(crate) fn p2_constants() -> RoundConstants<Val, 8, 4, 22> {
    RoundConstants::new(
        GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_INITIAL,
        GOLDILOCKS_POSEIDON2_RC_8_INTERNAL,
        GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_FINAL,
    )
}

/// Domain tag in the input sponge's initial capacity.
pub(crate) const INPUT_TAG: u64 = 0x564f_5543_485f_494e; // "VOUCH_IN"
/// Domain tag in the hidden weights' sponge's initial capacity.
pub(crate) const WEIGHTS_TAG: u64 = 0x564f_5543_485f_5754; // "VOUCH_WT"

/// The initial capacity for `n` elements under domain `tag`.
pub(crate) fn sponge_iv(n: usize, tag: u64) -> [Val; 4] {
    [Val::ZERO, Val::ZERO, Val::from_u64(n as u64), Val::from_u64(tag)]
}

/// The permutation inputs of the sponge over `salt` then `x`: `[salt, iv]`, then `[x block, previous capacity]`
/// per block of 4 (the last block zero-padded; the length is fixed by the model). Returns them with the outputs.
pub(crate) fn sponge_states(x: &[Val], salt: [Val; 4], iv: [Val; 4]) -> (Vec<[Val; 8]>, [Val; 8]) {
    let perm = default_goldilocks_poseidon2_8();
    let mut state = [salt[0], salt[1], salt[2], salt[3], iv[0], iv[1], iv[2], iv[3]];
    let mut inputs = vec![state];
    perm.permute_mut(&mut state);
    for block in x.chunks(4) {
        let mut next = state;
        for (j, lane) in next.iter_mut().take(4).enumerate() {
            *lane = block.get(j).copied().unwrap_or(Val::ZERO);
        }
        inputs.push(next);
        state = next;
        perm.permute_mut(&mut state);
    }
    (inputs, state)
}

/// Commitment to an input: the first 4 elements of the final sponge state, as canonical u64s.
pub fn commit_input(x: &[i16], salt: &Salt) -> InputCommitment {
    let x: Vec<Val> = x.iter().map(|v| fe(i64::from(*v))).collect();
    let (_, out) = sponge_states(&x, salt.elems(), sponge_iv(x.len(), INPUT_TAG));
    InputCommitment(std::array::from_fn(|j| out[j].as_canonical_u64()))
}

/// Commitment to a model's hidden weights: the same sponge as the input's, under its own domain tag, over the
/// blocks of their [`WeightsLayout`](super::instance::WeightsLayout) (int8 weights packed 7 to an element).
pub(crate) fn commit_weights(blocks: &[[Val; 4]], salt: &Salt) -> WeightsCommitment {
    let (_, out) = sponge_states(blocks.as_flattened(), salt.elems(), sponge_iv(4 * blocks.len(), WEIGHTS_TAG));
    WeightsCommitment(std::array::from_fn(|j| out[j].as_canonical_u64()))
}

/// 4 little-endian u64s as 32 bytes.
fn to_bytes(v: &[u64; 4]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (chunk, e) in b.chunks_exact_mut(8).zip(v) {
        chunk.copy_from_slice(&e.to_le_bytes());
    }
    b
}

/// 32 bytes as 4 little-endian u64s, each a canonical field element.
fn from_bytes(b: &[u8; 32]) -> Option<[u64; 4]> {
    let mut v = [0u64; 4];
    for (e, chunk) in v.iter_mut().zip(b.chunks_exact(8)) {
        *e = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    v.iter().all(|e| *e < Val::ORDER_U64).then_some(v)
}

/// A salt: 4 canonical Goldilocks elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Salt(pub [u64; 4]);

impl Salt {
    /// A fresh random salt from 32 bytes of OS randomness (63 bits per element).
    pub fn random() -> Self {
        let mut rng: StdRng = rand010::make_rng();
        Self(std::array::from_fn(|_| rand010::RngExt::random::<u64>(&mut rng) >> 1))
    }
    /// Parses 64 hex characters (4 little-endian u64s, each below the Goldilocks prime).
    pub fn from_hex(s: &str) -> Result<Self, ZkError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).map_err(|_| ZkError::Input("a salt is 64 hex characters".into()))?;
        from_bytes(&b).map(Self).ok_or_else(|| ZkError::Input("a salt element is not below the field order".into()))
    }
    /// 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(to_bytes(&self.0))
    }
    pub(crate) fn elems(&self) -> [Val; 4] {
        self.0.map(Val::from_u64)
    }
}

/// A commitment to a private input (see [`commit_input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputCommitment(pub [u64; 4]);

impl InputCommitment {
    /// 32 bytes: 4 little-endian u64s.
    pub fn to_bytes(&self) -> [u8; 32] {
        to_bytes(&self.0)
    }
    /// Parses 32 bytes (each element canonical).
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        let b: &[u8; 32] = b.try_into().map_err(|_| ZkError::Malformed("an input commitment is 32 bytes".into()))?;
        from_bytes(b).map(Self).ok_or_else(|| ZkError::Malformed("an input commitment element is not canonical".into()))
    }
    /// 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
    pub(crate) fn elems(&self) -> Vec<Val> {
        self.0.iter().map(|e| Val::from_u64(*e)).collect()
    }
}

/// A commitment to a model's hidden weights: the public identity of a model pushed with private weights. Binding
/// (Poseidon2) and hiding while its salt, kept by the node that holds the weights, is secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WeightsCommitment(pub [u64; 4]);

impl WeightsCommitment {
    /// 64 hex characters (4 little-endian u64s).
    pub fn to_hex(&self) -> String {
        hex::encode(to_bytes(&self.0))
    }
    pub(crate) fn elems(&self) -> Vec<Val> {
        self.0.iter().map(|e| Val::from_u64(*e)).collect()
    }
}
