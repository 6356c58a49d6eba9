//! What the node does, behind the HTTP handlers: models (upload, commit, replication), inference and the receipt
//! of every mode, language-model completions, zk proving, the quorum protocol, the node's seat on the chain, settlement and the receipt store.

pub(crate) mod access;
pub(crate) mod chain;
pub(crate) mod execution;
pub(crate) mod inference;
pub(crate) mod llm;
pub(crate) mod models;
pub(crate) mod quorum;
pub(crate) mod receipts;
pub(crate) mod replicate;
pub(crate) mod settlement;
pub(crate) mod tee;
pub(crate) mod zk;

/// Runs blocking work (storage, engines, provers) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::ApiError> + Send + 'static,
) -> Result<T, crate::ApiError> {
    tokio::task::spawn_blocking(f).await?
}
