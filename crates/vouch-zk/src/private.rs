//! Zero-knowledge proofs of inference on a private input.
//!
//! Statement: for the public output `y` and the public input commitment `C`, there are an int16 input `x` and
//! a salt `s` with `C = commit_input(x, s)` such that the committed model's integer executor maps `x` to `y`.
//!
//! One batch STARK (`p3-batch-stark`) proves the whole model over a hiding PCS (`HidingFriPcs`: salted Merkle
//! leaves, randomized traces and quotient). Every activation, the input and the salt live only in hidden main
//! traces. Instances are linked by LogUp buses, one bus per activation: the instance producing an activation
//! provides `(index, value)` with a hidden multiplicity; every reader looks its taps up.
//!
//! | instance | rows | proves |
//! |---|---|---|
//! | input | input elements | each `x_i` is in `[-32767, 32767]`; provides bus `a0` |
//! | sponge | Poseidon2 permutations | `C` is the overwrite-mode sponge of `(s, x)` (`p3-poseidon2-air`) |
//! | linear, one per Dense / Conv / AveragePool | outputs | `y = clamp(requant(b + sum w x))` ([`Rq`]), taps looked up |
//! | output | output elements | the last activation equals the public `y` |
//!
//! Weights, biases and multipliers are preprocessed columns: bound by the model's [`PrivateCommitment`], not
//! hidden (models are public on the hub). Reshape/Flatten only rename a bus. Other layers (standalone ReLU,
//! MaxPool, Affine, lookup tables, Softmax) are refused with their name until they have an instance.

use std::borrow::Cow;

use p3_air::{Air, AirBuilder, BaseAir, WindowAccess};
use p3_batch_stark::common::{GlobalPreprocessed, PreprocessedInstanceMeta};
use p3_batch_stark::{BatchProof, BatchVerificationError, ProverData, StarkInstance, VerificationError};
use p3_challenger::DuplexChallenger;
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_field::{PrimeCharacteristicRing, PrimeField64};
use p3_fri::HidingFriPcs;
use p3_goldilocks::{
    GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_FINAL, GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_INITIAL,
    GOLDILOCKS_POSEIDON2_RC_8_INTERNAL, GenericPoseidon2LinearLayersGoldilocks, default_goldilocks_poseidon2_8,
};
use p3_lookup::{Count, InteractionBuilder};
use p3_matrix::dense::RowMajorMatrix;
use p3_merkle_tree::MerkleTreeHidingMmcs;
use p3_poseidon2_air::{Poseidon2Air, RoundConstants, generate_trace_rows, num_cols};
use p3_symmetric::{PaddingFreeSponge, Permutation, TruncatedPermutation};
use rand010::SeedableRng;
use rand010::rngs::StdRng;
use vouch_quant::{QGraph, QLayer};

use crate::air::{Rq, bits, fe, put_bits};
use crate::{Challenge, LinearRows, PROOF_VERSION, SECURITY, Security, Val, ZkError, linear_rows, structure_digest};

type Perm = p3_goldilocks::Poseidon2Goldilocks<8>;
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

/// Proof system name recorded in receipts for private-input proofs.
pub const PRIVATE_SYSTEM: &str = "vouch-zk/plonky3-0.8-goldilocks-private-v1";
/// Random codewords the hiding PCS mixes into each batch (at least the extension degree).
const RANDOM_CODEWORDS: usize = 4;
/// Smallest instance height: the hiding PCS needs `2 * (extension degree * opening points + queries)` = 116
/// random rows per committed trace, so every trace is at least this tall.
const MIN_HEIGHT: usize = 128;

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
    let fri = crate::fri_parameters(HChallengeMmcs::new(mmcs("fri")));
    let pcs = HPcs::new(Radix2DitParallel::default(), mmcs("trace"), fri, RANDOM_CODEWORDS, rng("pcs"));
    HidingConfig::new(pcs, DuplexChallenger::new(perm))
}

// ---------------------------------------------------------------------------------------------------------------
// Input commitment: an overwrite-mode Poseidon2 sponge (width 8, rate 4) over the salt, then the input.

/// Width-8 Poseidon2 over Goldilocks with the crate's default constants, as an AIR.
type P2Air = Poseidon2Air<Val, GenericPoseidon2LinearLayersGoldilocks, 8, 7, 1, 4, 22>;
const P2_COLS: usize = num_cols::<8, 7, 1, 4, 22>();

fn p2_constants() -> RoundConstants<Val, 8, 4, 22> {
    RoundConstants::new(
        GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_INITIAL,
        GOLDILOCKS_POSEIDON2_RC_8_INTERNAL,
        GOLDILOCKS_POSEIDON2_RC_8_EXTERNAL_FINAL,
    )
}

/// Domain tag in the sponge's initial capacity.
const SPONGE_TAG: u64 = 0x564f_5543_485f_494e; // "VOUCH_IN"

/// The initial capacity for an input of `n` elements.
fn sponge_iv(n: usize) -> [Val; 4] {
    [Val::ZERO, Val::ZERO, Val::from_u64(n as u64), Val::from_u64(SPONGE_TAG)]
}

/// The permutation inputs of the sponge over `salt` then `x`: `[salt, iv]`, then `[x block, previous capacity]`
/// per block of 4 (the last block zero-padded; the length is fixed by the model). Returns them with the outputs.
fn sponge_states(x: &[i16], salt: [Val; 4]) -> (Vec<[Val; 8]>, [Val; 8]) {
    let perm = default_goldilocks_poseidon2_8();
    let iv = sponge_iv(x.len());
    let mut state = [salt[0], salt[1], salt[2], salt[3], iv[0], iv[1], iv[2], iv[3]];
    let mut inputs = vec![state];
    perm.permute_mut(&mut state);
    for block in x.chunks(4) {
        let mut next = state;
        for (j, lane) in next.iter_mut().take(4).enumerate() {
            *lane = block.get(j).map(|v| fe(i64::from(*v))).unwrap_or(Val::ZERO);
        }
        inputs.push(next);
        state = next;
        perm.permute_mut(&mut state);
    }
    (inputs, state)
}

/// Commitment to an input: the first 4 elements of the final sponge state, as canonical u64s. Hiding while the
/// salt is secret (4 x 63 random bits); binding by Poseidon2's collision resistance (~128 bits).
pub fn commit_input(x: &[i16], salt: &Salt) -> InputCommitment {
    let (_, out) = sponge_states(x, salt.elems());
    InputCommitment(std::array::from_fn(|j| out[j].as_canonical_u64()))
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
        let b = hex_32(s).ok_or_else(|| ZkError::Input("a salt is 64 hex characters".into()))?;
        let v: [u64; 4] = std::array::from_fn(|j| u64::from_le_bytes(b[8 * j..8 * j + 8].try_into().expect("8")));
        if v.iter().any(|e| *e >= Val::ORDER_U64) {
            return Err(ZkError::Input("a salt element is not below the field order".into()));
        }
        Ok(Self(v))
    }
    /// 64 hex characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
    fn elems(&self) -> [Val; 4] {
        self.0.map(Val::from_u64)
    }
}

/// A commitment to a private input (see [`commit_input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputCommitment(pub [u64; 4]);

impl InputCommitment {
    /// 32 bytes: 4 little-endian u64s.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (j, e) in self.0.iter().enumerate() {
            b[8 * j..8 * j + 8].copy_from_slice(&e.to_le_bytes());
        }
        b
    }
    /// Parses 32 bytes (each element canonical).
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        let b: [u8; 32] = b.try_into().map_err(|_| ZkError::Malformed("an input commitment is 32 bytes".into()))?;
        let v: [u64; 4] = std::array::from_fn(|j| u64::from_le_bytes(b[8 * j..8 * j + 8].try_into().expect("8")));
        if v.iter().any(|e| *e >= Val::ORDER_U64) {
            return Err(ZkError::Malformed("an input commitment element is not canonical".into()));
        }
        Ok(Self(v))
    }
    /// 64 hex characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
    fn elems(&self) -> Vec<Val> {
        self.0.iter().map(|e| Val::from_u64(*e)).collect()
    }
}

fn to_hex(v: &[u64; 4]) -> String {
    v.iter().flat_map(|e| e.to_le_bytes()).map(|b| format!("{b:02x}")).collect()
}

fn hex_32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------------------------
// The plan: which instances a model needs, and which bus each reads and provides.

#[derive(Clone, Debug)]
enum Inst {
    /// The input, 4 lanes per row. It provides bus `a0g` (one message per row of 4 lanes) and, when some reader
    /// takes single elements (`elementwise`), bus `a0`.
    Input {
        n: usize,
        elementwise: bool,
    },
    Sponge {
        n: usize,
    },
    /// `grouped`: a Dense layer on the input, reading it 4 lanes per lookup from `a0g`.
    Linear {
        layer: usize,
        rows: LinearRows,
        bus_in: usize,
        bus_out: usize,
        dense: bool,
        grouped: bool,
    },
    Relu {
        layer: usize,
        n: usize,
        bus_in: usize,
        bus_out: usize,
    },
    /// A linear layer with more than [`CHUNK`] taps per output: `c` taps per row, an accumulator running over
    /// each output's rows; the last row of each output sends `(output, acc)` to its [`Inst::Requant`] on bus
    /// `c{bus_out}`. Rows stay narrow, so proofs and verification stay small for wide layers.
    Mac {
        layer: usize,
        rows: std::sync::Arc<LinearRows>,
        c: usize,
        bus_in: usize,
        bus_out: usize,
        grouped: bool,
    },
    /// Max pooling: one row per output, its window's taps (`rows.w` is 1 on a valid tap, 0 on padding).
    MaxPool {
        layer: usize,
        rows: LinearRows,
        bus_in: usize,
        bus_out: usize,
    },
    /// The requantization of a [`Inst::Mac`] layer's accumulators: one row per output; provides `bus_out`.
    Requant {
        layer: usize,
        rows: std::sync::Arc<LinearRows>,
        bus_out: usize,
    },
    Output {
        n: usize,
        bus: usize,
    },
}

/// Most taps per row of a linear layer.
const CHUNK: usize = 128;

/// Taps per row for `k` taps per output (a multiple of 4 when read in input groups).
fn chunk_width(k: usize, grouped: bool) -> usize {
    let c = k.div_ceil(k.div_ceil(CHUNK));
    if grouped { c.next_multiple_of(4) } else { c }
}

/// The row of output `o`, chunk `ch`, slot `t`: its tap's (weight, key) (a dead slot past the last tap reads key 0
/// with weight 0).
fn mac_tap(lr: &LinearRows, c: usize, o: usize, ch: usize, t: usize) -> (i64, usize) {
    let tt = ch * c + t;
    if tt < lr.k { (lr.w[o * lr.k + tt], lr.taps[o * lr.k + tt].unwrap_or(0)) } else { (0, 0) }
}

/// The group key of message `l` of chunk `ch` (0 for a dead group).
fn mac_group(lr: &LinearRows, c: usize, ch: usize, l: usize) -> usize {
    if ch * c + 4 * l < lr.k { ch * c / 4 + l } else { 0 }
}

fn height(rows: usize) -> usize {
    rows.next_power_of_two().max(MIN_HEIGHT)
}

fn blocks(n: usize) -> usize {
    n.div_ceil(4)
}

impl Inst {
    fn height(&self) -> usize {
        match self {
            Inst::Input { n, .. } => height(blocks(*n)),
            Inst::Output { n, .. } | Inst::Relu { n, .. } => height(*n),
            Inst::Sponge { n } => height(blocks(*n) + 1),
            Inst::Linear { rows, .. } | Inst::MaxPool { rows, .. } => height(rows.rows),
            Inst::Requant { rows, .. } => height(rows.rows),
            Inst::Mac { rows, c, .. } => height(rows.rows * rows.k.div_ceil(*c)),
        }
    }
}

impl Inst {
    /// What the instance proves, for error messages and logs.
    fn describe(&self) -> String {
        match self {
            Inst::Input { n, .. } => format!("input range, {n} elements"),
            Inst::Sponge { n } => format!("input commitment sponge, {n} elements"),
            Inst::Linear { layer, rows, dense, .. } => {
                let kind = if *dense { "dense" } else { "linear" };
                format!("{kind}, layer {layer}, {} outputs of {} taps", rows.rows, rows.k)
            }
            Inst::Mac { layer, rows, c, .. } => {
                format!("multiply-accumulate, layer {layer}, {} outputs of {} taps in rows of {c}", rows.rows, rows.k)
            }
            Inst::Requant { layer, rows, .. } => format!("requantization, layer {layer}, {} outputs", rows.rows),
            Inst::Relu { layer, n, .. } => format!("relu, layer {layer}, {n} elements"),
            Inst::MaxPool { layer, rows, .. } => {
                format!("max pool, layer {layer}, {} outputs of {} taps", rows.rows, rows.k)
            }
            Inst::Output { n, .. } => format!("output, {n} elements"),
        }
    }
}

fn kind(l: &QLayer) -> &'static str {
    match l {
        QLayer::Dense { .. } => "Dense",
        QLayer::Conv { .. } => "Conv",
        QLayer::Relu => "Relu",
        QLayer::MaxPool(_) => "MaxPool",
        QLayer::AvgPool { .. } => "AveragePool",
        QLayer::Affine { .. } => "Affine",
        QLayer::Lookup { .. } => "Lookup",
        QLayer::Softmax { .. } => "Softmax",
        QLayer::Reshape(_) => "Reshape",
    }
}

/// Average pooling as a linear layer: weight 1 on each valid tap, the requantization of the window's tap count.
fn pool_rows(layer: &QLayer, shape: &[usize]) -> Option<LinearRows> {
    let QLayer::AvgPool { geo, rq_by_count } = layer else { return None };
    let (c, h, w) = (*shape.get(1)?, *shape.get(2)?, *shape.get(3)?);
    let (oh, ow) = geo.out_hw(h, w)?;
    let k = geo.kernel[0] * geo.kernel[1];
    let rows = c * oh * ow;
    let mut lr = LinearRows {
        k,
        lo: -crate::air::QMAX,
        shift: 0,
        rows,
        taps: Vec::with_capacity(rows * k),
        w: Vec::with_capacity(rows * k),
        bias: vec![0; rows],
        mult: Vec::with_capacity(rows),
    };
    let mut shift = None;
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut count = 0;
                for ky in 0..geo.kernel[0] {
                    for kx in 0..geo.kernel[1] {
                        let t = geo.tap(h, w, oy, ox, ky, kx).map(|t| ch * h * w + t);
                        count += usize::from(t.is_some());
                        lr.w.push(i64::from(t.is_some()));
                        lr.taps.push(t);
                    }
                }
                let rq = if count == 0 {
                    vouch_quant::Requant { mult: 0, shift: 0 }
                } else {
                    *rq_by_count.get(count - 1)?
                };
                if count > 0 && *shift.get_or_insert(rq.shift) != rq.shift {
                    return None;
                }
                lr.mult.push(rq.mult);
            }
        }
    }
    lr.shift = shift.unwrap_or(0);
    Some(lr)
}

/// Gives every padded tap weight 0. A padded tap reads bus key 0 (the lookup needs some element of the bus), so
/// the constraint `acc = b + sum w x` sees `x[0]` there: only a zero weight keeps that equal to the executor's
/// sum, which skips padding. (The public proofs give padded taps the periodic value 0 instead, so their
/// commitments keep the layer's weights as they are.)
fn zero_padded_taps(mut lr: LinearRows) -> LinearRows {
    for (w, tap) in lr.w.iter_mut().zip(&lr.taps) {
        if tap.is_none() {
            *w = 0;
        }
    }
    lr
}

/// The instances proving `g` (a full graph or its public structure).
fn plan(g: &QGraph) -> Result<Vec<Inst>, ZkError> {
    let n: usize = g.shapes[0].iter().product();
    let mut insts = vec![Inst::Input { n, elementwise: false }, Inst::Sponge { n }];
    let mut bus = 0;
    // Whether every value on the current bus is known to be non-negative (a ReLU on it is the identity).
    let mut nonneg = false;
    for (i, layer) in g.layers.iter().enumerate() {
        let unsupported = || ZkError::UnsupportedLayer { layer: i, kind: kind(layer) };
        let (rows, dense) = match layer {
            QLayer::Reshape(_) => continue,
            QLayer::Dense { .. } | QLayer::Conv { .. } => (
                linear_rows(layer, &g.shapes[i]).map(zero_padded_taps).ok_or_else(unsupported)?,
                matches!(layer, QLayer::Dense { .. }),
            ),
            QLayer::AvgPool { .. } => (pool_rows(layer, &g.shapes[i]).ok_or_else(unsupported)?, false),
            // The max of non-negative values (or 0 for an empty window) is non-negative: `nonneg` carries over.
            QLayer::MaxPool(geo) => {
                // The window taps, as average pooling lays them out (its requantization unused).
                let any = vec![vouch_quant::Requant { mult: 0, shift: 0 }; geo.kernel[0] * geo.kernel[1]];
                let rows = pool_rows(&QLayer::AvgPool { geo: geo.clone(), rq_by_count: any }, &g.shapes[i])
                    .ok_or_else(unsupported)?;
                insts.push(Inst::MaxPool { layer: i, rows, bus_in: bus, bus_out: bus + 1 });
                bus += 1;
                continue;
            }
            // The quantizer fuses ReLU into the preceding linear layer's clamp and keeps the no-op layer.
            QLayer::Relu if nonneg => continue,
            QLayer::Relu => {
                nonneg = true;
                let n = g.shapes[i].iter().product();
                insts.push(Inst::Relu { layer: i, n, bus_in: bus, bus_out: bus + 1 });
                bus += 1;
                continue;
            }
            _ => return Err(unsupported()),
        };
        nonneg = rows.lo >= 0;
        let grouped = dense && bus == 0;
        if rows.k > CHUNK {
            let rows = std::sync::Arc::new(rows);
            let c = chunk_width(rows.k, grouped);
            insts.push(Inst::Mac { layer: i, rows: rows.clone(), c, bus_in: bus, bus_out: bus + 1, grouped });
            insts.push(Inst::Requant { layer: i, rows, bus_out: bus + 1 });
        } else {
            insts.push(Inst::Linear { layer: i, rows, bus_in: bus, bus_out: bus + 1, dense, grouped });
        }
        bus += 1;
    }
    insts.push(Inst::Output { n: g.shapes.last().map(|s| s.iter().product()).unwrap_or(0), bus });
    let elementwise = insts.iter().any(|i| match i {
        Inst::Linear { bus_in, grouped, .. } | Inst::Mac { bus_in, grouped, .. } => *bus_in == 0 && !grouped,
        Inst::Relu { bus_in, .. } | Inst::MaxPool { bus_in, .. } => *bus_in == 0,
        Inst::Output { bus, .. } => *bus == 0,
        Inst::Input { .. } | Inst::Sponge { .. } | Inst::Requant { .. } => false,
    });
    insts[0] = Inst::Input { n, elementwise };
    Ok(insts)
}

/// Whether private-input proofs support every layer of `g`.
pub fn supports(g: &QGraph) -> Result<(), ZkError> {
    plan(g).map(|_| ())
}

// ---------------------------------------------------------------------------------------------------------------
// The AIRs.

fn bus(b: usize) -> String {
    format!("a{b}")
}

/// The accumulators of the linear layer providing bus `b`: `(output, acc)`.
fn acc_bus(b: usize) -> String {
    format!("c{b}")
}

/// The input's 4-lane groups: `(group index, x[4g..4g+4])`.
const GROUP_BUS: &str = "a0g";

/// One instance of the batch.
#[derive(Clone)]
pub struct PrivAir {
    kind: AirKind,
    /// Preprocessed trace (the prover's side only).
    prep: Option<RowMajorMatrix<Val>>,
}

#[derive(Clone)]
enum AirKind {
    /// main: `x[4]`, per lane 16 bits of `x + 32767` and 16 of `32767 - x`, the group multiplicity, then
    /// (elementwise) 4 lane multiplicities. prep: row, real[4].
    Input { elementwise: bool },
    /// main: one Poseidon2 permutation per row. prep: first, absorb, last, block index.
    Sponge { p2: Box<P2Air>, n: usize },
    /// main: `x[0..k]`, the [`Rq`] gadget, `y`, multiplicity. prep: `w[0..k]`, `b`, `M`, out index, real,
    /// then (not dense) tap indices `[0..k]`.
    Linear { k: usize, rq: Rq, dense: bool, grouped: bool, bus_in: usize, bus_out: usize },
    /// main: `x`, `s`, 16 bits of `s x + (1 - s)(-x - 1)`, `y = s x`, multiplicity. prep: index, real.
    Relu { bus_in: usize, bus_out: usize },
    /// main: `x[0..c]`, `acc`. prep: `w[0..c]`, keys (`c` tap keys, or `c/4` group keys), out index, first,
    /// last, real.
    Mac { c: usize, grouped: bool, bus_in: usize, bus_out: usize },
    /// main: `x[0..k]`, one-hot `s[0..k]`, per tap 16 bits of `live (y - x)`, `y`, multiplicity. prep: tap keys
    /// `[0..k]`, live `[0..k]`, index, any (the window has a valid tap).
    MaxPool { k: usize, bus_in: usize, bus_out: usize },
    /// main: `acc`, the [`Rq`] gadget, `y`, multiplicity. prep: `b`, `M`, index, real.
    Requant { rq: Rq, bus_out: usize },
    /// main: `y`. prep: index, real. periodic: the claimed output.
    Output { bus: usize, claimed: Vec<Vec<Val>> },
}

/// Input lanes' range bits start here; the group multiplicity follows them.
const IN_BITS: usize = 4;
const IN_MG: usize = IN_BITS + 4 * 32;
const SP_PREP: usize = 4;

impl BaseAir<Val> for PrivAir {
    fn width(&self) -> usize {
        match &self.kind {
            AirKind::Input { elementwise } => IN_MG + 1 + if *elementwise { 4 } else { 0 },
            AirKind::Sponge { .. } => P2_COLS,
            AirKind::Linear { k, rq, .. } => rq.cols(*k).end + 2,
            AirKind::Relu { .. } => 20,
            AirKind::MaxPool { k, .. } => 18 * k + 2,
            AirKind::Mac { c, .. } => c + 1,
            AirKind::Requant { rq, .. } => rq.cols(1).end + 2,
            AirKind::Output { .. } => 1,
        }
    }
    fn preprocessed_width(&self) -> usize {
        match &self.kind {
            AirKind::Input { .. } => 5,
            AirKind::Sponge { .. } => SP_PREP,
            AirKind::Linear { k, dense, .. } => k + 4 + if *dense { 0 } else { *k },
            AirKind::Relu { .. } | AirKind::Output { .. } => 2,
            AirKind::MaxPool { k, .. } => 2 * k + 2,
            AirKind::Mac { c, grouped, .. } => c + if *grouped { c / 4 } else { *c } + 4,
            AirKind::Requant { .. } => 4,
        }
    }
    fn preprocessed_trace(&self) -> Option<RowMajorMatrix<Val>> {
        self.prep.clone()
    }
    fn num_public_values(&self) -> usize {
        if matches!(self.kind, AirKind::Sponge { .. }) { 4 } else { 0 }
    }
    fn num_periodic_columns(&self) -> usize {
        if let AirKind::Output { claimed, .. } = &self.kind { claimed.len() } else { 0 }
    }
    fn periodic_columns(&self) -> Cow<'_, [Vec<Val>]> {
        match &self.kind {
            AirKind::Output { claimed, .. } => Cow::Borrowed(claimed),
            _ => Cow::Owned(vec![]),
        }
    }
    fn main_next_row_columns(&self) -> Vec<usize> {
        match &self.kind {
            AirKind::Sponge { .. } => (4..8).collect(),
            AirKind::Mac { c, .. } => (0..=*c).collect(),
            _ => vec![],
        }
    }
    fn preprocessed_next_row_columns(&self) -> Vec<usize> {
        match &self.kind {
            AirKind::Sponge { .. } => vec![1],
            AirKind::Mac { c, grouped, .. } => {
                let first = c + if *grouped { c / 4 } else { *c } + 1;
                (0..*c).chain([first]).collect()
            }
            _ => vec![],
        }
    }
}

impl<AB: AirBuilder<F = Val> + InteractionBuilder> Air<AB> for PrivAir {
    fn eval(&self, b: &mut AB) {
        match &self.kind {
            AirKind::Input { elementwise } => {
                let row: Vec<AB::Var> = b.main().current_slice().to_vec();
                let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
                let qmax = AB::Expr::from(fe(crate::air::QMAX));
                let four = AB::Expr::from(Val::from_u64(4));
                for j in 0..4 {
                    let x: AB::Expr = row[j].into();
                    let up = bits(b, &row, IN_BITS + 32 * j, 16);
                    b.assert_eq(up, x.clone() + qmax.clone());
                    let down = bits(b, &row, IN_BITS + 32 * j + 16, 16);
                    b.assert_eq(down, qmax.clone() - x.clone());
                    // Lanes past the input's end are zero.
                    b.assert_zero((AB::Expr::ONE - p[1 + j].into()) * x.clone());
                    if *elementwise {
                        let idx = p[0].into() * four.clone() + AB::Expr::from(Val::from_u64(j as u64));
                        b.push_interaction(&bus(0), [idx, x], Count::provided(-row[IN_MG + 1 + j].into()));
                    }
                }
                let msg: Vec<AB::Expr> = std::iter::once(p[0].into()).chain((0..4).map(|j| row[j].into())).collect();
                b.push_interaction(GROUP_BUS, msg, Count::provided(-row[IN_MG].into()));
            }
            AirKind::Sponge { p2, n } => {
                p2.eval(b);
                let main = b.main();
                let (row, next): (Vec<AB::Var>, Vec<AB::Var>) =
                    (main.current_slice().to_vec(), main.next_slice().to_vec());
                let prep = b.preprocessed();
                let (p, pn): (Vec<AB::Var>, Vec<AB::Var>) = (prep.current_slice().to_vec(), prep.next_slice().to_vec());
                let (first, absorb, last): (AB::Expr, AB::Expr, AB::Expr) = (p[0].into(), p[1].into(), p[2].into());
                // The absorbed block is the input's group (zero past its end).
                let msg: Vec<AB::Expr> = std::iter::once(p[3].into()).chain((0..4).map(|j| row[j].into())).collect();
                b.push_interaction(GROUP_BUS, msg, Count::bounded(absorb, 1));
                let out = &row[P2_COLS - 8..];
                let pv: Vec<AB::Expr> = b.public_values().iter().map(|v| (*v).into()).collect();
                let iv = sponge_iv(*n);
                for j in 0..4 {
                    // The first permutation starts from [salt, iv].
                    b.assert_zero(first.clone() * (row[4 + j].into() - AB::Expr::from(iv[j])));
                    // Each absorbing row carries the previous row's capacity.
                    b.assert_zero(pn[1].into() * (next[4 + j].into() - out[4 + j].into()));
                    // The commitment is the last absorbing row's rate.
                    b.assert_zero(last.clone() * (out[j].into() - pv[j].clone()));
                }
            }
            AirKind::Linear { k, rq, dense, grouped, bus_in, bus_out } => {
                let row: Vec<AB::Var> = b.main().current_slice().to_vec();
                let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
                let k = *k;
                let mut acc: AB::Expr = p[k].into();
                for t in 0..k {
                    acc += p[t].into() * row[t].into();
                }
                let y_col = rq.cols(k).end;
                let y: AB::Expr = row[y_col].into();
                rq.eval(b, &row, k, acc, p[k + 1].into(), y.clone());
                let (out_idx, real): (AB::Expr, AB::Expr) = (p[k + 2].into(), p[k + 3].into());
                if *grouped {
                    for j in 0..k.div_ceil(4) {
                        let lane = |t: usize| if t < k { row[t].into() } else { AB::Expr::ZERO };
                        let msg: Vec<AB::Expr> = std::iter::once(AB::Expr::from(Val::from_u64(j as u64)))
                            .chain((4 * j..4 * j + 4).map(lane))
                            .collect();
                        b.push_interaction(GROUP_BUS, msg, Count::bounded(real.clone(), 1));
                    }
                } else {
                    for t in 0..k {
                        let idx = if *dense { AB::Expr::from(Val::from_u64(t as u64)) } else { p[k + 4 + t].into() };
                        b.push_interaction(&bus(*bus_in), [idx, row[t].into()], Count::bounded(real.clone(), 1));
                    }
                }
                b.push_interaction(&bus(*bus_out), [out_idx, y], Count::provided(-row[y_col + 1].into()));
            }
            AirKind::MaxPool { k, bus_in, bus_out } => {
                let k = *k;
                let row: Vec<AB::Var> = b.main().current_slice().to_vec();
                let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
                let y: AB::Expr = row[18 * k].into();
                let (mut picked, mut chosen) = (AB::Expr::ZERO, AB::Expr::ZERO);
                for t in 0..k {
                    let (x, sel, live): (AB::Expr, AB::Expr, AB::Expr) =
                        (row[t].into(), row[k + t].into(), p[k + t].into());
                    // y is at least every valid tap ...
                    let d = bits(b, &row, 2 * k + 16 * t, 16);
                    b.assert_eq(d, live.clone() * (y.clone() - x.clone()));
                    // ... and equals one of them (one-hot over valid taps; none for an empty window, y = 0).
                    b.assert_bool(sel.clone());
                    b.assert_zero(sel.clone() * (AB::Expr::ONE - live.clone()));
                    picked += sel.clone();
                    chosen += sel * x.clone();
                    b.push_interaction(&bus(*bus_in), [p[t].into(), x], Count::bounded(live, 1));
                }
                b.assert_eq(picked, p[2 * k + 1].into());
                b.assert_eq(y.clone(), chosen);
                b.push_interaction(&bus(*bus_out), [p[2 * k].into(), y], Count::provided(-row[18 * k + 1].into()));
            }
            AirKind::Relu { bus_in, bus_out } => {
                let row: Vec<AB::Var> = b.main().current_slice().to_vec();
                let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
                let (x, s, y): (AB::Expr, AB::Expr, AB::Expr) = (row[0].into(), row[1].into(), row[18].into());
                b.assert_bool(s.clone());
                b.assert_eq(y.clone(), s.clone() * x.clone());
                // s = 1 exactly when x >= 0: the chosen side's value is in [0, 2^16).
                let t = bits(b, &row, 2, 16);
                b.assert_eq(t, s.clone() * x.clone() + (AB::Expr::ONE - s) * (-x.clone() - AB::Expr::ONE));
                let (idx, real): (AB::Expr, AB::Expr) = (p[0].into(), p[1].into());
                b.push_interaction(&bus(*bus_in), [idx.clone(), x], Count::bounded(real, 1));
                b.push_interaction(&bus(*bus_out), [idx, y], Count::provided(-row[19].into()));
            }
            AirKind::Mac { c, grouped, bus_in, bus_out } => {
                let c = *c;
                let main = b.main();
                let (row, next): (Vec<AB::Var>, Vec<AB::Var>) =
                    (main.current_slice().to_vec(), main.next_slice().to_vec());
                let prep = b.preprocessed();
                let (p, pn): (Vec<AB::Var>, Vec<AB::Var>) = (prep.current_slice().to_vec(), prep.next_slice().to_vec());
                let keys = if *grouped { c / 4 } else { c };
                let (out_idx, first, last, real) = (p[c + keys], p[c + keys + 1], p[c + keys + 2], p[c + keys + 3]);
                let dot =
                    |w: &[AB::Var], x: &[AB::Var]| (0..c).fold(AB::Expr::ZERO, |a, t| a + w[t].into() * x[t].into());
                // An output's first row starts the sum; each following row adds to the previous row's sum.
                b.assert_zero(first.into() * (row[c].into() - dot(&p, &row)));
                let next_first: AB::Expr = pn[c + keys + 1].into();
                b.assert_zero((AB::Expr::ONE - next_first) * (next[c].into() - row[c].into() - dot(&pn, &next)));
                if *grouped {
                    for l in 0..c / 4 {
                        let msg: Vec<AB::Expr> =
                            std::iter::once(p[c + l].into()).chain((4 * l..4 * l + 4).map(|t| row[t].into())).collect();
                        b.push_interaction(GROUP_BUS, msg, Count::bounded(real.into(), 1));
                    }
                } else {
                    for t in 0..c {
                        b.push_interaction(
                            &bus(*bus_in),
                            [p[c + t].into(), row[t].into()],
                            Count::bounded(real.into(), 1),
                        );
                    }
                }
                b.push_interaction(&acc_bus(*bus_out), [out_idx.into(), row[c].into()], Count::bounded(last.into(), 1));
            }
            AirKind::Requant { rq, bus_out } => {
                let row: Vec<AB::Var> = b.main().current_slice().to_vec();
                let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
                let y_col = rq.cols(1).end;
                let y: AB::Expr = row[y_col].into();
                rq.eval(b, &row, 1, row[0].into() + p[0].into(), p[1].into(), y.clone());
                b.push_interaction(&acc_bus(*bus_out), [p[2].into(), row[0].into()], Count::bounded(-p[3].into(), 1));
                b.push_interaction(&bus(*bus_out), [p[2].into(), y], Count::provided(-row[y_col + 1].into()));
            }
            AirKind::Output { bus: bn, .. } => {
                let y: AB::Expr = b.main().current_slice()[0].into();
                let p: Vec<AB::Var> = b.preprocessed().current_slice().to_vec();
                let claimed: AB::Expr = b.periodic_values()[0].into();
                b.assert_eq(y.clone(), claimed);
                b.push_interaction(&bus(*bn), [p[0].into(), y], Count::bounded(p[1].into(), 1));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// AIRs, traces, prover and verifier.

fn air_for(inst: &Inst, claimed: &[i16], with_prep: bool) -> PrivAir {
    let h = inst.height();
    let col = |v: Vec<Val>, w: usize| with_prep.then(|| RowMajorMatrix::new(v, w));
    let idx = |r: usize| Val::from_u64(r as u64);
    match inst {
        Inst::Input { n, elementwise } => {
            let prep =
                (0..h).flat_map(|r| std::iter::once(idx(r)).chain((0..4).map(move |j| Val::from_bool(4 * r + j < *n))));
            PrivAir { kind: AirKind::Input { elementwise: *elementwise }, prep: col(prep.collect(), 5) }
        }
        Inst::Sponge { n } => {
            let prep = with_prep.then(|| {
                let r_last = blocks(*n);
                let mut v = Vec::with_capacity(h * SP_PREP);
                for r in 0..h {
                    let absorb = (1..=r_last).contains(&r);
                    v.extend([r == 0, absorb, r == r_last].map(Val::from_bool));
                    v.push(if absorb { idx(r - 1) } else { Val::ZERO });
                }
                RowMajorMatrix::new(v, SP_PREP)
            });
            PrivAir { kind: AirKind::Sponge { p2: Box::new(P2Air::new(p2_constants())), n: *n }, prep }
        }
        Inst::Linear { rows: lr, bus_in, bus_out, dense, grouped, .. } => {
            let k = lr.k;
            let width = k + 4 + if *dense { 0 } else { k };
            let prep = with_prep.then(|| {
                let mut v = Vec::with_capacity(h * width);
                for r in 0..h {
                    let real = r < lr.rows;
                    if real {
                        v.extend(lr.w[r * k..(r + 1) * k].iter().map(|w| fe(*w)));
                        v.extend([fe(lr.bias[r]), fe(lr.mult[r])]);
                    } else {
                        v.extend(std::iter::repeat_n(Val::ZERO, k + 2));
                    }
                    v.extend([idx(r), Val::from_bool(real)]);
                    if !*dense {
                        v.extend((0..k).map(|t| if real { idx(lr.taps[r * k + t].unwrap_or(0)) } else { Val::ZERO }));
                    }
                }
                RowMajorMatrix::new(v, width)
            });
            let kind = AirKind::Linear {
                k,
                rq: lr.rq(),
                dense: *dense,
                grouped: *grouped,
                bus_in: *bus_in,
                bus_out: *bus_out,
            };
            PrivAir { kind, prep }
        }
        Inst::MaxPool { rows: lr, bus_in, bus_out, .. } => {
            let k = lr.k;
            let prep = with_prep.then(|| {
                let mut v = Vec::with_capacity(h * (2 * k + 2));
                for r in 0..h {
                    let real = r < lr.rows;
                    let tap = |t: usize| if real { lr.taps[r * k + t] } else { None };
                    v.extend((0..k).map(|t| idx(tap(t).unwrap_or(0))));
                    v.extend((0..k).map(|t| Val::from_bool(tap(t).is_some())));
                    v.extend([idx(r), Val::from_bool((0..k).any(|t| tap(t).is_some()))]);
                }
                RowMajorMatrix::new(v, 2 * k + 2)
            });
            PrivAir { kind: AirKind::MaxPool { k, bus_in: *bus_in, bus_out: *bus_out }, prep }
        }
        Inst::Relu { n, bus_in, bus_out, .. } => {
            let prep = col((0..h).flat_map(|r| [idx(r), Val::from_bool(r < *n)]).collect(), 2);
            PrivAir { kind: AirKind::Relu { bus_in: *bus_in, bus_out: *bus_out }, prep }
        }
        Inst::Mac { rows: lr, c, bus_in, bus_out, grouped, .. } => {
            let (c, n_c) = (*c, lr.k.div_ceil(*c));
            let keys = if *grouped { c / 4 } else { c };
            let prep = with_prep.then(|| {
                let mut v = Vec::with_capacity(h * (c + keys + 4));
                for r in 0..h {
                    let (o, ch) = (r / n_c, r % n_c);
                    if o < lr.rows {
                        v.extend((0..c).map(|t| fe(mac_tap(lr, c, o, ch, t).0)));
                        if *grouped {
                            v.extend((0..keys).map(|l| idx(mac_group(lr, c, ch, l))));
                        } else {
                            v.extend((0..c).map(|t| idx(mac_tap(lr, c, o, ch, t).1)));
                        }
                        v.extend([idx(o), Val::from_bool(ch == 0), Val::from_bool(ch + 1 == n_c), Val::ONE]);
                    } else {
                        // Padding rows: each its own empty sum.
                        v.extend(std::iter::repeat_n(Val::ZERO, c + keys));
                        v.extend([Val::ZERO, Val::ONE, Val::ZERO, Val::ZERO]);
                    }
                }
                RowMajorMatrix::new(v, c + keys + 4)
            });
            PrivAir { kind: AirKind::Mac { c, grouped: *grouped, bus_in: *bus_in, bus_out: *bus_out }, prep }
        }
        Inst::Requant { rows: lr, bus_out, .. } => {
            let prep = with_prep.then(|| {
                let row = |r: usize| {
                    let real = r < lr.rows;
                    let (b, m) = if real { (lr.bias[r], lr.mult[r]) } else { (0, 0) };
                    [fe(b), fe(m), idx(r), Val::from_bool(real)]
                };
                RowMajorMatrix::new((0..h).flat_map(row).collect(), 4)
            });
            PrivAir { kind: AirKind::Requant { rq: lr.rq(), bus_out: *bus_out }, prep }
        }
        Inst::Output { n, bus } => {
            let claimed = vec![(0..h).map(|r| if r < *n { fe(i64::from(claimed[r])) } else { Val::ZERO }).collect()];
            let prep = col((0..h).flat_map(|r| [idx(r), Val::from_bool(r < *n)]).collect(), 2);
            PrivAir { kind: AirKind::Output { bus: *bus, claimed }, prep }
        }
    }
}

fn ext_degree_bits(insts: &[Inst]) -> Vec<usize> {
    insts.iter().map(|i| i.height().trailing_zeros() as usize + 1).collect()
}

/// The model's commitment for private-input proofs: the digest of its public structure and the global
/// commitment to every instance's preprocessed columns (weights, biases, multipliers, indices, selectors).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrivateCommitment {
    /// Format version.
    pub version: u16,
    /// Digest of the public structure.
    pub structure: [u8; 32],
    /// Serialized preprocessed commitment (a Merkle cap).
    pub preprocessed: Vec<u8>,
}

impl PrivateCommitment {
    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("commitments serialize")
    }
    /// Parses commitment bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        crate::decode_commitment(b, |c: &Self| c.version)
    }
}

/// A private-input proof.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PrivateProof {
    /// Format version.
    pub version: u16,
    /// Parameters the proof was made with.
    pub security: Security,
    /// The commitment to the input the proof is about.
    pub input: InputCommitment,
    /// The postcard-encoded batch STARK.
    pub stark: Vec<u8>,
}

impl PrivateProof {
    /// Serialized bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("proofs serialize")
    }
    /// Parses proof bytes (never panics on garbage).
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        postcard::from_bytes(b).map_err(|e| ZkError::Malformed(e.to_string()))
    }
}

/// A model ready for private-input proofs: its preprocessed columns committed once.
pub struct PrivateProver {
    graph: QGraph,
    insts: Vec<Inst>,
    airs: Vec<PrivAir>,
    data: ProverData<HidingConfig>,
    commitment: PrivateCommitment,
}

/// Deterministic randomness of the setup (it salts the public preprocessed columns' Merkle leaves).
const SETUP_SEED: &str = "VOUCH_ZK_PRIVATE_SETUP_V1";

impl PrivateProver {
    /// Plans the model's instances and commits their preprocessed columns.
    pub fn new(graph: QGraph) -> Result<Self, ZkError> {
        let insts = plan(&graph)?;
        let n_out = graph.shapes.last().map(|s| s.iter().product()).unwrap_or(0);
        let airs: Vec<PrivAir> = insts.iter().map(|i| air_for(i, &vec![0; n_out], true)).collect();
        let cfg = hiding_config(Some(SETUP_SEED));
        let data = ProverData::from_airs_and_degrees(&cfg, &airs, &ext_degree_bits(&insts))
            .map_err(|e| ZkError::Prove { layer: 0, reason: format!("setup: {e:?}") })?;
        let pre =
            data.common.preprocessed.as_ref().ok_or_else(|| ZkError::Commitment("no preprocessed data".into()))?;
        let commitment = PrivateCommitment {
            version: PROOF_VERSION,
            structure: structure_digest(&crate::public_structure(&graph)),
            preprocessed: postcard::to_allocvec(&pre.commitment).expect("commitments serialize"),
        };
        Ok(Self { graph, insts, airs, data, commitment })
    }

    /// The model's private-input commitment.
    pub fn commitment(&self) -> &PrivateCommitment {
        &self.commitment
    }

    /// Proves that the model maps the input `x`, committed with `salt`, to its output. Returns the output too.
    pub fn prove(&self, x: &[i16], salt: &Salt) -> Result<(Vec<i16>, PrivateProof), ZkError> {
        let acts = self.graph.run_all(x).map_err(|e| ZkError::Input(e.to_string()))?;
        let y = acts.last().cloned().unwrap_or_default();
        // Bus values and the number of reads of each element.
        let mut buses: Vec<&[i16]> = vec![&acts[0]];
        for inst in &self.insts {
            if let Inst::Linear { layer, .. }
            | Inst::Relu { layer, .. }
            | Inst::Requant { layer, .. }
            | Inst::MaxPool { layer, .. } = inst
            {
                buses.push(&acts[layer + 1]);
            }
        }
        let mut reads: Vec<Vec<u64>> = buses.iter().map(|b| vec![0; b.len()]).collect();
        let mut group_reads = vec![0u64; blocks(x.len())];
        for inst in &self.insts {
            match inst {
                Inst::Sponge { .. } => group_reads.iter_mut().for_each(|m| *m += 1),
                Inst::Linear { rows, grouped: true, .. } => {
                    group_reads[..rows.k.div_ceil(4)].iter_mut().for_each(|m| *m += rows.rows as u64)
                }
                Inst::Linear { rows, bus_in, .. } => {
                    for t in &rows.taps {
                        reads[*bus_in][t.unwrap_or(0)] += 1;
                    }
                }
                Inst::Output { n, bus } | Inst::Relu { n, bus_in: bus, .. } => {
                    reads[*bus][..*n].iter_mut().for_each(|m| *m += 1)
                }
                Inst::Mac { rows: lr, c, bus_in, grouped, .. } => {
                    for o in 0..lr.rows {
                        for ch in 0..lr.k.div_ceil(*c) {
                            if *grouped {
                                (0..c / 4).for_each(|l| group_reads[mac_group(lr, *c, ch, l)] += 1);
                            } else {
                                (0..*c).for_each(|t| reads[*bus_in][mac_tap(lr, *c, o, ch, t).1] += 1);
                            }
                        }
                    }
                }
                Inst::MaxPool { rows, bus_in, .. } => {
                    for t in rows.taps.iter().flatten() {
                        reads[*bus_in][*t] += 1;
                    }
                }
                Inst::Input { .. } | Inst::Requant { .. } => {}
            }
        }
        let traces: Vec<RowMajorMatrix<Val>> = self
            .insts
            .iter()
            .zip(&self.airs)
            .map(|(inst, air)| trace(inst, air, &buses, &reads, &group_reads, x, salt))
            .collect();
        let mut airs = self.airs.clone();
        if let (Some(inst), Some(last)) = (self.insts.last(), airs.last_mut()) {
            last.kind = air_for(inst, &y, false).kind;
        }
        let input = commit_input(x, salt);
        let pvs: Vec<Vec<Val>> =
            self.insts.iter().map(|i| if matches!(i, Inst::Sponge { .. }) { input.elems() } else { vec![] }).collect();
        let refs: Vec<&RowMajorMatrix<Val>> = traces.iter().collect();
        let instances = StarkInstance::new_multiple(&airs, &refs, &pvs);
        let cfg = hiding_config(None);
        let proof = p3_batch_stark::prove_batch(&cfg, &instances, &self.data)
            .map_err(|e| ZkError::Prove { layer: 0, reason: format!("{e:?}") })?;
        let stark = postcard::to_allocvec(&proof).expect("proofs serialize");
        Ok((y, PrivateProof { version: PROOF_VERSION, security: SECURITY, input, stark }))
    }
}

fn trace(
    inst: &Inst,
    air: &PrivAir,
    buses: &[&[i16]],
    reads: &[Vec<u64>],
    group_reads: &[u64],
    x: &[i16],
    salt: &Salt,
) -> RowMajorMatrix<Val> {
    let h = inst.height();
    let w = air.width();
    let mut v = vec![Val::ZERO; h * w];
    match inst {
        Inst::Input { n, elementwise } => {
            for (r, row) in v.chunks_mut(w).enumerate() {
                for j in 0..4 {
                    let e = 4 * r + j;
                    let xi = if e < *n { i64::from(x[e]) } else { 0 };
                    row[j] = fe(xi);
                    put_bits(row, IN_BITS + 32 * j, 16, (xi + crate::air::QMAX) as u128);
                    put_bits(row, IN_BITS + 32 * j + 16, 16, (crate::air::QMAX - xi) as u128);
                    if *elementwise && e < *n {
                        row[IN_MG + 1 + j] = Val::from_u64(reads[0][e]);
                    }
                }
                row[IN_MG] = Val::from_u64(group_reads.get(r).copied().unwrap_or(0));
            }
        }
        Inst::Sponge { .. } => {
            let (mut inputs, _) = sponge_states(x, salt.elems());
            inputs.resize(h, [Val::ZERO; 8]);
            return generate_trace_rows::<Val, GenericPoseidon2LinearLayersGoldilocks, 8, 7, 1, 4, 22>(
                inputs,
                &p2_constants(),
                0,
            );
        }
        Inst::Linear { rows: lr, bus_in, bus_out, .. } => {
            let (xin, k, rq) = (buses[*bus_in], lr.k, lr.rq());
            let y_col = rq.cols(k).end;
            for (r, row) in v.chunks_mut(w).enumerate() {
                if r < lr.rows {
                    for t in 0..k {
                        row[t] = fe(i64::from(xin[lr.taps[r * k + t].unwrap_or(0)]));
                    }
                    let y = rq.fill(row, k, lr.acc(r, xin), lr.mult[r]);
                    row[y_col] = fe(y);
                    row[y_col + 1] = Val::from_u64(reads[*bus_out][r]);
                } else {
                    rq.fill(row, k, 0, 0);
                }
            }
        }
        Inst::MaxPool { rows: lr, bus_in, bus_out, .. } => {
            let (k, xin) = (lr.k, buses[*bus_in]);
            for (r, row) in v.chunks_mut(w).enumerate().take(lr.rows) {
                let taps = &lr.taps[r * k..(r + 1) * k];
                let best = taps.iter().enumerate().filter_map(|(t, i)| i.map(|i| (t, xin[i]))).max_by_key(|(_, v)| *v);
                let y = best.map(|(_, v)| i64::from(v)).unwrap_or(0);
                for (t, tap) in taps.iter().enumerate() {
                    let x = tap.map(|i| i64::from(xin[i])).unwrap_or(0);
                    row[t] = fe(x);
                    row[k + t] = Val::from_bool(best.is_some_and(|(bt, _)| bt == t));
                    put_bits(row, 2 * k + 16 * t, 16, if tap.is_some() { (y - x) as u128 } else { 0 });
                }
                row[18 * k] = fe(y);
                row[18 * k + 1] = Val::from_u64(reads[*bus_out][r]);
            }
        }
        Inst::Relu { n, bus_in, bus_out, .. } => {
            for (r, row) in v.chunks_mut(w).enumerate() {
                let xi = if r < *n { i64::from(buses[*bus_in][r]) } else { 0 };
                let s = xi >= 0;
                row[0] = fe(xi);
                row[1] = Val::from_bool(s);
                put_bits(row, 2, 16, if s { xi } else { -xi - 1 } as u128);
                row[18] = fe(if s { xi } else { 0 });
                row[19] = Val::from_u64(if r < *n { reads[*bus_out][r] } else { 0 });
            }
        }
        Inst::Mac { rows: lr, c, bus_in, grouped, .. } => {
            let (c, n_c, xin) = (*c, lr.k.div_ceil(*c), buses[*bus_in]);
            let lane = |e: usize| xin.get(e).map(|v| i64::from(*v)).unwrap_or(0);
            let mut acc = 0i64;
            for (r, row) in v.chunks_mut(w).enumerate().take(lr.rows * n_c) {
                let (o, ch) = (r / n_c, r % n_c);
                if ch == 0 {
                    acc = 0;
                }
                for (t, cell) in row.iter_mut().take(c).enumerate() {
                    let (wt, key) = mac_tap(lr, c, o, ch, t);
                    let xv = if *grouped {
                        let g = mac_group(lr, c, ch, t / 4);
                        lane(4 * g + t % 4)
                    } else {
                        lane(key)
                    };
                    *cell = fe(xv);
                    acc += wt * xv;
                }
                row[c] = fe(acc);
            }
        }
        Inst::Requant { rows: lr, bus_out, .. } => {
            let rq = lr.rq();
            let y_col = rq.cols(1).end;
            let xin = buses[*bus_out - 1];
            for (r, row) in v.chunks_mut(w).enumerate() {
                if r < lr.rows {
                    let acc = lr.acc(r, xin) - lr.bias[r];
                    row[0] = fe(acc);
                    row[y_col] = fe(rq.fill(row, 1, acc + lr.bias[r], lr.mult[r]));
                    row[y_col + 1] = Val::from_u64(reads[*bus_out][r]);
                } else {
                    rq.fill(row, 1, 0, 0);
                }
            }
        }
        Inst::Output { n, bus } => {
            for (r, row) in v.chunks_mut(w).enumerate().take(*n) {
                row[0] = fe(i64::from(buses[*bus][r]));
            }
        }
    }
    RowMajorMatrix::new(v, w)
}

/// Verifies that `proof` shows the model with public structure `g`, committed as `commitment`, maps the input
/// committed as `input` to `y`.
pub fn verify_private(
    g: &QGraph,
    commitment: &PrivateCommitment,
    input: &InputCommitment,
    y: &[i16],
    proof: &PrivateProof,
) -> Result<(), ZkError> {
    if proof.version != PROOF_VERSION || proof.security != SECURITY {
        return Err(ZkError::Header(format!("version {} {:?}", proof.version, proof.security)));
    }
    if commitment.structure != structure_digest(&crate::public_structure(g)) {
        return Err(ZkError::Commitment("the structure is not the committed model's".into()));
    }
    if proof.input != *input {
        return Err(ZkError::PublicMismatch("input commitment"));
    }
    let insts = plan(g)?;
    let n_out: usize = g.shapes.last().map(|s| s.iter().product()).unwrap_or(0);
    if y.len() != n_out {
        return Err(ZkError::PublicMismatch("output"));
    }
    let airs: Vec<PrivAir> = insts.iter().map(|i| air_for(i, y, false)).collect();
    let cfg = hiding_config(Some("VOUCH_ZK_VERIFY"));
    let degrees = ext_degree_bits(&insts);
    let stark: BatchProof<HidingConfig> =
        postcard::from_bytes(&proof.stark).map_err(|e| ZkError::Malformed(format!("stark: {e}")))?;
    let pre_commit = postcard::from_bytes(&commitment.preprocessed).map_err(|e| ZkError::Commitment(e.to_string()))?;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Lookups and layout from the AIRs alone (they carry no preprocessed trace, so nothing is committed here);
        // the preprocessed commitment is the model's.
        let mut data =
            ProverData::from_airs_and_degrees(&cfg, &airs, &degrees).map_err(|e| (format!("{e:?}"), None))?;
        data.common.preprocessed = Some(GlobalPreprocessed {
            commitment: pre_commit,
            instances: airs
                .iter()
                .zip(&degrees)
                .enumerate()
                .map(|(i, (a, d))| {
                    Some(PreprocessedInstanceMeta { matrix_index: i, width: a.preprocessed_width(), degree_bits: *d })
                })
                .collect(),
            matrix_to_instance: (0..airs.len()).collect(),
        });
        let pvs: Vec<Vec<Val>> =
            insts.iter().map(|i| if matches!(i, Inst::Sponge { .. }) { input.elems() } else { vec![] }).collect();
        p3_batch_stark::verify_batch(&cfg, &airs, &stark, &pvs, &data.common).map_err(|e| {
            // The batch verifier reports which instance's constraints fail at the out-of-domain point.
            let instance = match &e {
                BatchVerificationError::Verification(VerificationError::OodEvaluationMismatch { index: Some(i) }) => {
                    insts.get(*i).map(|inst| format!("instance {i}: {}", inst.describe()))
                }
                _ => None,
            };
            (format!("{e:?}"), instance)
        })
    }));
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err((reason, instance))) => Err(ZkError::Proof { reason, instance }),
        Err(_) => Err(ZkError::Proof { reason: "verifier rejected a malformed proof".into(), instance: None }),
    }
}

/// What a private-input receipt's zk evidence carries: the public structure and the proof.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PrivateEvidence {
    /// Public structure of the model (no linear parameters).
    pub structure: QGraph,
    /// The proof.
    pub proof: PrivateProof,
}

impl PrivateEvidence {
    /// Serialized bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("evidence serializes")
    }
    /// Parses evidence bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        postcard::from_bytes(b).map_err(|e| ZkError::Malformed(e.to_string()))
    }
}

/// Verifies private-input receipt evidence against the model's private commitment, the input commitment and the
/// output.
pub fn verify_private_evidence(
    commitment: &[u8],
    evidence: &[u8],
    input: &InputCommitment,
    y: &[i16],
) -> Result<(), ZkError> {
    let c = PrivateCommitment::from_bytes(commitment)?;
    let e = PrivateEvidence::from_bytes(evidence)?;
    crate::check_structure_limits(&e.structure)?;
    verify_private(&e.structure, &c, input, y, &e.proof)
}
