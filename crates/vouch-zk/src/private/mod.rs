//! Zero-knowledge proofs of inference on a private input.
//!
//! Statement: for the public output `y` and the public input commitment `C`, there are an int16 input `x` and
//! a salt `s` with `C = commit_input(x, s)` such that the committed model's integer executor maps `x` to `y`.
//!
//! One batch STARK (`p3-batch-stark`) proves the whole model over a hiding PCS ([`config`]: salted Merkle leaves,
//! randomized traces and quotient). Every activation, the input and the salt live only in hidden main traces.
//! Instances are linked by LogUp buses ([`instance`]): the instance producing an activation provides
//! `(index, value)` with a hidden multiplicity; every reader looks its taps up. The [`plan`] picks the instances:
//!
//! | instance (`instances/`) | rows | proves |
//! |---|---|---|
//! | input | 4 input elements per row | each is in `[-32767, 32767]` (2-byte range checks); provides the 4-lane groups (and single elements when a reader needs them) |
//! | sponge | one Poseidon2 permutation per row | `C` is the overwrite-mode sponge of `(s, x)` (`p3-poseidon2-air`) ([`commit`]) |
//! | linear (Dense, Conv, AveragePool, Affine; at most 128 taps) | one per output | `y = clamp(requant(b + sum w x))` (the [`Rq`](crate::gadget::Rq) gadget), taps looked up; an affine layer (Add/Sub/Mul by constants) is one tap with weight `mul`, bias `add`, multiplier 1 |
//! | mac + requant (more than 128 taps) | up to 128 taps per row, an accumulator over each output's rows | the last row sends `(output, acc)` to a requant instance that provides the activation |
//! | relu (when the values may be negative) | one per element | `y = max(x, 0)` with a sign bit and a 2-byte range check |
//! | maxpool | one per output | `y` is at least every valid tap (2-byte range checks) and equals one of them (one-hot selector) |
//! | table + lookup (Sigmoid, Tanh) | 16 of the 4,096 bucketed entries (65,535 direct) per row; one per element | the table provides each `(key, value)` from preprocessed columns; each element's is looked up in it |
//! | table + softmax | 16 of the 65,535 exp entries per row; one per element | the row maximum, `exp` of each gap looked up, the sum, and the division with a range-checked remainder |
//! | output | one per element | the last activation equals the public `y` |
//! | bytes | 256 | every byte value, with a hidden multiplicity: the range checks (the requantization gadget's witnesses, the input, relu, maxpool) and the packed weights look their bytes up here |
//! | packed, params, weights sponge (hidden weights) | 7 int8 weight groups per row; one plain group per row; one permutation per row | the layers' weights, biases and multipliers, read on bus `pw`, hash (int8 weights packed 7 to an element, bytes range-checked) to the public weights commitment |
//!
//! Weights, biases, multipliers, tap indices and selectors are preprocessed columns: bound by the model's
//! [`PrivateCommitment`], not hidden (models are public on the hub), unless the model hides its weights
//! ([`PrivateProver::with_hidden_weights`]): then the Dense and Conv parameters live only in the hidden traces and
//! [`PrivateCommitment::weights`] binds them. Reshape/Flatten only rename a bus; a ReLU after a fused clamp is an
//! alias.

mod air;
mod commit;
pub mod config;
mod instance;
mod instances;
mod plan;

use p3_air::BaseAir;
use p3_batch_stark::common::{GlobalPreprocessed, PreprocessedInstanceMeta};
use p3_batch_stark::{BatchProof, BatchVerificationError, ProverData, StarkInstance, VerificationError};
use p3_matrix::dense::RowMajorMatrix;
use vouch_quant::QGraph;

use crate::ZkError;
use crate::config::{Security, Val};
use crate::structure::{public_structure, structure_digest};
pub use air::PrivAir;
pub use commit::{InputCommitment, Salt, WeightsCommitment, commit_input};
pub use config::{
    HidingConfig, HidingConfigV1, HidingConfigV2, PRIVATE_SECURITY, hiding_config, hiding_config_v1, hiding_config_v2,
    private_security,
};
use instance::{Layout, Reads, Witness};

/// Proof system name recorded in receipts for private-input proofs (version 4: version 3's parameters, linear layers
/// reshaped into narrower and less padded traces).
pub const PRIVATE_SYSTEM: &str = "vouch-zk/plonky3-0.8-goldilocks-private-v4";
/// The version-3 proof system (Keccak Merkle commitments, compact FRI parameters): its receipts still verify.
pub const PRIVATE_SYSTEM_V3: &str = "vouch-zk/plonky3-0.8-goldilocks-private-v3";
/// The version-2 proof system (Keccak, the public proofs' FRI parameters): its receipts still verify.
pub const PRIVATE_SYSTEM_V2: &str = "vouch-zk/plonky3-0.8-goldilocks-private-v2";
/// The version-1 proof system (Poseidon2 Merkle commitments): its receipts still verify.
pub const PRIVATE_SYSTEM_V1: &str = "vouch-zk/plonky3-0.8-goldilocks-private-v1";
/// Format version of the private proofs and commitments made now (versions 1-3 are verified too).
pub const PRIVATE_VERSION: u16 = 4;

/// The proof format version a receipt's private proof system names (`None`: not a private-input system).
pub fn private_system_version(system: &str) -> Option<u16> {
    match system {
        PRIVATE_SYSTEM => Some(PRIVATE_VERSION),
        PRIVATE_SYSTEM_V3 => Some(3),
        PRIVATE_SYSTEM_V2 => Some(2),
        PRIVATE_SYSTEM_V1 => Some(1),
        _ => None,
    }
}

/// The private-input proof system and its parameters, as reports name it for people.
pub const SYSTEM_DESCRIPTION: &str = "one Plonky3 batch STARK over Goldilocks with a hiding PCS (Keccak Merkle \
     commitments), FRI blowup 8, 32 queries, 8 grinding bits";

/// Whether private-input proofs support every layer of `g`.
pub fn supports(g: &QGraph) -> Result<(), ZkError> {
    plan::plan(g, false, Layout::CURRENT).map(|_| ())
}

/// Degree bits of each instance's extended (hiding) trace.
fn ext_degree_bits(airs: &[PrivAir]) -> Vec<usize> {
    airs.iter().map(|a| a.inst.height().trailing_zeros() as usize + 1).collect()
}

/// The public values of each instance: a sponge's commitment (the input's, or the hidden weights'), none for the
/// others.
fn public_values(airs: &[PrivAir], input: &InputCommitment, weights: Option<&WeightsCommitment>) -> Vec<Vec<Val>> {
    airs.iter()
        .map(|a| match &a.inst {
            air::Inst::Sponge(s) if s.is_input() => input.elems(),
            air::Inst::Sponge(_) => weights.map(WeightsCommitment::elems).unwrap_or_default(),
            _ => vec![],
        })
        .collect()
}

/// The model's commitment for private-input proofs: the digest of its public structure, the global commitment to
/// every instance's preprocessed columns (weights, biases, multipliers, indices, selectors) and, for a model with
/// hidden weights, the commitment to its weights (then the preprocessed columns hold no weights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateCommitment {
    /// Format version.
    pub version: u16,
    /// Digest of the public structure.
    pub structure: [u8; 32],
    /// Serialized preprocessed commitment (a Merkle cap).
    pub preprocessed: Vec<u8>,
    /// Hidden weights: their commitment (the model's zk identity).
    pub weights: Option<WeightsCommitment>,
}

/// The encoding of a [`PrivateCommitment`] without hidden weights (a hidden-weights commitment appends them).
#[derive(serde::Serialize, serde::Deserialize)]
struct CommitmentHead {
    version: u16,
    structure: [u8; 32],
    preprocessed: Vec<u8>,
}

impl PrivateCommitment {
    /// Canonical bytes: version, structure, preprocessed commitment, then the weights commitment when the weights
    /// are hidden (so commitments of models with public weights keep their bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let head = CommitmentHead {
            version: self.version,
            structure: self.structure,
            preprocessed: self.preprocessed.clone(),
        };
        let mut b = postcard::to_allocvec(&head).expect("commitments serialize");
        if let Some(w) = &self.weights {
            b.extend(postcard::to_allocvec(w).expect("commitments serialize"));
        }
        b
    }
    /// Parses commitment bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ZkError> {
        let (head, rest): (CommitmentHead, &[u8]) =
            postcard::take_from_bytes(b).map_err(|e| ZkError::Commitment(e.to_string()))?;
        if !(1..=PRIVATE_VERSION).contains(&head.version) {
            return Err(ZkError::Header(format!("commitment version {}", head.version)));
        }
        let weights = if rest.is_empty() {
            None
        } else {
            let (w, rest): (WeightsCommitment, &[u8]) =
                postcard::take_from_bytes(rest).map_err(|e| ZkError::Commitment(e.to_string()))?;
            if !rest.is_empty() || w.0.iter().any(|e| *e >= <Val as p3_field::PrimeField64>::ORDER_U64) {
                return Err(ZkError::Commitment("malformed weights commitment".into()));
            }
            Some(w)
        };
        Ok(Self { version: head.version, structure: head.structure, preprocessed: head.preprocessed, weights })
    }
    /// Whether the model's weights are hidden.
    pub fn hides_weights(&self) -> bool {
        self.weights.is_some()
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
    airs: Vec<PrivAir>,
    data: ProverData<HidingConfig>,
    commitment: PrivateCommitment,
    /// Hidden weights: their groups and their commitment's salt.
    hidden: Option<(Vec<[Val; 4]>, Salt)>,
}

/// Deterministic randomness of the setup (it salts the public preprocessed columns' Merkle leaves).
const SETUP_SEED: &str = "VOUCH_ZK_PRIVATE_SETUP_V1";

impl PrivateProver {
    /// Plans the model's instances and commits their preprocessed columns.
    pub fn new(graph: QGraph) -> Result<Self, ZkError> {
        Self::setup(graph, None)
    }

    /// The same, for a model whose weights stay hidden: the Dense and Conv weights, biases and multipliers live only
    /// in each proof's hidden trace, bound by the public weights commitment `Sponge(salt, weights)`. The same model
    /// and salt give the same commitment; the salt stays with whoever holds the weights.
    pub fn with_hidden_weights(graph: QGraph, salt: &Salt) -> Result<Self, ZkError> {
        Self::setup(graph, Some(salt))
    }

    fn setup(graph: QGraph, salt: Option<&Salt>) -> Result<Self, ZkError> {
        Self::setup_layout(graph, salt, Layout::CURRENT)
    }

    /// The setup with the instances laid out as `layout` (another proof version's, for the tests of older versions).
    fn setup_layout(graph: QGraph, salt: Option<&Salt>, layout: Layout) -> Result<Self, ZkError> {
        let n_out = graph.shapes.last().map(|s| s.iter().product()).unwrap_or(0);
        let airs: Vec<PrivAir> = plan::plan(&graph, salt.is_some(), layout)?
            .iter()
            .map(|a| a.with_preprocessed().claiming(&vec![0; n_out]))
            .collect();
        let hidden = salt.map(|s| (param_groups(&airs), *s));
        let (data, preprocessed) = setup_with!(hiding_config(Some(SETUP_SEED)), &airs)?;
        let commitment = PrivateCommitment {
            version: PRIVATE_VERSION,
            structure: structure_digest(&public_structure(&graph)),
            preprocessed,
            weights: hidden.as_ref().map(|(groups, salt)| {
                let blocks = weights_layout(&airs).map(|l| l.sponge_blocks(groups)).unwrap_or_default();
                commit::commit_weights(&blocks, salt)
            }),
        };
        Ok(Self { graph, airs, data, commitment, hidden })
    }

    /// Each instance of the batch: what it proves, its trace height, main and preprocessed widths.
    pub fn instances(&self) -> Vec<(String, usize, usize, usize)> {
        self.airs.iter().map(|a| (a.inst.describe(), a.inst.height(), a.width(), a.preprocessed_width())).collect()
    }

    /// The model's private-input commitment.
    pub fn commitment(&self) -> &PrivateCommitment {
        &self.commitment
    }

    /// Every instance's trace for input `x` and `salt`, with the output; for the prover and its tests.
    fn traces(&self, x: &[i16], salt: &Salt) -> Result<(Vec<i16>, Vec<RowMajorMatrix<Val>>), ZkError> {
        let acts = self.graph.run_all(x).map_err(|e| ZkError::Input(e.to_string()))?;
        let y = acts.last().cloned().unwrap_or_default();
        // Bus values (the input, then each instance's provided activation) and the reads of each element.
        let buses: Vec<&[i16]> = std::iter::once(acts[0].as_slice())
            .chain(self.airs.iter().filter_map(|a| a.inst.provides()).map(|layer| acts[layer + 1].as_slice()))
            .collect();
        let params = self.hidden.as_ref().map(|(groups, salt)| (groups.as_slice(), salt));
        let mut reads = Reads {
            bus: buses.iter().map(|b| vec![0; b.len()]).collect(),
            groups: vec![0; x.len().div_ceil(4)],
            params: vec![0; params.map_or(0, |(g, _)| g.len())],
            bytes: vec![0; 256],
        };
        self.airs.iter().for_each(|a| a.inst.count_reads(&mut reads));
        if let (Some(layout), Some((groups, _))) = (weights_layout(&self.airs), params) {
            instances::count_bytes(&layout, groups, &mut reads);
        }
        let mut witness = Witness { buses, reads, x, salt, params };
        // The byte table last: its multiplicities count the bytes the other traces hold.
        let is_bytes = |a: &PrivAir| matches!(a.inst, air::Inst::Bytes(_));
        let traces: Vec<Option<RowMajorMatrix<Val>>> =
            self.airs.iter().map(|a| (!is_bytes(a)).then(|| a.inst.trace(&witness))).collect();
        for (a, t) in self.airs.iter().zip(&traces) {
            if let Some(t) = t {
                a.inst.count_trace_bytes(t, &mut witness.reads.bytes);
            }
        }
        let traces = traces.into_iter().zip(&self.airs).map(|(t, a)| t.unwrap_or_else(|| a.inst.trace(&witness)));
        Ok((y, traces.collect()))
    }

    /// Proves that the model maps the input `x`, committed with `salt`, to its output. Returns the output too.
    pub fn prove(&self, x: &[i16], salt: &Salt) -> Result<(Vec<i16>, PrivateProof), ZkError> {
        let (y, traces) = self.traces(x, salt)?;
        self.prove_traces(&y, &traces, salt, x)
    }

    fn prove_traces(
        &self,
        y: &[i16],
        traces: &[RowMajorMatrix<Val>],
        salt: &Salt,
        x: &[i16],
    ) -> Result<(Vec<i16>, PrivateProof), ZkError> {
        let airs: Vec<PrivAir> = self.airs.iter().map(|a| a.claiming(y)).collect();
        let input = commit_input(x, salt);
        let pvs = public_values(&airs, &input, self.commitment.weights.as_ref());
        let stark = prove_with!(hiding_config(None), &self.data, &airs, traces, &pvs)?;
        Ok((y.to_vec(), PrivateProof { version: PRIVATE_VERSION, security: PRIVATE_SECURITY, input, stark }))
    }
}

// The setup, proving and verification under one hiding configuration, written once for both proof versions (each
// expansion has concrete types, so Plonky3's bounds are checked there and not restated here).

/// The setup under configuration `$cfg`: `(prover data, serialized preprocessed commitment)`.
macro_rules! setup_with {
    ($cfg:expr, $airs:expr) => {{
        let (cfg, airs) = ($cfg, $airs);
        ProverData::from_airs_and_degrees(&cfg, airs, &ext_degree_bits(airs))
            .map_err(|e| ZkError::Prove { layer: 0, reason: format!("setup: {e:?}") })
            .and_then(|data| {
                let pre = data
                    .common
                    .preprocessed
                    .as_ref()
                    .ok_or_else(|| ZkError::Commitment("no preprocessed data".into()))?;
                let bytes = postcard::to_allocvec(&pre.commitment).expect("commitments serialize");
                Ok((data, bytes))
            })
    }};
}

/// One batch proof of `$traces` under `$cfg` with prover data `$data`, serialized.
macro_rules! prove_with {
    ($cfg:expr, $data:expr, $airs:expr, $traces:expr, $pvs:expr) => {{
        let refs: Vec<&RowMajorMatrix<Val>> = $traces.iter().collect();
        let instances = StarkInstance::new_multiple($airs, &refs, $pvs);
        p3_batch_stark::prove_batch(&$cfg, &instances, $data)
            .map(|proof| postcard::to_allocvec(&proof).expect("proofs serialize"))
            .map_err(|e| ZkError::Prove { layer: 0, reason: format!("{e:?}") })
    }};
}

/// Verifies the serialized batch proof `$stark` under `$cfg` (of config type `$sc`) against the serialized
/// preprocessed commitment `$pre`; errors name the failing instance when the verifier can tell.
macro_rules! verify_with {
    ($sc:ty, $cfg:expr, $airs:expr, $stark:expr, $pre:expr, $pvs:expr) => {{
        let (cfg, airs): ($sc, &[PrivAir]) = ($cfg, $airs);
        let degrees = ext_degree_bits(airs);
        let stark: BatchProof<$sc> =
            postcard::from_bytes($stark).map_err(|e| ZkError::Malformed(format!("stark: {e}")))?;
        let pre_commit = postcard::from_bytes($pre).map_err(|e| ZkError::Commitment(e.to_string()))?;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Lookups and layout from the AIRs alone (they carry no preprocessed trace, so nothing is committed
            // here); the preprocessed commitment is the model's.
            let mut data =
                ProverData::from_airs_and_degrees(&cfg, airs, &degrees).map_err(|e| (format!("{e:?}"), None))?;
            data.common.preprocessed = Some(GlobalPreprocessed {
                commitment: pre_commit,
                instances: airs
                    .iter()
                    .zip(&degrees)
                    .enumerate()
                    .map(|(i, (a, d))| {
                        let width = a.preprocessed_width();
                        Some(PreprocessedInstanceMeta { matrix_index: i, width, degree_bits: *d })
                    })
                    .collect(),
                matrix_to_instance: (0..airs.len()).collect(),
            });
            p3_batch_stark::verify_batch(&cfg, airs, &stark, $pvs, &data.common).map_err(|e| {
                // The batch verifier reports which instance's constraints fail at the out-of-domain point.
                let instance = match &e {
                    BatchVerificationError::Verification(VerificationError::OodEvaluationMismatch {
                        index: Some(i),
                    }) => airs.get(*i).map(|a| format!("instance {i}: {}", a.inst.describe())),
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
    }};
}
use {prove_with, setup_with};

/// How the hidden weights reach their sponge (`None`: the weights are not hidden).
fn weights_layout(airs: &[PrivAir]) -> Option<std::sync::Arc<instance::WeightsLayout>> {
    airs.iter().find_map(|a| match &a.inst {
        air::Inst::Sponge(s) => match &s.commits {
            instances::Commits::Weights(layout) => Some(layout.clone()),
            instances::Commits::Input => None,
        },
        _ => None,
    })
}

/// The hidden weights' groups, in [`PARAM_BUS`](instance::PARAM_BUS) order (each layer's, in plan order).
fn param_groups(airs: &[PrivAir]) -> Vec<[Val; 4]> {
    let layer = |a: &PrivAir| match &a.inst {
        // A layer split into two linear instances has its groups once.
        air::Inst::Linear(l) if l.offset == 0 => l.pw.map(|pw| pw.values(&l.rows)),
        air::Inst::Mac(m) => m.pw.map(|pw| pw.values(&m.rows)),
        _ => None,
    };
    airs.iter().filter_map(layer).flatten().map(|g| g.map(crate::gadget::fe)).collect()
}

#[cfg(test)]
mod tests;

/// Verifies that `proof` shows the model with public structure `g`, committed as `commitment`, maps the input
/// committed as `input` to `y`.
pub fn verify_private(
    g: &QGraph,
    commitment: &PrivateCommitment,
    input: &InputCommitment,
    y: &[i16],
    proof: &PrivateProof,
) -> Result<(), ZkError> {
    if private_security(proof.version) != Some(proof.security) {
        return Err(ZkError::Header(format!("version {} {:?}", proof.version, proof.security)));
    }
    if commitment.version != proof.version {
        return Err(ZkError::Header(format!(
            "a version {} proof against a version {} commitment",
            proof.version, commitment.version
        )));
    }
    if commitment.structure != structure_digest(&public_structure(g)) {
        return Err(ZkError::Commitment("the structure is not the committed model's".into()));
    }
    if proof.input != *input {
        return Err(ZkError::PublicMismatch("input commitment"));
    }
    let planned = plan::plan(g, commitment.hides_weights(), Layout::of(proof.version))?;
    let n_out: usize = g.shapes.last().map(|s| s.iter().product()).unwrap_or(0);
    if y.len() != n_out {
        return Err(ZkError::PublicMismatch("output"));
    }
    let airs: Vec<PrivAir> = planned.iter().map(|a| a.claiming(y)).collect();
    let pvs = public_values(&airs, input, commitment.weights.as_ref());
    let (stark, pre) = (proof.stark.as_slice(), commitment.preprocessed.as_slice());
    let seed = Some("VOUCH_ZK_VERIFY");
    match proof.version {
        1 => verify_with!(HidingConfigV1, hiding_config_v1(seed), &airs, stark, pre, &pvs),
        2 => verify_with!(HidingConfigV2, hiding_config_v2(seed), &airs, stark, pre, &pvs),
        _ => verify_with!(HidingConfig, hiding_config(seed), &airs, stark, pre, &pvs),
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

/// Verifies private-input receipt evidence of proof system `system` ([`PRIVATE_SYSTEM`] or an older version's:
/// [`PRIVATE_SYSTEM_V3`], [`PRIVATE_SYSTEM_V2`], [`PRIVATE_SYSTEM_V1`])
/// against the model's private commitment, the input commitment and the output.
pub fn verify_private_evidence(
    system: &str,
    commitment: &[u8],
    evidence: &[u8],
    input: &InputCommitment,
    y: &[i16],
) -> Result<(), ZkError> {
    let c = PrivateCommitment::from_bytes(commitment)?;
    let e = PrivateEvidence::from_bytes(evidence)?;
    if private_system_version(system) != Some(e.proof.version) {
        return Err(ZkError::Header(format!("a version {} proof named {system}", e.proof.version)));
    }
    crate::structure::check_structure_limits(&e.structure)?;
    verify_private(&e.structure, &c, input, y, &e.proof)
}

/// Where the bytes of a version-3 or -4 private proof's batch STARK go, one line per part (for `zk_bench`: the proof-size
/// work of issue 14 measures with it).
#[doc(hidden)]
pub fn stark_size_report(stark: &[u8]) -> Result<String, ZkError> {
    use std::fmt::Write;
    let p: BatchProof<HidingConfig> =
        postcard::from_bytes(stark).map_err(|e| ZkError::Malformed(format!("stark: {e}")))?;
    fn len<T: serde::Serialize>(x: &T) -> usize {
        postcard::to_allocvec(x).map_or(0, |v| v.len())
    }
    let (random, fri) = &p.opening_proof;
    let mut s = String::new();
    let total = stark.len();
    let mut line = |what: &str, n: usize| {
        let _ = writeln!(s, "{what:<44} {:>9} B  {:>5.1}%", n, 100.0 * n as f64 / total as f64);
    };
    line("commitments", len(&p.commitments));
    line("out-of-domain openings", len(&p.opened_values) + len(random));
    let queries = fri.commit_phase_openings.first().map_or(0, |c| c.sibling_values.len());
    for (i, b) in fri.input_openings.iter().enumerate() {
        let width: usize = b.opened_values.first().map_or(0, |q| q.iter().map(Vec::len).sum());
        let (salts, paths) = &b.opening_proof;
        line(&format!("input batch {i}: values ({width} per query)"), len(&b.opened_values));
        line(&format!("input batch {i}: salts"), len(salts));
        line(&format!("input batch {i}: Merkle paths ({} digests)", paths.sibling_hashes.len()), len(paths));
    }
    let sib: usize = fri.commit_phase_openings.iter().map(|c| len(&c.sibling_values)).sum();
    let paths: usize = fri.commit_phase_openings.iter().map(|c| len(&c.opening_proof)).sum();
    line(&format!("FRI folding: sibling values ({} rounds)", fri.commit_phase_openings.len()), sib);
    line("FRI folding: Merkle paths", paths);
    line("FRI: commitments, final polynomial, witnesses", len(&fri.commit_phase_commits) + len(&fri.final_poly));
    let _ = writeln!(s, "{queries} queries, {} instances, total {total} B", p.degree_bits.len());
    for (i, o) in p.opened_values.instances.iter().enumerate() {
        let b = &o.base_opened_values;
        let _ = writeln!(
            s,
            "  instance {i:>2}: 2^{:<2} rows, main {:>4}, preprocessed {:>4}, permutation {:>3} (ext), quotient {} x {} (ext)",
            p.degree_bits[i],
            b.trace_local.len(),
            b.preprocessed.as_ref().map_or(0, |x| x.local.len()),
            o.permutation_local.len(),
            b.quotient_chunks.len(),
            b.quotient_chunks.first().map_or(0, Vec::len),
        );
    }
    Ok(s)
}
