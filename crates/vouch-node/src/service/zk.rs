//! The zk path: calibration sets (stored by content id), quantization and commitment of a pushed model, the bounded
//! single-flight cache of committed provers, proving (public activations or a private input), and the self-check
//! every proof passes before its receipt is issued.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, TableDefinition};
use vouch_api::{ModelVersion, ZkInfo};
use vouch_codec::tensor::parse_input_doc;
use vouch_codec::{DType, ModelId, Receipt, Tensor, TensorData, TensorMap};
use vouch_hub::HubError;
use vouch_quant::QGraph;

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::execution::ProgressTx;

/// hex id -> canonical JSON of the calibration set.
const CALIBRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("calibrations");
/// model id -> the salt (hex) of its hidden weights' commitment.
const WEIGHT_SALTS: TableDefinition<&str, &str> = TableDefinition::new("weight_salts");
/// Largest model file quantized (zk models are small; the whole file is parsed in memory).
pub(crate) const MAX_ZK_MODEL_BYTES: u64 = 256 << 20;

fn db(e: impl std::fmt::Display) -> HubError {
    HubError::Db(e.to_string())
}

pub(crate) struct Calibrations {
    db: Arc<Database>,
}

impl Calibrations {
    pub fn open(db: Arc<Database>) -> Result<Self, HubError> {
        let tx = db.begin_write().map_err(self::db)?;
        tx.open_table(CALIBRATIONS).map_err(self::db)?;
        tx.commit().map_err(self::db)?;
        Ok(Self { db })
    }

    /// Stores a calibration set (a non-empty JSON array of input documents); returns its id and size.
    pub fn put(&self, docs: &serde_json::Value) -> Result<(String, usize), ApiError> {
        let arr = docs.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
            ApiError::new(Code::InvalidCalibration, "a calibration set is a non-empty JSON array of input documents")
        })?;
        if let Some(i) = arr.iter().position(|d| !d.is_object()) {
            return Err(ApiError::new(Code::InvalidCalibration, format!("element {i} is not an input document")));
        }
        // serde_json's map is ordered, so this text is canonical for the value.
        let bytes = serde_json::to_vec(docs).map_err(ApiError::internal)?;
        let id = blake3::hash(&bytes).to_hex().to_string();
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(CALIBRATIONS).map_err(db)?.insert(id.as_str(), bytes.as_slice()).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok((id, arr.len()))
    }

    pub fn get(&self, id: &str) -> Result<Option<serde_json::Value>, HubError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(CALIBRATIONS).map_err(db)?;
        match table.get(id).map_err(db)? {
            Some(v) => serde_json::from_slice(v.value()).map(Some).map_err(db),
            None => Ok(None),
        }
    }
}

/// The salts of hidden weights' commitments, one per model id: made at the model's first push with private
/// weights and kept (the same model always has the same commitment on this node). Secret: with the salt, anyone
/// holding a guess of the weights could test it against the public commitment.
pub(crate) struct WeightSalts {
    db: Arc<Database>,
}

impl WeightSalts {
    pub fn open(db: Arc<Database>) -> Result<Self, HubError> {
        let tx = db.begin_write().map_err(self::db)?;
        tx.open_table(WEIGHT_SALTS).map_err(self::db)?;
        tx.commit().map_err(self::db)?;
        Ok(Self { db })
    }

    /// The salt of `id`'s weights, made and stored now if it has none.
    pub fn get_or_create(&self, id: &ModelId) -> Result<vouch_zk::private::Salt, ApiError> {
        if let Some(s) = self.get(id)? {
            return Ok(s);
        }
        let salt = vouch_zk::private::Salt::random();
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(WEIGHT_SALTS).map_err(db)?.insert(id.to_string().as_str(), salt.to_hex().as_str()).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(salt)
    }

    /// The salt of `id`'s weights, if it was pushed with private weights here.
    pub fn get(&self, id: &ModelId) -> Result<Option<vouch_zk::private::Salt>, ApiError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(WEIGHT_SALTS).map_err(db)?;
        let Some(v) = table.get(id.to_string().as_str()).map_err(db)? else { return Ok(None) };
        vouch_zk::private::Salt::from_hex(v.value()).map(Some).map_err(ApiError::internal)
    }
}

/// Records the private-input commitment (or why there is none) at push. Not part of [`quantize_model`]: a node
/// that re-quantizes a model to serve public zk proofs should not pay the private setup.
pub(crate) fn record_private(info: &mut ZkInfo, prover: &vouch_zk::Prover) {
    match prover.private() {
        Ok(p) => {
            info.private_commitment = Some(hex::encode(p.commitment().to_bytes()));
            info.weights_commitment = p.commitment().weights.map(|w| w.to_hex());
        }
        Err(e) => info.private_unsupported = Some(e.to_string()),
    }
}

/// Quantizes the model file at `path` with calibration set `calibration`; refuses a quantization that
/// changes the argmax on more than 1% of the calibration inputs unless `force`.
pub(crate) fn quantize_model(
    path: &std::path::Path,
    size: u64,
    calibrations: &Calibrations,
    calibration: &str,
    force: bool,
    hidden: Option<&vouch_zk::private::Salt>,
) -> Result<(ZkInfo, vouch_zk::Prover), ApiError> {
    if size > MAX_ZK_MODEL_BYTES {
        return Err(ApiError::new(
            Code::UnsupportedZkModel,
            format!("the zk path takes models up to {MAX_ZK_MODEL_BYTES} bytes"),
        ));
    }
    let docs = calibrations
        .get(calibration)?
        .ok_or_else(|| ApiError::new(Code::CalibrationNotFound, format!("no calibration set {calibration}")))?;
    let bytes = std::fs::read(path).map_err(ApiError::internal)?;
    let graph = vouch_quant::parse(&bytes)?;
    let inputs = docs
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, doc)| {
            let bad = |m: String| ApiError::new(Code::InvalidCalibration, format!("calibration input {i}: {m}"));
            let map = parse_input_doc(doc, |_| Some(DType::F32)).map_err(|(n, e)| bad(format!("{n}: {e}")))?;
            let t = map.get(&graph.input).ok_or_else(|| bad(format!("no input {:?}", graph.input)))?;
            match t.data() {
                vouch_codec::TensorData::F32(v) => Ok(v.clone()),
                _ => Err(bad("the zk path takes f32 inputs".into())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (qgraph, report) = vouch_quant::quantize(&graph, &inputs)?;
    if !report.acceptable() && !force {
        return Err(ApiError::new(
            Code::QuantizationRejected,
            format!(
                "quantization keeps the argmax on only {:.2}% of {} calibration inputs (max abs error {:.3e}); push with --force to accept",
                report.argmax_agreement * 100.0,
                report.samples,
                report.max_abs_error
            ),
        )
        .details(serde_json::to_value(&report).map_err(ApiError::internal)?));
    }
    let unsupported = |e: vouch_zk::ZkError| ApiError::new(Code::UnsupportedZkModel, e.to_string());
    let prover = match hidden {
        // Hidden weights: nothing public is committed; a layer private proofs do not cover is an error here.
        Some(salt) => vouch_zk::Prover::with_hidden_weights(qgraph, salt).map_err(unsupported)?,
        None => vouch_zk::Prover::new(qgraph).map_err(unsupported)?,
    };
    let info = ZkInfo {
        calibration: calibration.to_owned(),
        samples: report.samples,
        weight_bits: report.weight_bits,
        argmax_agreement: report.argmax_agreement,
        max_abs_error: report.max_abs_error,
        mean_abs_error: report.mean_abs_error,
        forced: !report.acceptable(),
        commitment: hidden.is_none().then(|| hex::encode(prover.commitment().to_bytes())),
        private_commitment: None,
        private_unsupported: None,
        hidden_weights: hidden.is_some(),
        weights_commitment: None,
    };
    Ok((info, prover))
}

/// Verifies a zk receipt this node is about to issue with the offline verifier (`vouch verify`'s checks), so the
/// node never hands out a proof it could not verify itself. A failure is a bug in the prover for this model's
/// shape: it answers `500 proof_self_check_failed` naming the failing instance or layer, counts it and logs the
/// model and its shapes; the caller stores nothing.
fn self_check(metrics: &crate::metrics::Metrics, receipt: &Receipt, graph: &QGraph) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let checked = vouch_receipt::verify(receipt, &vouch_receipt::VerifyOptions::default());
    metrics.proof_self_check_seconds.observe(started.elapsed().as_secs_f64());
    let Err(e) = checked else { return Ok(()) };
    metrics.proof_self_checks_failed.inc();
    let model = receipt.body.model.to_string();
    tracing::error!(%model, shapes = ?graph.shapes, error = %e, "zk.self_check: a produced proof does not verify; no receipt issued");
    Err(ApiError::new(
        Code::ProofSelfCheckFailed,
        format!("the proof this node produced does not verify, so no receipt was issued: {e}"),
    )
    .details(serde_json::json!({ "model": model, "reason": e.to_string(), "shapes": graph.shapes })))
}

/// `y` with its first element one unit off (`fault_corrupt_proofs`).
fn corrupt(y: &mut [i16]) {
    if let Some(v) = y.first_mut() {
        *v = if *v == i16::MAX { *v - 1 } else { *v + 1 };
    }
}

/// Committed provers by model id: at most `capacity`, least recently used evicted; one build per model at a time
/// (concurrent requests for a model being committed wait for that build instead of repeating it).
pub(crate) struct Provers {
    slots: Mutex<lru::LruCache<ModelId, Slot>>,
}

/// One model's prover, once built; its lock is held while it is being built.
type Slot = Arc<Mutex<Option<Arc<vouch_zk::Prover>>>>;

impl Provers {
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self { slots: Mutex::new(lru::LruCache::new(capacity)) }
    }

    fn slot(&self, id: ModelId) -> Slot {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(id, Default::default).clone()
    }

    /// Keeps a prover built at push.
    pub fn insert(&self, id: ModelId, prover: vouch_zk::Prover) {
        *self.slot(id).lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(prover));
    }

    /// The prover of `id`, built by `build` on a miss (a failed build is not kept: the next request tries again).
    pub fn get_or_build(
        &self,
        id: ModelId,
        build: impl FnOnce() -> Result<vouch_zk::Prover, ApiError>,
    ) -> Result<Arc<vouch_zk::Prover>, ApiError> {
        let slot = self.slot(id);
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = guard.as_ref() {
            return Ok(p.clone());
        }
        let p = Arc::new(build()?);
        *guard = Some(p.clone());
        Ok(p)
    }
}

/// A zk receipt's output: the proven int16 tensor, under the model's output name.
fn zk_output(record: &ModelVersion, graph: &QGraph, y: Vec<i16>) -> Result<TensorMap, ApiError> {
    let shape = graph.shapes.last().map(|s| s.iter().map(|d| *d as u64).collect()).unwrap_or_default();
    let name = record.outputs.first().map(|o| o.name.clone()).unwrap_or_else(|| "y".into());
    let tensor = Tensor::new(shape, TensorData::I16(y)).map_err(ApiError::internal)?;
    Ok(TensorMap::from([(name, tensor)]))
}

/// Proves a zk inference on a model pushed with `--zk` and returns its receipt, verified by this node's own verifier
/// (not stored yet). With `salt`, the input stays private: one hiding batch proof about its commitment.
pub(crate) fn prove(
    st: &NodeState,
    record: &ModelVersion,
    inputs: &TensorMap,
    salt: Option<vouch_zk::private::Salt>,
    progress: Option<&ProgressTx>,
) -> Result<Receipt, ApiError> {
    let zk = record
        .zk
        .as_ref()
        .ok_or_else(|| ApiError::new(Code::NotZkModel, "this model version was not pushed with --zk"))?;
    if zk.hidden_weights && salt.is_none() {
        return Err(ApiError::new(
            Code::ModelPrivate,
            "the model was pushed with private weights: its zk proofs hide the input too; send a private_input salt \
             (vouch infer --private-input)",
        ));
    }
    let prover = st.provers.get_or_build(record.id, || {
        let path = st.hub.blob_path(&record.id)?;
        let hidden = if zk.hidden_weights {
            let salt = st.weight_salts.get(&record.id)?;
            Some(salt.ok_or_else(|| ApiError::internal("a model with private weights has no stored salt"))?)
        } else {
            None
        };
        Ok(quantize_model(&path, record.size, &st.calibrations, &zk.calibration, true, hidden.as_ref())?.1)
    })?;
    let graph = prover.graph();
    let (name, tensor) = inputs.iter().next().ok_or_else(|| ApiError::internal("validated inputs are empty"))?;
    let TensorData::F32(x) = tensor.data() else {
        return Err(ApiError::new(Code::DtypeMismatch, "the zk path takes an f32 input"));
    };
    let xq = graph.quantize_input(x);
    let _span = tracing::info_span!("zk.prove", model = %record.id, private = salt.is_some()).entered();
    let receipt = match salt {
        Some(salt) => prove_private(st, &prover, record, &xq, &salt, progress)?,
        None => prove_public(st, &prover, record, name, xq, progress)?,
    };
    self_check(&st.metrics, &receipt, graph)?;
    Ok(receipt)
}

fn send(progress: Option<&ProgressTx>, event: serde_json::Value) {
    if let Some(tx) = progress {
        let _ = tx.send(event);
    }
}

/// A zk receipt with the public-activation proof (one STARK per linear layer).
fn prove_public(
    st: &NodeState,
    prover: &vouch_zk::Prover,
    record: &ModelVersion,
    input_name: &str,
    xq: Vec<i16>,
    progress: Option<&ProgressTx>,
) -> Result<Receipt, ApiError> {
    let graph = prover.graph();
    let commitment = hex::decode(record.zk.as_ref().and_then(|z| z.commitment.as_deref()).unwrap_or_default())
        .map_err(ApiError::internal)?;
    let report = |p: vouch_zk::Progress| {
        send(
            progress,
            serde_json::json!({"event": "progress", "stage": "prove", "layer": p.layer, "done": p.done,
                "total": p.total, "rows": p.rows}),
        )
    };
    let mut proof =
        prover.prove_with_progress(&xq, report).map_err(|e| ApiError::new(Code::ProofFailed, e.to_string()))?;
    if st.config.fault_corrupt_proofs
        && let Some(last) = proof.activations.last_mut()
    {
        corrupt(last);
    }
    let y = proof.activations.last().cloned().unwrap_or_default();
    let shape = graph.shapes.first().map(|s| s.iter().map(|d| *d as u64).collect()).unwrap_or_default();
    let qin = TensorMap::from([(
        input_name.to_owned(),
        Tensor::new(shape, TensorData::I16(xq)).map_err(ApiError::internal)?,
    )]);
    let qout = zk_output(record, graph, y)?;
    let evidence = vouch_zk::Evidence { structure: vouch_zk::public_structure(graph), proof }.to_bytes();
    let proof = vouch_receipt::ZkProof { system: vouch_zk::SYSTEM.into(), commitment, evidence };
    Ok(st.issuer_for(record).zk(record.id, rand::random(), qin, qout, proof))
}

/// A private-input zk receipt: one hiding batch proof; the input never leaves this function.
fn prove_private(
    st: &NodeState,
    prover: &vouch_zk::Prover,
    record: &ModelVersion,
    xq: &[i16],
    salt: &vouch_zk::private::Salt,
    progress: Option<&ProgressTx>,
) -> Result<Receipt, ApiError> {
    let private = prover.private().map_err(|e| ApiError::new(Code::PrivateInputUnsupported, e.to_string()))?;
    let commitment = private.commitment().to_bytes();
    let recorded = record.zk.as_ref().and_then(|z| z.private_commitment.as_deref());
    if recorded.is_some_and(|c| c != hex::encode(&commitment)) {
        return Err(ApiError::new(
            Code::ZkCommitmentOutdated,
            "the private-input commitment recorded at push is not the one this node's prover computes (it was made \
             by an older prover); push the model again as a new version",
        ));
    }
    let step = |done: usize| {
        send(
            progress,
            serde_json::json!({"event": "progress", "stage": "prove", "layer": 0, "done": done, "total": 1, "rows": 0}),
        )
    };
    step(0);
    let (mut y, proof) = private.prove(xq, salt).map_err(|e| ApiError::new(Code::ProofFailed, e.to_string()))?;
    if st.config.fault_corrupt_proofs {
        corrupt(&mut y);
    }
    step(1);
    let graph = prover.graph();
    let input = proof.input;
    let qout = zk_output(record, graph, y)?;
    let evidence =
        vouch_zk::private::PrivateEvidence { structure: vouch_zk::public_structure(graph), proof }.to_bytes();
    let proof = vouch_receipt::ZkProof { system: vouch_zk::private::PRIVATE_SYSTEM.into(), commitment, evidence };
    Ok(st.issuer_for(record).zk_private(record.id, rand::random(), input, qout, proof))
}
