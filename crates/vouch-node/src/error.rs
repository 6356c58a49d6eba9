//! API errors: one [`Code`] enum lists every error the HTTP API answers with (its status, its stable code string and
//! what it means); an [`ApiError`] is a code, a message and optional structured details, always answered as
//! `{"error": {"code", "message", "details"}}`. Each crate's error converts into it in one place (the `From`
//! implementations below), so services return typed errors and handlers never pick codes.
//!
//! `/v1/openapi.json` lists every code (`components.schemas.ErrorCode`); a test checks the two agree.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vouch_api::{ErrorBody, ErrorDetail};
use vouch_engine::{EngineError, InputError, InspectError};
use vouch_hub::HubError;

macro_rules! codes {
    ($($variant:ident = ($status:ident, $code:literal, $meaning:literal),)*) => {
        /// Every error code of the HTTP API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable code string clients match on.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// What it means (the OpenAPI document says the same).
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning,)* }
            }
        }
    };
}

codes! {
    // Requests that cannot be read.
    InvalidJson = (BAD_REQUEST, "invalid_json", "The body is not the JSON document the endpoint takes."),
    InvalidBody = (BAD_REQUEST, "invalid_body", "The request body could not be read."),
    PayloadTooLarge = (PAYLOAD_TOO_LARGE, "payload_too_large", "The body or model exceeds the node's size limit."),
    InvalidQuery = (BAD_REQUEST, "invalid_query", "The query string is invalid or its parameters do not go together."),
    InvalidId = (BAD_REQUEST, "invalid_id", "An id, address or hash in the path or body is malformed."),
    NotFound = (NOT_FOUND, "not_found", "No such endpoint."),
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method_not_allowed", "The endpoint does not take this method."),
    Busy = (SERVICE_UNAVAILABLE, "busy", "The node is at its limit for this kind of work (uploads in progress); retry later."),
    RateLimited = (TOO_MANY_REQUESTS, "rate_limited", "The client is over its request rate or quota; the message says which and when to retry."),
    Unauthorized = (UNAUTHORIZED, "unauthorized", "The node takes requests with an API key only, and none or an unknown one was given."),
    // Hub.
    InvalidName = (BAD_REQUEST, "invalid_name", "A model name outside the allowed characters or length."),
    InvalidVersion = (BAD_REQUEST, "invalid_version", "A version that is not MAJOR.MINOR."),
    VersionExists = (CONFLICT, "version_exists", "The model already has this version."),
    EmptyUpload = (BAD_REQUEST, "empty_upload", "An upload without bytes."),
    UploadInterrupted = (BAD_REQUEST, "upload_interrupted", "The upload ended before all bytes arrived; nothing was stored."),
    UploadTimeout = (REQUEST_TIMEOUT, "upload_timeout", "The upload sent no bytes for the idle timeout; nothing was stored."),
    NameOwned = (FORBIDDEN, "name_owned", "The model name belongs to another account; a new version needs that account's signature."),
    InvalidSignature = (BAD_REQUEST, "invalid_signature", "A push signature that does not verify for the account, name and model given."),
    ModelNotFound = (NOT_FOUND, "model_not_found", "No model by this name, name@version or id, here or on any peer."),
    InvalidModel = (UNPROCESSABLE_ENTITY, "invalid_model", "The file is not a well-formed ONNX or GGUF model."),
    UnsupportedOperator = (UNPROCESSABLE_ENTITY, "unsupported_operator", "The model uses operators the engine does not run."),
    ExternalData = (UNPROCESSABLE_ENTITY, "external_data", "The model refers to weights outside the file."),
    UnsupportedType = (UNPROCESSABLE_ENTITY, "unsupported_type", "The model has an input or output type the node does not serve."),
    ModelNotRunnable = (UNPROCESSABLE_ENTITY, "model_not_runnable", "The engine cannot compile the model."),
    InvalidTolerance = (BAD_REQUEST, "invalid_tolerance", "A quorum tolerance that is negative or not finite."),
    PeerError = (BAD_GATEWAY, "peer_error", "A peer failed to serve a model this node replicates, or served other bytes."),
    // Inference.
    InvalidMode = (BAD_REQUEST, "invalid_mode", "An unknown verification mode."),
    ModeUnavailable = (BAD_REQUEST, "mode_unavailable", "A mode this node does not serve yet."),
    InvalidTensor = (BAD_REQUEST, "invalid_tensor", "An input tensor document that does not parse."),
    UnknownInput = (BAD_REQUEST, "unknown_input", "An input the model does not declare."),
    MissingInput = (BAD_REQUEST, "missing_input", "A declared input is missing."),
    DtypeMismatch = (BAD_REQUEST, "dtype_mismatch", "An input of another element type than the model declares."),
    ShapeMismatch = (BAD_REQUEST, "shape_mismatch", "An input of another rank or size than the model declares."),
    InferenceFailed = (UNPROCESSABLE_ENTITY, "inference_failed", "The engine failed on these inputs."),
    EngineFault = (UNPROCESSABLE_ENTITY, "engine_fault", "The engine crashed on these inputs (contained; the node keeps serving)."),
    OutputTooLarge = (UNPROCESSABLE_ENTITY, "output_too_large", "A tensor of the run would exceed the node's element limit; refused before it is allocated where its size can be known."),
    ReceiptNotFound = (NOT_FOUND, "receipt_not_found", "No receipt by this id on this node."),
    SettlementNotFound = (NOT_FOUND, "settlement_not_found", "This node has not settled a receipt by this id in a batch."),
    // Language models.
    UnsupportedArchitecture = (UNPROCESSABLE_ENTITY, "unsupported_architecture", "A GGUF model of an architecture the engine does not generate text with (the message names it)."),
    NotLanguageModel = (BAD_REQUEST, "not_language_model", "A completion asked of a model that is not a GGUF language model."),
    InvalidParameter = (BAD_REQUEST, "invalid_parameter", "A completion parameter out of its range (the error's param names it)."),
    UnsupportedParameter = (BAD_REQUEST, "unsupported_parameter", "A completion parameter this node does not serve yet (n > 1, tools, penalties...)."),
    InvalidMessages = (BAD_REQUEST, "invalid_messages", "Chat messages that are empty, of an unknown role, or without text."),
    InvalidPrompt = (BAD_REQUEST, "invalid_prompt", "A prompt with no tokens or with token ids outside the vocabulary."),
    TemplateFailed = (UNPROCESSABLE_ENTITY, "template_failed", "The model's chat template failed on these messages."),
    ContextLengthExceeded = (BAD_REQUEST, "context_length_exceeded", "The prompt plus max_tokens exceed the context window (both counts given)."),
    QueueFull = (TOO_MANY_REQUESTS, "queue_full", "Every generation place and the queue are taken; retry after the Retry-After seconds."),
    Cancelled = (BAD_REQUEST, "cancelled", "The client left before the completion finished; generation stopped, no receipt was issued."),
    // Zero-knowledge path.
    InvalidCalibration = (BAD_REQUEST, "invalid_calibration", "A calibration set that is not a non-empty array of input documents for the model."),
    CalibrationNotFound = (NOT_FOUND, "calibration_not_found", "No calibration set by this id."),
    UnsupportedZkOperator = (UNPROCESSABLE_ENTITY, "unsupported_zk_operator", "The model uses an operator outside the zk op set."),
    UnsupportedZkModel = (UNPROCESSABLE_ENTITY, "unsupported_zk_model", "The model cannot be quantized or committed for proofs."),
    QuantizationRejected = (UNPROCESSABLE_ENTITY, "quantization_rejected", "Quantization changes the argmax on more than 1% of calibration inputs (push with force to accept)."),
    NotZkModel = (BAD_REQUEST, "not_zk_model", "zk mode on a model version not pushed for the zk path."),
    InvalidPrivateInput = (BAD_REQUEST, "invalid_private_input", "A private input outside zk mode, or a salt that is not 4 canonical field elements."),
    PrivateInputUnsupported = (UNPROCESSABLE_ENTITY, "private_input_unsupported", "The model has a layer private-input proofs do not cover."),
    ModelPrivate = (FORBIDDEN, "model_private", "The model was pushed with private weights: its file is not served, and it runs only on the node that holds it, in signed, tee or zk mode with a private input (not quorum)."),
    ProofFailed = (UNPROCESSABLE_ENTITY, "proof_failed", "The prover failed on this input."),
    ProofSelfCheckFailed = (INTERNAL_SERVER_ERROR, "proof_self_check_failed", "The node's own verifier rejected the proof it produced; no receipt was issued (a prover bug for this model's shape)."),
    ZkCommitmentOutdated = (CONFLICT, "zk_commitment_outdated", "The model version's recorded zk commitment was made by an older prover; push the model again as a new version."),
    // TEE.
    TeeUnavailable = (CONFLICT, "tee_unavailable", "tee mode on a node without a valid attestation on the ledger (the message says why: no TEE, not yet attested, expired)."),
    TeeSelfCheckFailed = (INTERNAL_SERVER_ERROR, "tee_self_check_failed", "The node's own verifier rejected the tee receipt it produced; no receipt was issued."),
    // Quorum.
    JobTxRequired = (BAD_REQUEST, "job_tx_required", "Quorum mode without the requester's signed SubmitJob transaction."),
    InvalidJobTx = (BAD_REQUEST, "invalid_job_tx", "A job transaction that does not decode, is not a SubmitJob, or is sent outside quorum mode."),
    JobMismatch = (BAD_REQUEST, "job_mismatch", "The job transaction is for another model, other inputs, another mode or another quorum."),
    InvalidQuorum = (BAD_REQUEST, "invalid_quorum", "A quorum below 2 executors."),
    JobRejected = (UNPROCESSABLE_ENTITY, "job_rejected", "The ledger refused the job; the message says why."),
    InputMismatch = (BAD_REQUEST, "input_mismatch", "The inputs do not hash to the job's input digest."),
    InvalidCandidate = (BAD_REQUEST, "invalid_candidate", "An offered candidate output that is not an output map."),
    NotAssigned = (FORBIDDEN, "not_assigned", "This node is not assigned to the job."),
    UnknownJob = (NOT_FOUND, "unknown_job", "The job is not on this node's ledger (an executor asked about it)."),
    JobClosed = (CONFLICT, "job_closed", "The job is no longer open."),
    QuorumDisagreement = (CONFLICT, "quorum_disagreement", "The executors did not agree; the ledger decides by re-execution (details name the answers)."),
    // Ledger.
    MalformedTx = (BAD_REQUEST, "malformed_tx", "Bytes that are not a signed transaction."),
    InvalidTx = (BAD_REQUEST, "invalid_tx", "A transaction for another chain or with a bad signature."),
    InsufficientBalance = (BAD_REQUEST, "insufficient_balance", "The sender cannot pay the amount and fee."),
    TxUnknownJob = (BAD_REQUEST, "unknown_job", "A transaction naming a job the ledger does not have."),
    RejectedTx = (BAD_REQUEST, "rejected_tx", "A transaction that would not apply to the current state; the message says why."),
    StaleNonce = (BAD_REQUEST, "stale_nonce", "The sender already used this nonce."),
    AlreadyFinalized = (BAD_REQUEST, "already_finalized", "The transaction is already finalized."),
    MempoolFull = (SERVICE_UNAVAILABLE, "mempool_full", "The node's mempool is full; retry later."),
    BlockNotFound = (NOT_FOUND, "block_not_found", "No finalized and executed block at this height."),
    TxNotFound = (NOT_FOUND, "tx_not_found", "The transaction is not finalized."),
    EpochLinkUnavailable = (NOT_FOUND, "epoch_link_unavailable", "This node cannot prove an epoch's validator set: it does not store the epoch's boundary block or that block's finalization."),
    LedgerUnavailable = (SERVICE_UNAVAILABLE, "ledger_unavailable", "The node could not submit to its ledger."),
    LedgerBehind = (SERVICE_UNAVAILABLE, "ledger_behind", "This node's ledger has not reached the height the request needs."),
    LedgerTimeout = (GATEWAY_TIMEOUT, "ledger_timeout", "The ledger did not finalize in time."),
    // Anything else.
    Internal = (INTERNAL_SERVER_ERROR, "internal", "A failure inside the node (storage, a worker task); logged."),
}

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// The code (and through it the status).
    pub code: Code,
    /// Message.
    pub message: String,
    /// Structured details.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }
    /// With details.
    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.details = Some(d);
        self
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
    /// An internal failure: logged, answered as `500 internal`.
    pub(crate) fn internal(msg: impl std::fmt::Display) -> Self {
        tracing::error!(error = %msg, "internal error");
        Self::new(Code::Internal, msg.to_string())
    }
    /// The JSON error document.
    pub(crate) fn body(self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail { code: self.code.as_str().into(), message: self.message, details: self.details },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let code = match &e {
            HubError::NotFound(_) => Code::ModelNotFound,
            HubError::InvalidName(_) => Code::InvalidName,
            HubError::InvalidVersion(_) => Code::InvalidVersion,
            HubError::VersionExists { .. } => Code::VersionExists,
            HubError::TooLarge { .. } => Code::PayloadTooLarge,
            HubError::Empty => Code::EmptyUpload,
            HubError::NameOwned { owner, .. } => {
                let owner = owner.clone();
                return ApiError::new(Code::NameOwned, e.to_string()).details(serde_json::json!({ "owner": owner }));
            }
            HubError::Io(_) | HubError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<InspectError> for ApiError {
    fn from(e: InspectError) -> Self {
        let code = match &e {
            InspectError::Io(_) => return ApiError::internal(e),
            InspectError::UnsupportedOps { .. } => Code::UnsupportedOperator,
            InspectError::ExternalData { .. } => Code::ExternalData,
            InspectError::UnsupportedType { .. } => Code::UnsupportedType,
            InspectError::Malformed(_) | InspectError::Truncated { .. } => Code::InvalidModel,
        };
        let details = match &e {
            InspectError::UnsupportedOps { ops } => Some(serde_json::json!({ "ops": ops })),
            _ => None,
        };
        ApiError { code, message: e.to_string(), details }
    }
}

impl From<vouch_llm::GgufError> for ApiError {
    fn from(e: vouch_llm::GgufError) -> Self {
        use vouch_llm::GgufError;
        match &e {
            GgufError::Io(_) => ApiError::internal(e),
            GgufError::Architecture(a) => ApiError::new(Code::UnsupportedArchitecture, e.to_string())
                .details(serde_json::json!({ "architecture": a })),
            _ => ApiError::new(Code::InvalidModel, e.to_string()),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        let code = match &e {
            InputError::Unknown { .. } => Code::UnknownInput,
            InputError::Missing { .. } => Code::MissingInput,
            InputError::DType { .. } => Code::DtypeMismatch,
            InputError::Rank { .. } | InputError::Dim { .. } | InputError::Symbol { .. } => Code::ShapeMismatch,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::Compile(_) => Code::ModelNotRunnable,
            EngineError::Run(_) | EngineError::Tensor { .. } => Code::InferenceFailed,
            EngineError::Panic(_) => Code::EngineFault,
            EngineError::TooLarge { .. } => Code::OutputTooLarge,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<vouch_quant::QuantError> for ApiError {
    fn from(e: vouch_quant::QuantError) -> Self {
        use vouch_quant::QuantError;
        match &e {
            QuantError::UnsupportedOp { op, .. } => {
                ApiError::new(Code::UnsupportedZkOperator, e.to_string()).details(serde_json::json!({ "op": op }))
            }
            QuantError::InputSize { .. } | QuantError::Calibration(_) => {
                ApiError::new(Code::InvalidCalibration, e.to_string())
            }
            _ => ApiError::new(Code::UnsupportedZkModel, e.to_string()),
        }
    }
}

impl From<vouch_chain::SubmitError> for ApiError {
    fn from(e: vouch_chain::SubmitError) -> Self {
        use vouch_chain::SubmitError;
        let code = match &e {
            SubmitError::Malformed(_) => Code::MalformedTx,
            SubmitError::Invalid(_) => Code::InvalidTx,
            SubmitError::Rejected(vouch_ledger::TxError::InsufficientBalance { .. }) => Code::InsufficientBalance,
            SubmitError::Rejected(vouch_ledger::TxError::UnknownJob(_)) => Code::TxUnknownJob,
            SubmitError::Rejected(_) => Code::RejectedTx,
            SubmitError::StaleNonce { .. } => Code::StaleNonce,
            SubmitError::AlreadyFinalized(_) => Code::AlreadyFinalized,
            SubmitError::Full(_) => Code::MempoolFull,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("worker task failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Code;

    /// `/v1/openapi.json` lists exactly the codes of [`Code`], each with its status. With `VOUCH_UPDATE_OPENAPI=1`
    /// the document's `ErrorCode` schema is rewritten from the enum first.
    #[test]
    fn every_error_code_is_in_the_openapi_document_and_nothing_else() {
        if std::env::var_os("VOUCH_UPDATE_OPENAPI").is_some() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/openapi.json");
            let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let mut strings: Vec<&str> = vec![];
            for c in Code::ALL {
                if !strings.contains(&c.as_str()) {
                    strings.push(c.as_str());
                }
            }
            let codes: Vec<serde_json::Value> = Code::ALL
                .iter()
                .map(|c| serde_json::json!({"code": c.as_str(), "status": c.status().as_u16(), "meaning": c.meaning()}))
                .collect();
            let schema = &mut doc["components"]["schemas"]["ErrorCode"];
            schema["enum"] = serde_json::json!(strings);
            schema["x-codes"] = serde_json::json!(codes);
            // The document's own layout: one space per level.
            let mut out = vec![];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
            serde::Serialize::serialize(&doc, &mut serde_json::Serializer::with_formatter(&mut out, fmt)).unwrap();
            out.push(b'\n');
            std::fs::write(&path, out).unwrap();
            eprintln!("rewrote {}: build again to serve it", path.display());
            return;
        }
        let doc: serde_json::Value = serde_json::from_str(crate::api::OPENAPI).expect("the OpenAPI document parses");
        let listed = doc["components"]["schemas"]["ErrorCode"]["x-codes"].as_array().expect("ErrorCode x-codes");
        let mut documented: BTreeMap<(String, u64), String> = BTreeMap::new();
        for c in listed {
            let key = (c["code"].as_str().unwrap().to_owned(), c["status"].as_u64().unwrap());
            assert!(
                documented.insert(key.clone(), c["meaning"].as_str().unwrap().to_owned()).is_none(),
                "{key:?} twice"
            );
        }
        let from_enum: BTreeMap<(String, u64), String> = Code::ALL
            .iter()
            .map(|c| ((c.as_str().to_owned(), u64::from(c.status().as_u16())), c.meaning().to_owned()))
            .collect();
        assert_eq!(documented, from_enum, "the OpenAPI document and the Code enum disagree");
        // The schema's enum of code strings is the same set.
        let strings: std::collections::BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(strings, Code::ALL.iter().map(|c| c.as_str()).collect());
    }
}
