//! Transparent STARK proofs (Plonky3) that a quantized model produced an output.
//!
//! Statement: for the public input `x`, the [`QGraph`]'s integer executor yields the public output `y`, with
//! the linear layers' weights, biases and multipliers those committed in the model's [`ModelCommitment`].
//! Every activation between layers is public in this version (carried in the [`ModelProof`]); layers without
//! committed parameters (ReLU, pooling, reshape) are re-executed by the verifier on them directly, and each
//! Dense/Conv layer has one uni-STARK proof ([`air::LayerAir`]) with its parameters as preprocessed columns.
//!
//! Parameters: Goldilocks with a degree-2 extension (128-bit challenges), Poseidon2 Merkle trees, FRI with
//! blowup 4 (`log_blowup = 2`), 54 queries and 8 bits of query grinding: 54 * 2 + 8 = 116 bits by the
//! usual conjectured FRI estimate (see [`SECURITY`]). No trusted setup. Weights are bound, not hidden.

pub mod air;
pub mod private;

use p3_challenger::DuplexChallenger;
use p3_commit::ExtensionMmcs;
use p3_dft::Radix2DitParallel;
use p3_field::PrimeCharacteristicRing;
use p3_field::extension::BinomialExtensionField;
use p3_fri::{FriParameters, TwoAdicFriPcs};
use p3_goldilocks::{Goldilocks, Poseidon2Goldilocks, default_goldilocks_poseidon2_8};
use p3_matrix::dense::RowMajorMatrix;
use p3_merkle_tree::MerkleTreeMmcs;
use p3_symmetric::{PaddingFreeSponge, TruncatedPermutation};
use p3_uni_stark::{PreprocessedVerifierKey, Proof, StarkConfig};
use vouch_quant::{QGraph, QLayer};

use crate::air::{LayerAir, QMAX, fe};

/// The base field.
pub type Val = Goldilocks;
type Perm = Poseidon2Goldilocks<8>;
type Hash = PaddingFreeSponge<Perm, 8, 4, 4>;
type Compress = TruncatedPermutation<Perm, 2, 4, 8>;
type ValMmcs =
    MerkleTreeMmcs<<Val as p3_field::Field>::Packing, <Val as p3_field::Field>::Packing, Hash, Compress, 2, 4>;
pub(crate) type Challenge = BinomialExtensionField<Val, 2>;
type ChallengeMmcs = ExtensionMmcs<Val, Challenge, ValMmcs>;
type Challenger = DuplexChallenger<Val, Perm, 8, 4>;
type Pcs = TwoAdicFriPcs<Val, Radix2DitParallel<Val>, ValMmcs, ChallengeMmcs>;
/// The STARK configuration.
pub type Config = StarkConfig<Pcs, Challenge, Challenger>;

/// Security parameters, stated in every proof header.
pub const SECURITY: Security = Security { log_blowup: 2, num_queries: 54, query_pow_bits: 8, extension_degree: 2 };
/// Proof format version.
pub const PROOF_VERSION: u16 = 1;
/// Proof system name recorded in receipts.
pub const SYSTEM: &str = "vouch-zk/plonky3-0.8-goldilocks-v1";

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

/// One linear layer's rows: taps, weights, bias and multiplier per output.
#[derive(Clone, Debug)]
struct LinearRows {
    k: usize,
    lo: i64,
    shift: u32,
    rows: usize,
    /// `rows * k` input indices (`None` = zero padding).
    taps: Vec<Option<usize>>,
    /// `rows * k` weights.
    w: Vec<i64>,
    bias: Vec<i64>,
    mult: Vec<i64>,
}

fn linear_rows(layer: &QLayer, in_shape: &[usize]) -> Option<LinearRows> {
    match layer {
        QLayer::Dense { w, b, input, output, rq, relu } => Some(LinearRows {
            k: *input,
            lo: if *relu { 0 } else { -QMAX },
            shift: rq.first().map(|r| r.shift).unwrap_or(0),
            rows: *output,
            taps: (0..*output).flat_map(|_| (0..*input).map(Some)).collect(),
            w: (0..input * output).map(|i| w.get(i).map(|v| i64::from(*v)).unwrap_or(0)).collect(),
            bias: (0..*output).map(|o| b.get(o).copied().unwrap_or(0)).collect(),
            mult: (0..*output).map(|o| rq.get(o).map(|r| r.mult).unwrap_or(0)).collect(),
        }),
        QLayer::Conv { w, b, ic, oc, geo, rq, relu } => {
            let (h, wd) = (in_shape[2], in_shape[3]);
            let (oh, ow) = geo.out_hw(h, wd)?;
            let k = ic * geo.kernel[0] * geo.kernel[1];
            let rows = oc * oh * ow;
            let mut taps = Vec::with_capacity(rows * k);
            let mut ws = Vec::with_capacity(rows * k);
            let (mut bias, mut mult) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
            for o in 0..*oc {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for c in 0..*ic {
                            for ky in 0..geo.kernel[0] {
                                for kx in 0..geo.kernel[1] {
                                    taps.push(geo.tap(h, wd, oy, ox, ky, kx).map(|t| c * h * wd + t));
                                    let wi = ((o * ic + c) * geo.kernel[0] + ky) * geo.kernel[1] + kx;
                                    ws.push(w.get(wi).map(|v| i64::from(*v)).unwrap_or(0));
                                }
                            }
                        }
                        bias.push(b.get(o).copied().unwrap_or(0));
                        mult.push(rq.get(o).map(|r| r.mult).unwrap_or(0));
                    }
                }
            }
            Some(LinearRows {
                k,
                lo: if *relu { 0 } else { -QMAX },
                shift: rq.first().map(|r| r.shift).unwrap_or(0),
                rows,
                taps,
                w: ws,
                bias,
                mult,
            })
        }
        _ => None,
    }
}

fn height(rows: usize) -> usize {
    rows.next_power_of_two().max(8)
}

impl LinearRows {
    fn rq(&self) -> air::Rq {
        air::Rq::new(self.shift, self.lo)
    }

    fn air(&self, x: &[i16], y: &[i16], with_params: bool) -> LayerAir {
        let h = height(self.rows);
        let dense = self.taps.chunks(self.k).all(|t| t.iter().enumerate().all(|(i, v)| *v == Some(i)));
        let mut periodic: Vec<Vec<Val>> = (0..self.k)
            .map(|t| {
                if dense {
                    vec![fe(i64::from(x[t]))]
                } else {
                    (0..h)
                        .map(|r| {
                            if r < self.rows {
                                self.taps[r * self.k + t].map(|i| fe(i64::from(x[i]))).unwrap_or(Val::ZERO)
                            } else {
                                Val::ZERO
                            }
                        })
                        .collect()
                }
            })
            .collect();
        periodic.push((0..h).map(|r| if r < self.rows { fe(i64::from(y[r])) } else { Val::ZERO }).collect());
        let prep = with_params.then(|| {
            let mut vals = Vec::with_capacity(h * (self.k + 2));
            for r in 0..h {
                if r < self.rows {
                    vals.extend(self.w[r * self.k..(r + 1) * self.k].iter().map(|v| fe(*v)));
                    vals.push(fe(self.bias[r]));
                    vals.push(fe(self.mult[r]));
                } else {
                    vals.extend(std::iter::repeat_n(Val::ZERO, self.k + 2));
                }
            }
            RowMajorMatrix::new(vals, self.k + 2)
        });
        LayerAir { k: self.k, rq: self.rq(), periodic, prep }
    }

    fn trace(&self, air: &LayerAir, x: &[i16]) -> RowMajorMatrix<Val> {
        let width = air.rq.cols(0).end;
        let h = height(self.rows);
        let mut vals = vec![Val::ZERO; h * width];
        for (r, row) in vals.chunks_mut(width).enumerate() {
            let (acc, mult) = if r < self.rows { (self.acc(r, x), self.mult[r]) } else { (0, 0) };
            air.rq.fill(row, 0, acc, mult);
        }
        RowMajorMatrix::new(vals, width)
    }

    /// Row `r`'s accumulator `b + sum w x`.
    fn acc(&self, r: usize, x: &[i16]) -> i64 {
        self.bias[r]
            + (0..self.k)
                .map(|t| self.w[r * self.k + t] * self.taps[r * self.k + t].map(|i| i64::from(x[i])).unwrap_or(0))
                .sum::<i64>()
    }
}

/// Public values binding a layer's activations into its transcript.
fn public_values(layer: usize, x: &[i16], y: &[i16]) -> Vec<Val> {
    let mut h = blake3::Hasher::new_derive_key("VOUCH_ZK_LAYER_IO_V1");
    h.update(&(layer as u64).to_le_bytes());
    for v in x.iter().chain(y) {
        h.update(&v.to_le_bytes());
    }
    h.finalize()
        .as_bytes()
        .chunks(8)
        .map(|c| Val::from_u64(u64::from_le_bytes(c.try_into().expect("8")) >> 1))
        .collect()
}

/// The model's public structure: the graph with the linear layers' weights, biases and multipliers removed
/// (they are committed instead). Shapes, scales, shifts, clamps, pooling and tables stay.
pub fn public_structure(g: &QGraph) -> QGraph {
    let mut s = g.clone();
    for l in &mut s.layers {
        if let QLayer::Dense { w, b, rq, .. } | QLayer::Conv { w, b, rq, .. } = l {
            w.clear();
            b.clear();
            let shift = rq.first().map(|r| r.shift).unwrap_or(0);
            *rq = vec![vouch_quant::Requant { mult: 0, shift }];
        }
    }
    s
}

fn structure_digest(structure: &QGraph) -> [u8; 32] {
    let bytes = postcard::to_allocvec(structure).expect("graphs serialize");
    *blake3::Hasher::new_derive_key("VOUCH_ZK_STRUCTURE_V1").update(&bytes).finalize().as_bytes()
}

/// The model's zk commitment: a digest of its public structure and one preprocessed-trace commitment per
/// linear layer. Computed once, at model upload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelCommitment {
    /// Format version.
    pub version: u16,
    /// Digest of the public structure.
    pub structure: [u8; 32],
    /// Per linear layer: (layer index, serialized preprocessed commitment).
    pub layers: Vec<(u32, Vec<u8>)>,
}

impl ModelCommitment {
    /// Canonical bytes (what receipts and the ledger record).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("commitments serialize")
    }
    /// Parses commitment bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        decode_commitment(b, |c: &Self| c.version)
    }
}

/// Decodes a commitment and checks its format version.
fn decode_commitment<T: serde::de::DeserializeOwned>(b: &[u8], version: impl Fn(&T) -> u16) -> Result<T, ZkError> {
    let c: T = postcard::from_bytes(b).map_err(|e| ZkError::Commitment(e.to_string()))?;
    if version(&c) != PROOF_VERSION {
        return Err(ZkError::Header(format!("commitment version {}", version(&c))));
    }
    Ok(c)
}

type Vk = PreprocessedVerifierKey<Config>;

fn setup_layer(cfg: &Config, air: &LayerAir) -> Result<(p3_uni_stark::PreprocessedProverData<Config>, Vk), String> {
    let log_h = air.periodic.last().map(|y| y.len().trailing_zeros() as usize).unwrap_or(3);
    p3_uni_stark::setup_preprocessed::<Config, _>(cfg, air, log_h)
        .map_err(|e| format!("{e:?}"))?
        .ok_or_else(|| "no preprocessed columns".to_owned())
}

fn vk_bytes(vk: &Vk) -> Vec<u8> {
    postcard::to_allocvec(&vk.commitment).expect("commitments serialize")
}

/// A model ready to prove: its linear layers' preprocessed traces committed once (the expensive part of
/// setup), reused by every proof.
pub struct Prover {
    graph: QGraph,
    cfg: Config,
    layers: Vec<Option<PreparedLayer>>,
    commitment: ModelCommitment,
    /// The private-input prover, set up on first use.
    private: std::sync::OnceLock<Result<private::PrivateProver, ZkError>>,
}

struct PreparedLayer {
    rows: LinearRows,
    prep: RowMajorMatrix<Val>,
    data: p3_uni_stark::PreprocessedProverData<Config>,
}

impl Prover {
    /// Commits the model's parameters.
    pub fn new(graph: QGraph) -> Result<Self, ZkError> {
        let cfg = config();
        let mut layers = Vec::with_capacity(graph.layers.len());
        let mut commits = vec![];
        for (i, layer) in graph.layers.iter().enumerate() {
            match linear_rows(layer, &graph.shapes[i]) {
                Some(lr) => {
                    let n_in: usize = graph.shapes[i].iter().product();
                    let air = lr.air(&vec![0; n_in], &vec![0; lr.rows], true);
                    let (data, vk) = setup_layer(&cfg, &air).map_err(|reason| ZkError::Prove { layer: i, reason })?;
                    commits.push((i as u32, vk_bytes(&vk)));
                    let prep = air.prep.expect("built with parameters");
                    layers.push(Some(PreparedLayer { rows: lr, prep, data }));
                }
                None => layers.push(None),
            }
        }
        let commitment = ModelCommitment {
            version: PROOF_VERSION,
            structure: structure_digest(&public_structure(&graph)),
            layers: commits,
        };
        Ok(Self { graph, cfg, layers, commitment, private: std::sync::OnceLock::new() })
    }

    /// The model's commitment.
    pub fn commitment(&self) -> &ModelCommitment {
        &self.commitment
    }

    /// The quantized graph.
    pub fn graph(&self) -> &QGraph {
        &self.graph
    }

    /// The private-input prover for this model (its setup commits the model once, on first use); an error
    /// names the first layer private-input proofs do not support yet.
    pub fn private(&self) -> Result<&private::PrivateProver, ZkError> {
        self.private.get_or_init(|| private::PrivateProver::new(self.graph.clone())).as_ref().map_err(Clone::clone)
    }

    /// Proves the integer execution on the quantized input `x`.
    pub fn prove(&self, x: &[i16]) -> Result<ModelProof, ZkError> {
        self.prove_with_progress(x, |_| {})
    }

    /// [`Prover::prove`], reporting progress: one event before the first layer proof (`done == 0`), then one as
    /// each layer proof finishes (`done` counts up to `total`; events arrive in `done` order). Every activation is
    /// known before proving starts, so the layers' proofs are independent and run in parallel (each one also
    /// parallel inside Plonky3).
    pub fn prove_with_progress(&self, x: &[i16], progress: impl FnMut(Progress) + Send) -> Result<ModelProof, ZkError> {
        use p3_maybe_rayon::prelude::*;
        let acts = self.graph.run_all(x).map_err(|e| ZkError::Input(e.to_string()))?;
        let todo: Vec<(usize, &PreparedLayer)> =
            self.layers.iter().enumerate().filter_map(|(i, p)| p.as_ref().map(|p| (i, p))).collect();
        let total = todo.len();
        let first = todo.first().map_or((self.layers.len(), 0), |(i, p)| (*i, p.rows.rows));
        let report = std::sync::Mutex::new((0usize, progress));
        {
            let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
            (r.1)(Progress { layer: first.0, done: 0, total, rows: first.1 });
        }
        let layers = todo
            .par_iter()
            .map(|&(i, p)| {
                let mut air = p.rows.air(&acts[i], &acts[i + 1], false);
                air.prep = Some(p.prep.clone());
                let trace = p.rows.trace(&air, &acts[i]);
                let pv = public_values(i, &acts[i], &acts[i + 1]);
                let proof = p3_uni_stark::prove_with_preprocessed(&self.cfg, &air, trace, &pv, Some(&p.data))
                    .map_err(|e| ZkError::Prove { layer: i, reason: format!("{e:?}") })?;
                let bytes = postcard::to_allocvec(&proof).expect("proofs serialize");
                let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                r.0 += 1;
                let done = r.0;
                (r.1)(Progress { layer: i, done, total, rows: p.rows.rows });
                Ok((i as u32, bytes))
            })
            .collect::<Result<Vec<_>, ZkError>>()?;
        Ok(ModelProof { version: PROOF_VERSION, security: SECURITY, activations: acts, layers })
    }
}

/// Where a proof stands: `done` of `total` layer proofs are finished; `layer` (graph index, `rows` trace rows) is
/// the one that just finished (or, with `done == 0`, the first one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Graph layer index.
    pub layer: usize,
    /// Layer proofs finished.
    pub done: usize,
    /// Layer proofs in all.
    pub total: usize,
    /// Trace rows of the layer being proven (outputs of the layer).
    pub rows: usize,
}

/// Computes the model's commitment (the verifier keys of its linear layers).
pub fn commit(g: &QGraph) -> Result<ModelCommitment, ZkError> {
    Ok(Prover::new(g.clone())?.commitment)
}

/// A proof that the model maps `activations[0]` to `activations.last()`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelProof {
    /// Format version.
    pub version: u16,
    /// Parameters the proofs were made with.
    pub security: Security,
    /// Every activation, input first.
    pub activations: Vec<Vec<i16>>,
    /// Postcard-encoded uni-STARK proof per linear layer, by layer index.
    pub layers: Vec<(u32, Vec<u8>)>,
}

impl ModelProof {
    /// Serialized bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("proofs serialize")
    }
    /// Parses proof bytes (never panics on garbage).
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        postcard::from_bytes(b).map_err(|e| ZkError::Malformed(e.to_string()))
    }
}

/// Proves the integer execution of `g` on the quantized input `x` (commits the parameters first; use a
/// [`Prover`] to do that once for many proofs).
pub fn prove(g: &QGraph, x: &[i16]) -> Result<ModelProof, ZkError> {
    Prover::new(g.clone())?.prove(x)
}

/// Verifies that `proof` shows `g` (committed as `commitment`) maps `x` to `y`. `g` supplies the public
/// structure only; the linear layers' parameters are checked through `commitment`.
pub fn verify(
    g: &QGraph,
    commitment: &ModelCommitment,
    x: &[i16],
    y: &[i16],
    proof: &ModelProof,
) -> Result<(), ZkError> {
    if proof.version != PROOF_VERSION || proof.security != SECURITY {
        return Err(ZkError::Header(format!("version {} {:?}", proof.version, proof.security)));
    }
    let acts = &proof.activations;
    if acts.len() != g.layers.len() + 1 {
        return Err(ZkError::Malformed(format!("{} activations for {} layers", acts.len(), g.layers.len())));
    }
    for (i, a) in acts.iter().enumerate() {
        if a.len() != g.shapes[i].iter().product::<usize>() {
            return Err(ZkError::Malformed(format!("activation {i} has {} values", a.len())));
        }
    }
    if acts[0] != x {
        return Err(ZkError::PublicMismatch("input"));
    }
    if acts.last().map(Vec::as_slice) != Some(y) {
        return Err(ZkError::PublicMismatch("output"));
    }
    let cfg = config();
    let mut proofs = proof.layers.iter();
    let mut commits = commitment.layers.iter();
    for (i, layer) in g.layers.iter().enumerate() {
        match linear_rows(layer, &g.shapes[i]) {
            Some(lr) => {
                let (pi, bytes) = proofs.next().ok_or(ZkError::Malformed(format!("no proof for layer {i}")))?;
                let (ci, cbytes) = commits.next().ok_or(ZkError::Commitment(format!("no commitment for layer {i}")))?;
                if *pi as usize != i || *ci as usize != i {
                    return Err(ZkError::Malformed(format!("layer order at {i}")));
                }
                let air = lr.air(&acts[i], &acts[i + 1], false);
                let stark: Proof<Config> =
                    postcard::from_bytes(bytes).map_err(|e| ZkError::Malformed(format!("layer {i}: {e}")))?;
                let commitment =
                    postcard::from_bytes(cbytes).map_err(|e| ZkError::Commitment(format!("layer {i}: {e}")))?;
                let h = height(lr.rows);
                let vk = Vk { width: lr.k + 2, degree_bits: h.trailing_zeros() as usize, commitment };
                let pv = public_values(i, &acts[i], &acts[i + 1]);
                // The library documents that malformed proofs may panic its verifier: contain that.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    p3_uni_stark::verify_with_preprocessed(&cfg, &air, &stark, &pv, Some(&vk))
                }));
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(ZkError::LayerProof { layer: i, reason: format!("{e:?}") }),
                    Err(_) => {
                        return Err(ZkError::LayerProof {
                            layer: i,
                            reason: "verifier rejected a malformed proof".into(),
                        });
                    }
                }
            }
            None => {
                // A layer without committed parameters: recompute it from its public input.
                let single = QGraph {
                    weight_bits: g.weight_bits,
                    shapes: vec![g.shapes[i].clone(), g.shapes[i + 1].clone()],
                    scales: vec![g.scales[i], g.scales[i + 1]],
                    layers: vec![layer.clone()],
                };
                let out = single.run(&acts[i]).map_err(|_| ZkError::LayerMismatch { layer: i })?;
                if out != acts[i + 1] {
                    return Err(ZkError::LayerMismatch { layer: i });
                }
            }
        }
    }
    if proofs.next().is_some() || commits.next().is_some() {
        return Err(ZkError::Malformed("extra layer proofs or commitments".into()));
    }
    Ok(())
}

/// What a receipt's zk evidence carries: the public structure and the proof.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// Public structure of the model (no linear parameters).
    pub structure: QGraph,
    /// The proof.
    pub proof: ModelProof,
}

impl Evidence {
    /// Serialized bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("evidence serializes")
    }
}

/// Refuses a structure that is inconsistent or would make a verifier allocate without bound.
fn check_structure_limits(s: &QGraph) -> Result<(), ZkError> {
    if s.layers.len() + 1 != s.shapes.len() || s.scales.len() != s.shapes.len() {
        return Err(ZkError::Malformed("inconsistent structure".into()));
    }
    // Bound the work a hostile receipt can ask of a verifier before anything is allocated.
    let too_big = s.layers.len() > 256
        || s.shapes
            .iter()
            .any(|s| s.len() > 8 || s.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).is_none_or(|n| n > 1 << 22));
    // Every linear layer's taps (outputs x taps per output) are materialized by the verifier: bound them too.
    let geo_ok = |g: &vouch_quant::Pool| {
        g.kernel.iter().all(|k| (1..=64).contains(k))
            && g.stride.iter().all(|k| (1..=64).contains(k))
            && g.pads.iter().all(|p| *p <= 64)
    };
    let taps_ok = s.layers.iter().zip(&s.shapes).all(|(l, shape)| {
        let n_in: usize = shape.iter().product();
        // outputs x taps per output, for a window layer with `per` taps per channel window
        let windows = |c: usize, geo: &vouch_quant::Pool, per: usize| {
            shape.len() == 4
                && geo_ok(geo)
                && geo.out_hw(shape[2], shape[3]).is_some_and(|(oh, ow)| {
                    c.checked_mul(oh * ow).and_then(|r| r.checked_mul(per)).is_some_and(|t| t <= 1 << 26)
                })
        };
        match l {
            QLayer::Dense { input, output, .. } => {
                *input == n_in && input.checked_mul(*output).is_some_and(|t| t <= 1 << 26)
            }
            QLayer::Conv { ic, oc, geo, .. } => {
                geo_ok(geo) && ic.checked_mul(geo.kernel[0] * geo.kernel[1]).is_some_and(|k| windows(*oc, geo, k))
            }
            QLayer::MaxPool(geo) | QLayer::AvgPool { geo, .. } => {
                geo_ok(geo) && windows(shape.get(1).copied().unwrap_or(0), geo, geo.kernel[0] * geo.kernel[1])
            }
            _ => true,
        }
    });
    if too_big || !taps_ok {
        return Err(ZkError::Malformed("structure exceeds the verifier's limits".into()));
    }
    Ok(())
}

/// Verifies receipt evidence: `commitment` and `evidence` bytes, the quantized input and output.
pub fn verify_evidence(commitment: &[u8], evidence: &[u8], x: &[i16], y: &[i16]) -> Result<usize, ZkError> {
    let c = ModelCommitment::from_bytes(commitment)?;
    let e: Evidence = postcard::from_bytes(evidence).map_err(|e| ZkError::Malformed(e.to_string()))?;
    check_structure_limits(&e.structure)?;
    verify(&e.structure, &c, x, y, &e.proof)?;
    Ok(e.proof.layers.len())
}

#[cfg(test)]
mod security_tests {
    use p3_field::coset::TwoAdicMultiplicativeCoset;
    use p3_uni_stark::{AirLayout, OpeningShape, Proof, StarkSecurityParams};

    use super::*;

    /// Plonky3's own calculator (conjectured regime: FRI queries and grinding, DEEP-ALI, composition, the
    /// batched openings, the hash's collision resistance) on every layer proof of two bench models: at least
    /// 100 bits, as the proof header and docs state.
    #[test]
    fn plonky3_conjectures_at_least_100_bits_for_every_layer_proof() {
        let perm = default_goldilocks_poseidon2_8();
        let mmcs = ValMmcs::new(Hash::new(perm.clone()), Compress::new(perm), 0);
        let fri = fri_parameters(ChallengeMmcs::new(mmcs));
        for name in ["mlp_small", "lenet_small"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/bench/models")
                .join(format!("{name}.onnx"));
            let g = vouch_quant::parse(&std::fs::read(path).unwrap()).unwrap();
            let n: usize = g.shapes[0].iter().product();
            let (q, _) = vouch_quant::quantize(&g, &vouch_quant::seeded_inputs(n, 8, 1)).unwrap();
            let x = q.quantize_input(&vouch_quant::seeded_inputs(n, 1, 2)[0]);
            let proof = prove(&q, &x).unwrap();
            let acts = &proof.activations;
            for (i, bytes) in &proof.layers {
                let i = *i as usize;
                let lr = linear_rows(&q.layers[i], &q.shapes[i]).unwrap();
                let air = lr.air(&acts[i], &acts[i + 1], false);
                let stark: Proof<Config> = postcard::from_bytes(bytes).unwrap();
                let log_h = height(lr.rows).trailing_zeros() as usize;
                let params = StarkSecurityParams::from_air::<Val, Challenge, _>(
                    fri.security_regime(),
                    &air,
                    AirLayout::from_air::<Val>(&air),
                    TwoAdicMultiplicativeCoset::new(Val::ONE, log_h).unwrap(),
                    128, // Goldilocks^2 challenges
                    128, // Poseidon2 with a 4 x 64-bit digest
                    1,   // no next-row openings
                    OpeningShape::new(),
                    fri.grinding_sites(),
                );
                let bits = stark.conjectured_security(&params).security_bits;
                assert!(bits >= 100, "{name} layer {i}: {bits} conjectured bits");
                eprintln!("{name} layer {i}: {bits} conjectured bits");
            }
        }
    }
}
