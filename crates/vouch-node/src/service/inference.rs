//! Inference and its receipt, for every mode: one input parser, one engine call, one finisher that stores the
//! receipt, counts it and settles it.

use std::sync::Arc;
use std::time::Instant;

use vouch_api::{InferRequest, ModelVersion};
use vouch_codec::tensor::parse_input_doc;
use vouch_codec::{Mode, Receipt, TensorMap};
use vouch_engine::{InputError, ModelInfo, validate_inputs};

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::{blocking, quorum, replicate, settlement, zk};

/// Progress events of one inference, for a client that streams them.
pub(crate) type ProgressTx = tokio::sync::mpsc::UnboundedSender<serde_json::Value>;

/// Parses an input document against a model's signature (shorthand arrays take the declared dtype) and checks names,
/// dtypes and shapes. The one parser of every mode: the same bad input gets the same code everywhere.
pub(crate) fn parse_inputs(record: &ModelVersion, doc: &serde_json::Value) -> Result<TensorMap, ApiError> {
    let declared = |n: &str| record.inputs.iter().find(|i| i.name == n).map(|i| i.dtype);
    let inputs = parse_input_doc(doc, declared).map_err(|(name, e)| {
        if !name.is_empty() && declared(&name).is_none() {
            let expected = record.inputs.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", ");
            return InputError::Unknown { name, expected }.into();
        }
        ApiError::new(Code::InvalidTensor, format!("input {name:?}: {e}")).details(serde_json::json!({ "input": name }))
    })?;
    validate_inputs(&record.inputs, &inputs)?;
    Ok(inputs)
}

/// Runs a model on inputs with this node's engine (compiled plans cached), on the blocking pool behind the
/// inference semaphore.
pub(crate) async fn run_model(
    s: &Arc<NodeState>,
    record: &ModelVersion,
    inputs: &TensorMap,
) -> Result<TensorMap, ApiError> {
    let _permit = s.infer_slots.acquire().await.map_err(ApiError::internal)?;
    let st = s.clone();
    let record = record.clone();
    let inputs = inputs.clone();
    blocking(move || {
        let path = st.hub.blob_path(&record.id)?;
        let info = ModelInfo {
            ir_version: 0,
            opsets: record.opsets.clone(),
            producer: record.producer.clone(),
            inputs: record.inputs.clone(),
            outputs: record.outputs.clone(),
            ops: record.ops.clone(),
        };
        let model = st.cache.get(record.id, &path, &info, &inputs)?;
        let _span = tracing::debug_span!("engine.run", model = %record.id).entered();
        let started = Instant::now();
        let outputs = model.run(&inputs)?;
        st.metrics.inference_seconds.observe(started.elapsed().as_secs_f64());
        Ok(outputs)
    })
    .await
}

/// Who submits a stored receipt's settlement to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// This node, the receipt's executor.
    Here,
    /// The round's first executor (quorum receipts).
    ByExecutor,
}

/// Stores an issued receipt (durably, before anyone sees it), counts it and settles it.
pub(crate) async fn finish(s: &Arc<NodeState>, receipt: Receipt, settle: Settle) -> Result<Receipt, ApiError> {
    s.receipts.put(&receipt, settle == Settle::Here).await?;
    s.metrics.receipts_issued.inc();
    if settle == Settle::Here {
        settlement::settle(s, receipt.id());
    }
    Ok(receipt)
}

/// `POST /v1/infer`: runs the request in its mode and returns the stored receipt.
pub(crate) async fn infer(
    s: Arc<NodeState>,
    req: InferRequest,
    progress: Option<ProgressTx>,
) -> Result<Receipt, ApiError> {
    let mode: Mode = req.mode.parse().map_err(|e: String| ApiError::new(Code::InvalidMode, e))?;
    if !matches!(mode, Mode::Signed | Mode::Zk | Mode::Quorum) {
        return Err(ApiError::new(
            Code::ModeUnavailable,
            format!("mode {} is not available on this node yet; it serves: signed, zk, quorum", mode.name()),
        ));
    }
    let record = replicate::ensure_model(&s, &req.model).await?;
    if mode == Mode::Quorum {
        return quorum::infer(s, record, req.inputs, req.quorum, req.job_tx).await;
    }
    if req.job_tx.is_some() {
        return Err(ApiError::new(Code::InvalidJobTx, "job_tx is for quorum mode"));
    }
    let salt = match (&req.private_input, mode) {
        (None, _) => None,
        (Some(p), Mode::Zk) => Some(
            vouch_zk::private::Salt::from_hex(&p.salt)
                .map_err(|e| ApiError::new(Code::InvalidPrivateInput, e.to_string()))?,
        ),
        (Some(_), _) => return Err(ApiError::new(Code::InvalidPrivateInput, "private_input is for zk mode")),
    };
    let inputs = parse_inputs(&record, &req.inputs)?;
    let receipt = if mode == Mode::Zk {
        let _permit = s.infer_slots.acquire().await.map_err(ApiError::internal)?;
        let st = s.clone();
        blocking(move || zk::prove(&st, &record, &inputs, salt, progress.as_ref())).await?
    } else {
        let outputs = run_model(&s, &record, &inputs).await?;
        s.issuer().signed(record.id, rand::random(), inputs, s.config.disclose_inputs, outputs)
    };
    finish(&s, receipt, Settle::Here).await
}
