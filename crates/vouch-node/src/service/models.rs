//! Pushing a model: the upload streamed to a staged file (hashed as it arrives), then inspected, compiled, quantized
//! and committed for the zk path when asked, recorded in the hub, and registered on the ledger.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use vouch_api::ModelVersion;
use vouch_codec::tx::TxKind;
use vouch_codec::{AgreementRule, Digest};
use vouch_hub::{NewVersion, Staged, Version};

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::{blocking, zk};

/// What a push asks for besides the bytes.
pub(crate) struct PushOptions {
    /// The version (next minor when `None`).
    pub version: Option<Version>,
    /// Description.
    pub description: String,
    /// Quantize for the zk path with this calibration set.
    pub calibration: Option<String>,
    /// Accept a quantization that changes the argmax on more than 1% of calibration inputs.
    pub force: bool,
    /// When quorum results agree.
    pub agreement: AgreementRule,
}

enum Chunk {
    Data(Bytes),
    End,
}

/// Streams an upload through a bounded channel to a blocking writer that hashes and writes it to a temp file; only
/// an explicit end marker lets the writer finish, so a dropped connection never yields a blob.
pub(crate) async fn receive<E: std::fmt::Display>(
    s: &Arc<NodeState>,
    mut stream: impl Stream<Item = Result<Bytes, E>> + Unpin,
) -> Result<Staged, ApiError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let hub = s.hub.clone();
    let limit = s.config.max_model_bytes;
    let writer = tokio::task::spawn_blocking(move || {
        let mut up = hub.begin_upload(limit)?;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Data(b) => up.write(&b)?,
                Chunk::End => return Ok(up.finish()?),
            }
        }
        Err(ApiError::new(Code::UploadInterrupted, "the upload ended before all bytes arrived"))
    });
    let mut interrupted = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => {
                if tx.send(Chunk::Data(b)).await.is_err() {
                    break; // the writer stopped (e.g. size limit); its error is the answer
                }
            }
            Err(e) => {
                interrupted = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(e) = interrupted {
        drop(tx);
        let _ = writer.await;
        tracing::info!(error = %e, "hub.put: upload interrupted; nothing stored");
        return Err(ApiError::new(Code::UploadInterrupted, format!("upload interrupted: {e}")));
    }
    let _ = tx.send(Chunk::End).await;
    drop(tx);
    let staged = writer.await??;
    s.metrics.upload_bytes.inc_by(staged.size);
    Ok(staged)
}

/// Inspects a staged upload, compiles it if small enough, quantizes and commits it for the zk path if asked, records
/// it under `name` and registers it on the ledger.
pub(crate) async fn commit(
    s: &Arc<NodeState>,
    name: String,
    staged: Staged,
    opts: PushOptions,
) -> Result<ModelVersion, ApiError> {
    let st = s.clone();
    let record = blocking(move || {
        let info = vouch_engine::inspect(staged.path())?;
        if staged.size <= st.config.compile_on_push_max_bytes {
            st.cache.check(staged.id, staged.path(), &info)?;
        }
        let zk = match &opts.calibration {
            Some(c) => {
                let (mut info, prover) =
                    zk::quantize_model(staged.path(), staged.size, &st.calibrations, c, opts.force)?;
                zk::record_private(&mut info, &prover);
                st.provers.insert(staged.id, prover);
                Some(info)
            }
            None => None,
        };
        let template = ModelVersion {
            id: staged.id,
            name: name.clone(),
            version: String::new(),
            size: staged.size,
            description: String::new(),
            format: "onnx".into(),
            inputs: info.inputs,
            outputs: info.outputs,
            ops: info.ops,
            opsets: info.opsets,
            producer: info.producer,
            created_at_ms: 0,
            zk,
            agreement: opts.agreement,
        };
        let new = NewVersion { name, version: opts.version, description: opts.description, template };
        Ok(st.hub.commit(staged, new)?)
    })
    .await?;
    // Record the model on the ledger (its id, name and agreement rule); finalization is not awaited.
    if let Err(e) = register(s, &record) {
        tracing::warn!(model = %record.id, error = %e.message, "ledger.register_model failed");
    }
    Ok(record)
}

/// Records a model on the ledger (owner: this node's account) with its agreement rule, unless it is there already.
/// Returns the transaction id when one was submitted.
pub(crate) fn register(s: &NodeState, record: &ModelVersion) -> Result<Option<Digest>, ApiError> {
    if s.chain.chain().model(&record.id).is_some() {
        return Ok(None);
    }
    let kind = TxKind::RegisterModel {
        model: record.id,
        name: format!("{}@{}", record.name, record.version),
        commitment: vec![],
        rule: record.agreement,
    };
    s.chain.sign_submit(&s.key, kind).map(Some).map_err(|e| ApiError::new(Code::LedgerUnavailable, e.to_string()))
}
