//! API errors: a status, a stable code and a message, always as `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vouch_api::{ErrorBody, ErrorDetail};
use vouch_engine::{EngineError, InputError, InspectError};
use vouch_hub::HubError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Structured details.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None }
    }
    /// With details.
    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.details = Some(d);
        self
    }
    pub(crate) fn internal(msg: impl std::fmt::Display) -> Self {
        tracing::error!(error = %msg, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message, details: self.details } };
        (self.status, Json(body)).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let (status, code) = match &e {
            HubError::NotFound(_) => (StatusCode::NOT_FOUND, "model_not_found"),
            HubError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            HubError::InvalidVersion(_) => (StatusCode::BAD_REQUEST, "invalid_version"),
            HubError::VersionExists { .. } => (StatusCode::CONFLICT, "version_exists"),
            HubError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            HubError::Empty => (StatusCode::BAD_REQUEST, "empty_upload"),
            HubError::Io(_) | HubError::Db(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<InspectError> for ApiError {
    fn from(e: InspectError) -> Self {
        let code = match &e {
            InspectError::Io(_) => return ApiError::internal(e),
            InspectError::UnsupportedOps { .. } => "unsupported_operator",
            InspectError::ExternalData { .. } => "external_data",
            InspectError::UnsupportedType { .. } => "unsupported_type",
            InspectError::Malformed(_) | InspectError::Truncated { .. } => "invalid_model",
        };
        let details = match &e {
            InspectError::UnsupportedOps { ops } => Some(serde_json::json!({ "ops": ops })),
            _ => None,
        };
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code, message: e.to_string(), details }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::Compile(_) => "model_not_runnable",
            EngineError::Run(_) | EngineError::Tensor { .. } => "inference_failed",
            EngineError::Panic(_) => "engine_fault",
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("worker task failed: {e}"))
    }
}
