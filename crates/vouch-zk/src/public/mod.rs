//! Public-activation proofs: for the public input `x`, the [`QGraph`]'s integer executor yields the public output
//! `y`, with the linear layers' weights, biases and multipliers those committed in the model's
//! [`ModelCommitment`]. Every activation between layers is public (carried in the [`ModelProof`]); layers without
//! committed parameters (ReLU, pooling, reshape, affine constants, tables, softmax) are re-executed by the verifier
//! on them, and each Dense/Conv layer has one uni-STARK proof ([`air::LayerAir`]) with its parameters as
//! preprocessed columns.

pub mod air;

use p3_field::PrimeCharacteristicRing;
use p3_matrix::dense::RowMajorMatrix;
use p3_uni_stark::{PreprocessedVerifierKey, Proof};
use vouch_quant::QGraph;

use crate::config::{Config, PROOF_VERSION, SECURITY, Security, Val, config};
use crate::error::ZkError;
use crate::private;
use crate::rows::{LinearRows, height, linear_rows};
use crate::structure::{check_structure_limits, decode_commitment, public_structure, structure_digest};
use air::LayerAir;

/// Proof system name recorded in receipts.
pub const SYSTEM: &str = "vouch-zk/plonky3-0.8-goldilocks-v1";

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
    /// Hidden weights: the salt of their commitment (then only private-input proofs are made).
    hidden: Option<private::Salt>,
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
        Ok(Self { graph, cfg, layers, commitment, private: std::sync::OnceLock::new(), hidden: None })
    }

    /// A model whose weights stay hidden ([`private::PrivateProver::with_hidden_weights`]): its private-input
    /// prover is set up now; nothing is committed for public-activation proofs, which it refuses (their
    /// preprocessed weights would be opened by every proof).
    pub fn with_hidden_weights(graph: QGraph, salt: &private::Salt) -> Result<Self, ZkError> {
        let private = private::PrivateProver::with_hidden_weights(graph.clone(), salt)?;
        let commitment = ModelCommitment {
            version: PROOF_VERSION,
            structure: structure_digest(&public_structure(&graph)),
            layers: vec![],
        };
        Ok(Self {
            layers: graph.layers.iter().map(|_| None).collect(),
            graph,
            cfg: config(),
            commitment,
            private: std::sync::OnceLock::from(Ok(private)),
            hidden: Some(*salt),
        })
    }

    /// Whether the model's weights are hidden (only private-input proofs).
    pub fn hides_weights(&self) -> bool {
        self.hidden.is_some()
    }

    /// The model's commitment (for a model with hidden weights, its structure only: see [`Prover::private`]).
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
        if self.hidden.is_some() {
            return Err(ZkError::Input("the model's weights are hidden: it proves only with a private input".into()));
        }
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
    /// Parses evidence bytes (never panics on garbage).
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        postcard::from_bytes(b).map_err(|e| ZkError::Malformed(e.to_string()))
    }
}

/// Verifies receipt evidence: `commitment` and `evidence` bytes, the quantized input and output.
pub fn verify_evidence(commitment: &[u8], evidence: &[u8], x: &[i16], y: &[i16]) -> Result<usize, ZkError> {
    let c = ModelCommitment::from_bytes(commitment)?;
    let e = Evidence::from_bytes(evidence)?;
    check_structure_limits(&e.structure)?;
    verify(&e.structure, &c, x, y, &e.proof)?;
    Ok(e.proof.layers.len())
}

#[cfg(test)]
mod security_tests {
    use p3_field::coset::TwoAdicMultiplicativeCoset;
    use p3_uni_stark::{AirLayout, OpeningShape, Proof, StarkSecurityParams};

    use super::*;
    use crate::config::Challenge;
    use crate::config::{ChallengeMmcs, Compress, Hash, ValMmcs, fri_parameters};
    use p3_goldilocks::default_goldilocks_poseidon2_8;

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
