//! The `/v1` HTTP API: handlers parse requests, call a service, and answer its result or its [`ApiError`].

mod explorer;
mod infer;
mod jobs;
mod ledger;
mod models;
mod node;
mod openai;
pub(crate) mod serve;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::metrics::HttpLabels;

type AppState = State<Arc<NodeState>>;

/// The OpenAPI document served at `/v1/openapi.json`.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

pub(crate) fn router(state: Arc<NodeState>) -> Router {
    let json_limit = state.config.max_request_bytes;
    let body_timeout = std::time::Duration::from_secs(state.config.body_timeout_secs.max(1));
    Router::new()
        .route("/v1/health", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/v1/node", get(node::status))
        .route(
            "/v1/models/{name}/versions",
            // Uploads stream to disk under the hub's own size limit, so the JSON body limit does not apply.
            post(models::push).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/models", get(openai::list))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/calibrations", post(models::upload_calibration))
        .route("/v1/models/{reference}", get(models::show))
        .route("/v1/blobs/{id}", get(models::download))
        .route("/v1/infer", post(infer::infer))
        .route("/v1/receipts/{id}", get(infer::get_receipt))
        .route("/v1/settlements/{id}", get(infer::settlement))
        .route("/v1/jobs/prepare", post(jobs::prepare))
        .route("/v1/jobs/{job}/execute", post(jobs::execute))
        .route("/v1/verify", post(infer::verify).layer(DefaultBodyLimit::max(infer::MAX_VERIFY_BYTES)))
        .route("/v1/ledger/status", get(ledger::status))
        .route("/v1/ledger/genesis", get(ledger::genesis))
        .route("/v1/ledger/blocks/{height}", get(ledger::block))
        .route("/v1/ledger/nodes", get(ledger::nodes))
        .route("/v1/ledger/validators", get(ledger::validators))
        .route("/v1/ledger/epochs", get(ledger::epochs))
        .route("/v1/ledger/accounts/{address}", get(ledger::account))
        .route("/v1/ledger/txs", post(ledger::submit_tx))
        .route("/v1/ledger/txs/{id}", get(ledger::tx))
        .route("/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/metrics", get(node::metrics))
        .route("/explorer", get(explorer::redirect))
        .route("/explorer/", get(explorer::index))
        .route("/explorer/app.js", get(explorer::app))
        .route("/explorer/style.css", get(explorer::style))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this endpoint")
        })
        .layer(DefaultBodyLimit::max(json_limit))
        // A body that stops arriving fails its request instead of holding it open.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(Code::Internal, "the request handler failed").into_response()
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn count_requests(State(s): AppState, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    s.metrics.http_requests.get_or_create(&HttpLabels { route, method, status: resp.status().as_u16() }).inc();
    resp
}

/// Tells the client of a request (its API key's name, or its address), refuses it without a key where the node
/// needs one, takes it from the client's rate budget, and leaves the client in the request for quota charges.
async fn admit(State(s): AppState, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // The requests that make the node work or spend; reads and the executor protocol between nodes (checked
    // against the ledger's assignment) are open.
    let path = req.uri().path();
    let keyed = req.method() == axum::http::Method::POST && !path.ends_with("/execute");
    let client = match s.access.identify(bearer, peer, keyed).and_then(|c| s.access.request(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) if openai::is_openai_path(path) => return openai::OpenAiError(e).into_response(),
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(client);
    next.run(req).await
}

/// Parses a JSON body ourselves so every failure is our error envelope, with 413 for oversized bodies.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(Code::PayloadTooLarge, "request body exceeds the node's limit")
        } else {
            ApiError::new(Code::InvalidBody, r.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::new(Code::InvalidJson, format!("invalid JSON: {e}")))
}

/// A 32-byte id in hex (64 characters), or `invalid_id` naming what it is.
fn hex_id(what: &'static str, s: &str) -> Result<[u8; 32], ApiError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| ApiError::new(Code::InvalidId, format!("{what} is 64 hex characters")))?;
    Ok(out)
}
