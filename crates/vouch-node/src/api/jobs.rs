//! Quorum jobs: the requester's unsigned job transaction, and an assigned executor's share.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use vouch_codec::Digest;

use super::{AppState, hex_id, parse_body};
use crate::error::ApiError;
use crate::service::quorum;

/// `POST /v1/jobs/prepare`.
pub(super) async fn prepare(
    State(s): AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::PreparedJob>, ApiError> {
    let req: vouch_api::PrepareJobRequest = parse_body(body)?;
    Ok(Json(quorum::prepare(s, req).await?))
}

/// `POST /v1/jobs/{job}/execute`.
pub(super) async fn execute(
    State(s): AppState,
    Path(job): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::ExecuteResponse>, ApiError> {
    let job = Digest(hex_id("a job id", &job)?);
    let req: vouch_api::ExecuteRequest = parse_body(body)?;
    let candidates = quorum::parse_candidates(&req.candidates)?;
    let me = s.key.public_key();
    let done = quorum::execute(s, job, &req.inputs, &candidates, req.min_height).await?;
    Ok(Json(done.to_response(&me)?))
}
