//! Pushing a model: the upload streamed to a staged file (hashed as it arrives), then inspected, compiled, quantized
//! and committed for the zk path when asked, recorded in the hub, and registered on the ledger.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use vouch_api::ModelVersion;
use vouch_codec::tx::TxKind;
use vouch_codec::{AgreementRule, Digest, ModelId};
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
    /// Keep the weights hidden (with `calibration`).
    pub private_weights: bool,
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

/// The format name of GGUF language models.
pub(crate) const GGUF: &str = "gguf";

/// What inspecting a model file learns, whatever its format.
pub(crate) struct Described {
    pub format: &'static str,
    pub info: Option<vouch_engine::ModelInfo>,
    pub llm: Option<vouch_api::LlmInfo>,
}

impl Described {
    /// The record's format-specific fields (the rest left empty for the caller).
    pub fn into_version(self) -> ModelVersion {
        let (inputs, outputs, ops, opsets, producer) = match self.info {
            Some(i) => (i.inputs, i.outputs, i.ops, i.opsets, i.producer),
            None => (
                vouch_llm::request::input_specs(),
                vouch_llm::request::output_specs(),
                Default::default(),
                Default::default(),
                String::new(),
            ),
        };
        ModelVersion {
            id: vouch_codec::ModelId::from_blake3([0; 32]),
            name: String::new(),
            version: String::new(),
            size: 0,
            description: String::new(),
            format: self.format.into(),
            inputs,
            outputs,
            ops,
            opsets,
            producer,
            created_at_ms: 0,
            zk: None,
            agreement: AgreementRule::Exact,
            owner: None,
            llm: self.llm,
        }
    }
}

/// Whether a file starts with the GGUF magic.
fn is_gguf(path: &std::path::Path) -> Result<bool, ApiError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(ApiError::internal)?;
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"GGUF"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Inspects a stored or staged model file: a GGUF language model (bounded header inspection) or an ONNX model
/// (streaming inspection). With `check`, a model up to `compile_on_push_max_bytes` is also loaded by its engine, so
/// one the engine cannot run is refused now rather than at its first request. Blocking.
pub(crate) fn describe(
    st: &NodeState,
    id: vouch_codec::ModelId,
    path: &std::path::Path,
    size: u64,
    check: bool,
) -> Result<Described, ApiError> {
    let check = check && size <= st.config.compile_on_push_max_bytes;
    if is_gguf(path)? {
        let f = std::fs::File::open(path).map_err(ApiError::internal)?;
        let g = vouch_llm::inspect(std::io::BufReader::new(f), size)?;
        if check {
            st.llm.model(id, path)?;
        }
        let llm = vouch_api::LlmInfo {
            architecture: g.architecture,
            model_name: g.name,
            parameters: g.parameters,
            context_length: g.context_length,
            tensor_types: g.tensor_types,
            tokenizer: g.tokenizer,
            vocab_size: g.vocab_size,
            chat_template: g.chat_template,
        };
        return Ok(Described { format: GGUF, info: None, llm: Some(llm) });
    }
    let info = vouch_engine::inspect(path)?;
    if check {
        st.cache.check(id, path, &info)?;
    }
    Ok(Described { format: "onnx", info: Some(info), llm: None })
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
        let d = describe(&st, staged.id, staged.path(), staged.size, true)?;
        // A model id's file is either served or not: every version of it is pushed the same way.
        if let Some(existing) = existing_visibility(&st, &staged.id)?
            && existing != opts.private_weights
        {
            let (was, now) = if existing { ("private", "public") } else { ("public", "private") };
            return Err(ApiError::new(
                Code::ModelPrivate,
                format!(
                    "this model file was pushed here with {was} weights; it cannot be pushed again with {now} weights"
                ),
            ));
        }
        let hidden = if opts.private_weights { Some(st.weight_salts.get_or_create(&staged.id)?) } else { None };
        let zk = match &opts.calibration {
            Some(_) if d.format == GGUF => {
                return Err(ApiError::new(
                    Code::InvalidQuery,
                    "zk proofs are for ONNX models; a GGUF model is served in signed and quorum modes",
                ));
            }
            Some(c) => {
                let (mut info, prover) =
                    zk::quantize_model(staged.path(), staged.size, &st.calibrations, c, opts.force, hidden.as_ref())?;
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
            created_at_ms: 0,
            zk,
            agreement: opts.agreement,
            owner: None,
            ..d.into_version()
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

/// Whether the model file `id` is here with private weights (`None`: not here yet).
fn existing_visibility(s: &NodeState, id: &ModelId) -> Result<Option<bool>, ApiError> {
    match s.hub.resolve(&id.to_string()) {
        Ok(v) => Ok(Some(v.zk.as_ref().is_some_and(|z| z.hidden_weights))),
        Err(vouch_hub::HubError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the model file `id` was pushed with private weights (its file is then never served).
pub(crate) fn hides_weights(s: &NodeState, id: &ModelId) -> Result<bool, ApiError> {
    Ok(existing_visibility(s, id)?.unwrap_or(false))
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
