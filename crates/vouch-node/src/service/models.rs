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

/// Who pushes: an account proven by its signature over the push, or (with `unsigned_pushes`) the node's own.
#[derive(Debug, Clone)]
pub(crate) enum Pusher {
    /// The account and its signature over `vouch_codec::push_message(name, version, model id)`.
    Signed { account: [u8; 32], signature: [u8; 64] },
    /// No signature: allowed only when the node takes unsigned pushes; the node's account owns them.
    Unsigned,
}

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
    /// Who pushes.
    pub pusher: Pusher,
}

/// The account a push is made by, checked before anything is stored: a signature must verify over this name,
/// version and the uploaded bytes' id; an unsigned push needs `unsigned_pushes` and is the node's own.
fn owner(
    s: &NodeState,
    name: &str,
    version: Option<&Version>,
    staged: &Staged,
    pusher: &Pusher,
) -> Result<[u8; 32], ApiError> {
    match pusher {
        Pusher::Signed { account, signature } => {
            let version = version.map(|v| v.to_string());
            let message = vouch_codec::push_message(name, version.as_deref(), &staged.id);
            vouch_crypto::verify(vouch_codec::domain::PUSH_SIGNATURE, account, &message, signature).map_err(|_| {
                ApiError::new(
                    Code::InvalidSignature,
                    format!(
                        "the push signature does not verify for account {}, {name:?} and model {}",
                        hex::encode(account),
                        staged.id
                    ),
                )
            })?;
            Ok(*account)
        }
        Pusher::Unsigned if s.config.unsigned_pushes => Ok(s.key.public_key()),
        Pusher::Unsigned => Err(ApiError::new(
            Code::Unauthorized,
            "this node takes signed pushes only: sign with the account that owns (or will own) the name \
             (`vouch model push --account KEY`; headers x-vouch-account and x-vouch-signature)",
        )),
    }
}

/// Bytes gathered before each write on the blocking pool (no thread is held between writes).
const WRITE_BATCH: usize = 1 << 20;

/// Streams an upload to a temp file, hashing it as it goes. No thread is pinned to a connection: bytes gather in
/// memory up to [`WRITE_BATCH`] and each batch is written by a short task on the blocking pool. An upload that
/// sends nothing for `body_timeout_secs` fails (the body timeout), one that ends early is dropped; the temp file of
/// an unfinished upload is removed, so a partial upload never becomes a blob. At most `max_concurrent_uploads` run
/// at once; more are answered `503 busy`.
pub(crate) async fn receive<E: std::error::Error + 'static>(
    s: &Arc<NodeState>,
    mut stream: impl Stream<Item = Result<Bytes, E>> + Unpin,
) -> Result<Staged, ApiError> {
    let _slot = s.upload_slots.try_acquire().map_err(|_| {
        ApiError::new(
            Code::Busy,
            format!("{} uploads are in progress, this node's limit; retry later", s.config.max_concurrent_uploads),
        )
    })?;
    let hub = s.hub.clone();
    let limit = s.config.max_model_bytes;
    let mut upload = blocking(move || Ok(hub.begin_upload(limit)?)).await?;
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    while let Some(chunk) = stream.next().await {
        let b = chunk.map_err(|e| {
            tracing::info!(error = %e, "hub.put: upload interrupted; nothing stored");
            interrupted(&e)
        })?;
        batch.extend_from_slice(&b);
        if batch.len() >= WRITE_BATCH {
            upload = write(upload, std::mem::replace(&mut batch, Vec::with_capacity(WRITE_BATCH))).await?;
        }
    }
    if !batch.is_empty() {
        upload = write(upload, batch).await?;
    }
    let staged = blocking(move || Ok(upload.finish()?)).await?;
    s.metrics.upload_bytes.inc_by(staged.size);
    Ok(staged)
}

/// The error for a body that failed: the body timeout (no bytes for too long) or a dropped connection.
fn interrupted(e: &(dyn std::error::Error + 'static)) -> ApiError {
    let timed_out = std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<tower_http::timeout::TimeoutError>());
    if timed_out {
        ApiError::new(Code::UploadTimeout, format!("upload stalled: {e}; nothing stored"))
    } else {
        ApiError::new(Code::UploadInterrupted, format!("upload interrupted: {e}"))
    }
}

/// Writes one batch on the blocking pool.
async fn write(mut upload: vouch_hub::Upload, batch: Vec<u8>) -> Result<vouch_hub::Upload, ApiError> {
    blocking(move || {
        upload.write(&batch)?;
        Ok(upload)
    })
    .await
}

/// Inspects a staged upload, compiles it if small enough, quantizes and commits it for the zk path if asked, records
/// it under `name` and registers it on the ledger.
pub(crate) async fn commit(
    s: &Arc<NodeState>,
    name: String,
    staged: Staged,
    opts: PushOptions,
) -> Result<ModelVersion, ApiError> {
    let owner = owner(s, &name, opts.version.as_ref(), &staged, &opts.pusher)?;
    let legacy_owner = s.key.public_key();
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
            owner: None,
        };
        let new =
            NewVersion { name, version: opts.version, description: opts.description, template, owner, legacy_owner };
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
