//! The zk path at push: calibration sets (stored by content id) and quantization of a pushed model.

use std::sync::Arc;

use axum::http::StatusCode;
use redb::{Database, ReadableDatabase, TableDefinition};
use vouch_api::ZkInfo;
use vouch_codec::DType;
use vouch_codec::tensor::parse_input_doc;
use vouch_hub::HubError;
use vouch_quant::QuantError;

use crate::error::ApiError;

/// hex id -> canonical JSON of the calibration set.
const CALIBRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("calibrations");
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
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_calibration",
                "a calibration set is a non-empty JSON array of input documents",
            )
        })?;
        if let Some(i) = arr.iter().position(|d| !d.is_object()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_calibration",
                format!("element {i} is not an input document"),
            ));
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

fn quant_error(e: QuantError) -> ApiError {
    match &e {
        QuantError::UnsupportedOp { op, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_zk_operator", e.to_string())
                .details(serde_json::json!({ "op": op }))
        }
        QuantError::InputSize { .. } | QuantError::Calibration(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_calibration", e.to_string())
        }
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_zk_model", e.to_string()),
    }
}

/// Records the private-input commitment (or why there is none) at push. Not part of [`quantize_model`]: a node
/// that re-quantizes a model to serve public zk proofs should not pay the private setup.
pub(crate) fn record_private(info: &mut ZkInfo, prover: &vouch_zk::Prover) {
    match prover.private() {
        Ok(p) => info.private_commitment = Some(hex::encode(p.commitment().to_bytes())),
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
) -> Result<(ZkInfo, vouch_zk::Prover), ApiError> {
    if size > MAX_ZK_MODEL_BYTES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_zk_model",
            format!("the zk path takes models up to {MAX_ZK_MODEL_BYTES} bytes"),
        ));
    }
    let docs = calibrations.get(calibration)?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "calibration_not_found", format!("no calibration set {calibration}"))
    })?;
    let bytes = std::fs::read(path).map_err(ApiError::internal)?;
    let graph = vouch_quant::parse(&bytes).map_err(quant_error)?;
    let inputs = docs
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, doc)| {
            let bad = |m: String| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_calibration", format!("calibration input {i}: {m}"))
            };
            let map = parse_input_doc(doc, |_| Some(DType::F32)).map_err(|(n, e)| bad(format!("{n}: {e}")))?;
            let t = map.get(&graph.input).ok_or_else(|| bad(format!("no input {:?}", graph.input)))?;
            match t.data() {
                vouch_codec::TensorData::F32(v) => Ok(v.clone()),
                _ => Err(bad("the zk path takes f32 inputs".into())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (qgraph, report) = vouch_quant::quantize(&graph, &inputs).map_err(quant_error)?;
    if !report.acceptable() && !force {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantization_rejected",
            format!(
                "quantization keeps the argmax on only {:.2}% of {} calibration inputs (max abs error {:.3e}); push with --force to accept",
                report.argmax_agreement * 100.0,
                report.samples,
                report.max_abs_error
            ),
        )
        .details(serde_json::to_value(&report).map_err(ApiError::internal)?));
    }
    let prover = vouch_zk::Prover::new(qgraph)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_zk_model", e.to_string()))?;
    let info = ZkInfo {
        calibration: calibration.to_owned(),
        samples: report.samples,
        weight_bits: report.weight_bits,
        argmax_agreement: report.argmax_agreement,
        max_abs_error: report.max_abs_error,
        mean_abs_error: report.mean_abs_error,
        forced: !report.acceptable(),
        commitment: Some(hex::encode(prover.commitment().to_bytes())),
        private_commitment: None,
        private_unsupported: None,
    };
    Ok((info, prover))
}

/// Verifies a zk receipt this node is about to issue with the offline verifier (`vouch verify`'s checks), so the
/// node never hands out a proof it could not verify itself. A failure is a bug in the prover for this model's
/// shape: it answers `500 proof_self_check_failed` naming the failing instance or layer, counts it and logs the
/// model and its shapes; the caller stores nothing.
pub(crate) fn self_check(
    metrics: &crate::metrics::Metrics,
    receipt: &vouch_codec::Receipt,
    graph: &vouch_quant::QGraph,
) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let checked = vouch_receipt::verify(receipt, &vouch_receipt::VerifyOptions::default());
    metrics.proof_self_check_seconds.observe(started.elapsed().as_secs_f64());
    let Err(e) = checked else { return Ok(()) };
    metrics.proof_self_checks_failed.inc();
    let model = receipt.body.model.to_string();
    tracing::error!(%model, shapes = ?graph.shapes, error = %e, "zk.self_check: a produced proof does not verify; no receipt issued");
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "proof_self_check_failed",
        format!("the proof this node produced does not verify, so no receipt was issued: {e}"),
    )
    .details(serde_json::json!({ "model": model, "reason": e.to_string(), "shapes": graph.shapes })))
}

/// `y` with its first element one unit off (`fault_corrupt_proofs`).
pub(crate) fn corrupt(y: &mut [i16]) {
    if let Some(v) = y.first_mut() {
        *v = if *v == i16::MAX { *v - 1 } else { *v + 1 };
    }
}
