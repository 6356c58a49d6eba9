//! The node itself: status and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use vouch_api::NodeStatus;

use super::AppState;
use crate::error::ApiError;
use crate::service::blocking;

/// `GET /v1/node`.
pub(super) async fn status(State(s): AppState) -> Result<Json<NodeStatus>, ApiError> {
    let st = s.clone();
    let (models, receipts, (owed, pending_batches, settled_batches)) =
        blocking(move || Ok((st.hub.version_count()?, st.receipts.count()?, st.receipts.settlement_backlog()?)))
            .await?;
    Ok(Json(NodeStatus {
        node_id: hex::encode(s.key.public_key()),
        version: env!("CARGO_PKG_VERSION").into(),
        engine: s.cache.engine_id(),
        network: hex::encode(s.chain.chain().chain_id()),
        modes: ["signed", "zk", "quorum"]
            .into_iter()
            .map(String::from)
            .chain(crate::service::tee::evidence(&s).is_ok().then(|| "tee".to_owned()))
            .collect(),
        models,
        receipts,
        cached_models: s.cache.len() as u64,
        uptime_s: s.started.elapsed().as_secs(),
        tee: crate::service::tee::status(&s),
        settlement: vouch_api::SettlementStatus {
            owed,
            pending_batches,
            settled_batches,
            interval_ms: s.config.settle_interval_ms,
        },
    }))
}

/// `GET /metrics`: Prometheus text exposition.
pub(super) async fn metrics(State(s): AppState) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}
