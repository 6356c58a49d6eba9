//! HTTP API wire types shared by the Vouch node and its clients, and an async client.
//!
//! Every type here is the JSON of one API resource; the node serves them under `/v1` and
//! [`client::Client`] speaks them. Errors are always `{"error": {"code", "message", "details"}}`.

pub mod client;

use serde::{Deserialize, Serialize};
use vouch_codec::{AgreementRule, ModelId, TensorSpec};

pub use client::{Client, ClientError, MAX_RESPONSE_BYTES};

/// One version of a model, as stored by the hub and returned by push, show and list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Content id of the model file.
    pub id: ModelId,
    /// Repository name.
    pub name: String,
    /// `MAJOR.MINOR`.
    pub version: String,
    /// File size in bytes.
    pub size: u64,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// File format (`onnx`).
    pub format: String,
    /// Declared inputs.
    pub inputs: Vec<TensorSpec>,
    /// Declared outputs.
    pub outputs: Vec<TensorSpec>,
    /// Operators used, with counts.
    #[serde(default)]
    pub ops: std::collections::BTreeMap<String, u64>,
    /// Operator set imports.
    #[serde(default)]
    pub opsets: std::collections::BTreeMap<String, i64>,
    /// Producer of the file.
    #[serde(default)]
    pub producer: String,
    /// When pushed, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The zk path's quantization, when pushed with `--zk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zk: Option<ZkInfo>,
    /// When two executions agree in `quorum` mode: `exact` (the default; integer models, or one engine build) or
    /// the float model's declared tolerance. Recorded on the ledger with the model.
    #[serde(default, skip_serializing_if = "is_exact")]
    pub agreement: AgreementRule,
    /// The account that owns the repository (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// What a GGUF language model is (format `gguf`), from its header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmInfo>,
}

/// A GGUF language model's header facts, recorded at push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmInfo {
    /// `general.architecture` (`llama`, `qwen2`, `gemma3`...).
    pub architecture: String,
    /// `general.name`, if the file has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Parameters (elements of every tensor).
    pub parameters: u64,
    /// The context the model was trained for, tokens.
    pub context_length: u64,
    /// Tensors per storage type (`Q4_K`, `F32`...).
    pub tensor_types: std::collections::BTreeMap<String, u64>,
    /// Tokenizer kind (`gpt2`, `llama`...).
    pub tokenizer: String,
    /// Tokens in the vocabulary.
    pub vocab_size: u64,
    /// The chat template inside the file (Jinja), if any; without one the architecture's turn format is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
}

/// `GET /v1/models`: the OpenAI model list (`object`, `data`) and the hub's repositories with their versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// One entry per model version, as the OpenAI API lists models (`id` is `name@version`).
    pub data: Vec<ListedModel>,
    /// Repositories and their versions.
    pub repos: Vec<ModelRepo>,
}

/// An OpenAI model entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedModel {
    /// `name@version`: what `model` takes in requests (so does the bare name, for the latest version).
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Push time, seconds since the Unix epoch.
    pub created: u64,
    /// The owning account (hex), or `vouch`.
    pub owned_by: String,
    /// The content id.
    pub model_id: ModelId,
    /// `onnx` or `gguf`.
    pub format: String,
}

fn is_exact(r: &AgreementRule) -> bool {
    *r == AgreementRule::Exact
}

/// How a model was quantized for the zk path, and how close the integer model is to the float one on the
/// calibration set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZkInfo {
    /// Id of the calibration set (hex blake3 of its canonical JSON).
    pub calibration: String,
    /// Calibration inputs.
    pub samples: usize,
    /// Weight width chosen (8, or 16 where int8 changed the argmax too often).
    pub weight_bits: u32,
    /// Fraction of calibration inputs whose argmax the integer model keeps.
    pub argmax_agreement: f64,
    /// Largest absolute output error (dequantized integer vs float).
    pub max_abs_error: f64,
    /// Mean absolute output error.
    pub mean_abs_error: f64,
    /// Whether an argmax agreement below 99% was accepted with `--force`.
    pub forced: bool,
    /// The model's zk commitment; `None` until the prover lands.
    pub commitment: Option<String>,
    /// The model's commitment for private-input proofs (hex); `None` when a layer is not supported there yet
    /// (`private_unsupported` names it) or for versions pushed before private inputs existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_commitment: Option<String>,
    /// Why private-input proofs are unavailable for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_unsupported: Option<String>,
    /// Pushed with `--private-weights`: the weights, biases and multipliers stay on the node that holds the model
    /// (its file is not served); `private_commitment` binds them, and every zk proof is a private-input proof.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden_weights: bool,
    /// With hidden weights: the weights commitment (hex, 4 little-endian u64s), the model's zk identity; receipts'
    /// verification reports name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_commitment: Option<String>,
}

/// `GET /v1/settlements/{id}`: where a node settled a receipt in one of its batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    /// The batch's Merkle root (hex), as its `SettleBatch` names it.
    pub root: String,
    /// The receipt's leaf index.
    pub index: u32,
    /// The Merkle path from the receipt's leaf to the root (hex; a `commonware_storage::bmt` proof).
    pub path: String,
    /// The height of the block that settled the batch, once the node saw it finalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
}

/// Result of `POST /v1/calibrations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRef {
    /// Id (hex).
    pub id: String,
    /// Number of input documents.
    pub samples: usize,
}

/// Options of a push besides the file and the name.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `MAJOR.MINOR`.
    pub version: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Quantize for the zk path with this calibration set (id from `POST /v1/calibrations`).
    pub zk_calibration: Option<String>,
    /// Accept a quantization that changes the argmax on more than 1% of calibration inputs.
    pub force: bool,
    /// With `zk_calibration`: keep the weights hidden (the file is never served; proofs bind the weights by a
    /// commitment and reveal nothing about them beyond the output).
    pub private_weights: bool,
    /// A float model's declared quorum tolerance `(abs, rel)`; `None`: exact agreement.
    pub tolerance: Option<(f64, f64)>,
    /// The pushing account and its signature over `vouch_codec::push_message` (domain `VOUCH_PUSH_V1`).
    pub auth: Option<PushAuth>,
}

/// An account's signed push: headers `x-vouch-account` and `x-vouch-signature`.
#[derive(Debug, Clone)]
pub struct PushAuth {
    /// The account address (hex ed25519 public key).
    pub account: String,
    /// The signature (hex).
    pub signature: String,
}

/// A repository and its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRepo {
    /// Repository name.
    pub name: String,
    /// The account that owns the name (hex); only its signed pushes add versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Versions, oldest first.
    pub versions: Vec<ModelVersion>,
}

/// Body of `POST /v1/infer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// `NAME`, `NAME@VERSION` or a model id.
    pub model: String,
    /// The input document: `{"inputs": {...}}` or `{name: tensor}`.
    pub inputs: serde_json::Value,
    /// Verification mode (default `signed`).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Executors for `quorum` mode (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u8>,
    /// `quorum` mode: the requester's signed `SubmitJob` transaction (canonical bytes, hex) for this model and these
    /// inputs. The requester's account pays the executors' fees and the transaction fee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_tx: Option<String>,
    /// `zk` mode: keep the input private. The receipt then carries a commitment to the quantized input (salted
    /// with `salt`, which the requester keeps) instead of the input, and the proof hides every activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_input: Option<PrivateInput>,
}

/// A private input's opening secret, chosen by the requester.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateInput {
    /// 64 hex characters: 4 little-endian u64s, each below the Goldilocks prime (`2^64 - 2^32 + 1`).
    pub salt: String,
}

/// `POST /v1/jobs/prepare`: the entry node builds the requester's unsigned `SubmitJob` for a quorum inference
/// (resolving the model, replicating it if needed and recording it on the ledger, digesting the inputs, reading the
/// account's next nonce and the chain's fee). The requester checks it, signs its id and sends it as `job_tx`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareJobRequest {
    /// `NAME`, `NAME@VERSION` or a model id.
    pub model: String,
    /// The input document.
    pub inputs: serde_json::Value,
    /// Executors wanted.
    pub quorum: u8,
    /// Paid to each honest executor.
    pub fee_per_executor: u64,
    /// The paying account (hex public key).
    pub from: String,
}

/// Result of `POST /v1/jobs/prepare`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreparedJob {
    /// Canonical unsigned transaction bytes (hex).
    pub tx: String,
    /// The transaction id (hex): sign `VOUCH_TX_V1 || id` with the account key.
    pub id: String,
}

/// `POST /v1/jobs/{job}/execute`: an executor assigned by the ledger runs a job's inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The input document (its canonical digest must be the job's input digest).
    pub inputs: serde_json::Value,
    /// For a model with a tolerance: outputs other executors of the job already signed (JSON output maps, in the
    /// order they were signed). The executor signs the first one its own output agrees with under the model's
    /// rule, so honest executors on different hardware sign one digest; with none it signs its own output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<serde_json::Value>,
    /// The asking node's ledger height when it asked (the job, or its dispute, is executed there): the executor
    /// first waits until its own ledger reaches it, so it judges its assignment on the same round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_height: Option<u64>,
}

/// An executor's signed result for a ledger job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteResponse {
    /// The executor's node key (hex).
    pub public_key: String,
    /// Canonical receipt body bytes (hex): identical for every honest executor of the job.
    pub body: String,
    /// The executor's receipt signature over the body's id (hex).
    pub signature: String,
    /// The outputs (JSON view).
    pub outputs: serde_json::Value,
}

fn default_mode() -> String {
    "signed".into()
}

/// `GET /v1/node`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Hex ed25519 public key (the node id).
    pub node_id: String,
    /// Software version.
    pub version: String,
    /// Inference engine.
    pub engine: String,
    /// Network mode (`dev`: a single local node).
    pub network: String,
    /// Verification modes this node serves.
    pub modes: Vec<String>,
    /// Model versions hosted.
    pub models: u64,
    /// Receipts stored.
    pub receipts: u64,
    /// Compiled models in memory.
    pub cached_models: u64,
    /// Seconds since start.
    pub uptime_s: u64,
    /// The node's TEE: platform (or why there is none) and its attestation on the ledger.
    #[serde(default)]
    pub tee: serde_json::Value,
    /// Settlement backlog: receipts owed and not yet in a batch, batches submitted and not yet recorded.
    #[serde(default)]
    pub settlement: SettlementStatus,
}

/// A node's settlement backlog (part of [`NodeStatus`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettlementStatus {
    /// Receipts this node owes a settlement for that are not in a batch yet.
    pub owed: u64,
    /// Batches submitted and not yet recorded by the ledger.
    pub pending_batches: u64,
    /// Batches the ledger recorded.
    pub settled_batches: u64,
    /// How often the node batches what it owes (ms).
    pub interval_ms: u64,
}

/// `POST /v1/verify` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Whether the receipt verified.
    pub valid: bool,
    /// The receipt id, when it could be computed.
    #[serde(default)]
    pub id: Option<String>,
    /// Why not, when invalid.
    #[serde(default)]
    pub reason: Option<String>,
    /// What was checked, one entry per check, in order (the explorer lists them).
    #[serde(default)]
    pub checks: Vec<VerifyCheck>,
}

/// One check of `POST /v1/verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyCheck {
    /// What was checked: `receipt`, `signatures`, `zk proof`, `attestation` or `anchor`.
    pub check: String,
    /// Whether it held.
    pub ok: bool,
    /// What it established, or why it failed.
    pub detail: String,
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One API error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`shape_mismatch`, `model_not_found`...).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Structured details, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}
