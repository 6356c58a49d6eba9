//! What every mode shares: one input parser, one engine call, one finisher that stores the receipt, counts it and
//! settles it.

use std::sync::Arc;
use std::time::Instant;

use vouch_api::ModelVersion;
use vouch_codec::tensor::parse_input_doc;
use vouch_codec::{Receipt, TensorMap};
use vouch_engine::{InputError, ModelInfo, validate_inputs};

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::{blocking, settlement};

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
