//! Models: push (streamed upload), list, show, download, calibration sets.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use vouch_api::ModelVersion;
use vouch_codec::{AgreementRule, ModelId};
use vouch_hub::{Version, validate_name};

use super::{AppState, hex_id, parse_body};
use crate::error::{ApiError, Code};
use crate::service::access::{ClientId, Spend};
use crate::service::{blocking, models};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushQuery {
    version: Option<String>,
    description: Option<String>,
    /// Quantize for the zk path.
    #[serde(default)]
    zk: bool,
    /// Calibration set id (with `zk`).
    calibration: Option<String>,
    /// Accept a quantization that changes the argmax on more than 1% of calibration inputs.
    #[serde(default)]
    force: bool,
    /// Keep the weights hidden (with `zk`).
    #[serde(default)]
    private_weights: bool,
    /// A float model's quorum tolerance (both or neither).
    tolerance_abs: Option<f64>,
    tolerance_rel: Option<f64>,
}

/// `POST /v1/models/{name}/versions`: the body is the model file.
pub(super) async fn push(
    State(s): AppState,
    Path(name): Path<String>,
    query: Result<Query<PushQuery>, QueryRejection>,
    Extension(client): Extension<ClientId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ModelVersion>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))?;
    let pusher = pusher(&headers)?;
    s.access.charge(&client, Spend::Push)?;
    // The declared size is charged before a byte is stored; without one, the size received is charged below.
    let declared: Option<u64> =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(n) = declared {
        s.access.charge(&client, Spend::Bytes(n))?;
    }
    validate_name(&name)?;
    let version = q.version.as_deref().map(str::parse::<Version>).transpose()?;
    if q.zk != q.calibration.is_some() {
        return Err(ApiError::new(Code::InvalidQuery, "zk=true and calibration=ID go together"));
    }
    if q.private_weights && !q.zk {
        return Err(ApiError::new(Code::InvalidQuery, "private_weights=true needs zk=true and a calibration set"));
    }
    let agreement = match (q.tolerance_abs, q.tolerance_rel) {
        (None, None) => AgreementRule::Exact,
        (Some(abs), Some(rel)) => AgreementRule::Tolerance { abs, rel },
        _ => return Err(ApiError::new(Code::InvalidQuery, "tolerance_abs and tolerance_rel go together")),
    };
    agreement.check().map_err(|e| ApiError::new(Code::InvalidTolerance, e))?;
    let staged = models::receive(&s, body.into_data_stream()).await?;
    if declared.is_none() {
        s.access.charge(&client, Spend::Bytes(staged.size))?;
    }
    let opts = models::PushOptions {
        version,
        description: q.description.unwrap_or_default(),
        calibration: q.calibration,
        force: q.force,
        private_weights: q.private_weights,
        agreement,
        pusher,
    };
    let record = models::commit(&s, name, staged, opts).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// The pushing account from headers `x-vouch-account` and `x-vouch-signature` (both or neither).
fn pusher(headers: &HeaderMap) -> Result<models::Pusher, ApiError> {
    let get = |h: &str| headers.get(h).map(|v| v.to_str().unwrap_or_default().to_owned());
    match (get("x-vouch-account"), get("x-vouch-signature")) {
        (None, None) => Ok(models::Pusher::Unsigned),
        (Some(a), Some(sig)) => {
            let account = hex_id("x-vouch-account", &a)?;
            let mut signature = [0u8; 64];
            hex::decode_to_slice(sig.trim(), &mut signature)
                .map_err(|_| ApiError::new(Code::InvalidSignature, "x-vouch-signature is 128 hex characters"))?;
            Ok(models::Pusher::Signed { account, signature })
        }
        _ => Err(ApiError::new(Code::InvalidSignature, "x-vouch-account and x-vouch-signature go together")),
    }
}

/// `POST /v1/calibrations`: a calibration set (a JSON array of input documents), stored by content id.
pub(super) async fn upload_calibration(
    State(s): AppState,
    Extension(client): Extension<ClientId>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<vouch_api::CalibrationRef>), ApiError> {
    let docs: serde_json::Value = parse_body(body)?;
    s.access.charge(&client, Spend::Calibration)?;
    let (id, samples) = blocking(move || s.calibrations.put(&docs)).await?;
    Ok((StatusCode::CREATED, Json(vouch_api::CalibrationRef { id, samples })))
}

/// `GET /v1/models/{reference}`: by name, name@version or id.
pub(super) async fn show(State(s): AppState, Path(reference): Path<String>) -> Result<Json<ModelVersion>, ApiError> {
    Ok(Json(blocking(move || Ok(s.hub.resolve(&reference)?)).await?))
}

/// `GET /v1/blobs/{id}`: the model file, streamed.
pub(super) async fn download(State(s): AppState, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: ModelId = id.parse().map_err(|e| ApiError::new(Code::InvalidId, format!("{e}")))?;
    let st = s.clone();
    let path = blocking(move || {
        if models::hides_weights(&st, &id)? {
            return Err(ApiError::new(
                Code::ModelPrivate,
                "the model was pushed with private weights: its file is not served",
            ));
        }
        Ok(st.hub.blob_path(&id)?)
    })
    .await?;
    let file = tokio::fs::File::open(&path).await.map_err(ApiError::internal)?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    s.metrics.download_bytes.inc_by(len);
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_LENGTH, len.to_string())],
        body,
    )
        .into_response())
}
