//! The Vouch node: HTTP API (axum), storage, inference and receipt issuing, metrics.
//!
//! [`Node::start`] opens the home directory (key, hub, receipts), binds the listener and serves
//! `/v1` until the shutdown future resolves. Inference runs on tokio's blocking pool behind a semaphore
//! sized to the machine, on models compiled once by the engine cache.
//!
//! Two layers: [`api`] holds the HTTP handlers (parse the request, call a service, answer its result or its
//! [`ApiError`]); `service` holds what the node does (models, inference and receipts, zk proving, quorum, the
//! node's seat on the chain, settlement). Services never call handlers.

mod api;
pub mod config;
mod error;
mod metrics;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use vouch_crypto::NodeKey;
use vouch_engine::{ModelCache, TractEngine};
use vouch_hub::Hub;

pub use config::NodeConfig;
pub use error::ApiError;

/// Node start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Home directory or key problems.
    #[error("{0}")]
    Key(#[from] vouch_crypto::KeyError),
    /// Storage could not be opened.
    #[error("opening storage: {0}")]
    Hub(#[from] vouch_hub::HubError),
    /// The listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    /// A configuration problem.
    #[error("{0}")]
    Config(String),
}

/// Shared state of a running node: the services handlers call.
pub(crate) struct NodeState {
    pub config: NodeConfig,
    pub key: NodeKey,
    pub hub: Hub,
    pub cache: ModelCache,
    /// Language models and their generation scheduler.
    pub llm: service::llm::Llm,
    pub receipts: service::receipts::ReceiptStore,
    pub calibrations: service::zk::Calibrations,
    /// The salts of hidden weights' commitments (secret: they never leave the node).
    pub weight_salts: service::zk::WeightSalts,
    /// Provers of zk models, parameters committed (a pure function of model and calibration; rebuilt on a miss).
    pub provers: service::zk::Provers,
    pub metrics: metrics::Metrics,
    pub infer_slots: tokio::sync::Semaphore,
    /// Model uploads in progress (a slot each).
    pub upload_slots: tokio::sync::Semaphore,
    /// Who may use the node, and each client's usage.
    pub access: service::access::Access,
    pub started: Instant,
    /// The chain this node validates.
    pub chain: service::chain::NodeChain,
    /// Home directory.
    pub home: PathBuf,
    /// This node's API base URL.
    pub api_url: String,
    /// The TEE this node runs in, and its attestation.
    pub tee: service::tee::Tee,
}

impl NodeState {
    /// The engine string this node declares on the ledger: its ONNX and LLM engine builds with their kernel tiers.
    /// Quorum executors are drawn among nodes that declare the same one.
    pub fn engines(&self) -> String {
        format!("{}; {}", self.cache.engine_id(), self.llm.engine_id())
    }

    /// The issuer of this node's receipts for `record`: its key, and the engine string of the model's format.
    pub fn issuer_for(&self, record: &vouch_api::ModelVersion) -> vouch_receipt::Issuer<'_> {
        let engine = if record.format == service::models::GGUF {
            self.llm.engine_id().to_owned()
        } else {
            self.cache.engine_id()
        };
        vouch_receipt::Issuer::new(&self.key, engine)
    }
}

/// A node bound to its address and ready to serve.
pub struct Node {
    state: Arc<NodeState>,
    listener: tokio::net::TcpListener,
    home: PathBuf,
}

impl Node {
    /// Opens `home` (creating key, storage), binds `config.listen` and starts the node's validator: the chain of
    /// `home/genesis.json`, or with `dev` (and no genesis yet) a new single-validator chain.
    pub async fn start(home: &Path, config: NodeConfig, dev: bool) -> Result<Self, NodeError> {
        std::fs::create_dir_all(home).map_err(|e| NodeError::Config(format!("creating {}: {e}", home.display())))?;
        let key = NodeKey::load_or_create(&home.join("node.key"))?;
        let hub = Hub::open(home)?;
        let receipts = service::receipts::ReceiptStore::open(hub.database())?;
        let calibrations = service::zk::Calibrations::open(hub.database())?;
        let weight_salts = service::zk::WeightSalts::open(hub.database())?;
        let cache = ModelCache::new(
            Arc::new(TractEngine::with_max_elements(config.max_tensor_elements)),
            config.model_cache_capacity(),
        );
        let llm = service::llm::Llm::new(Arc::new(vouch_llm::LlamaEngine::new()), &config);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| NodeError::Bind { addr: config.listen, source })?;
        let api = format!(
            "http://{}",
            listener.local_addr().map_err(|source| NodeError::Bind { addr: config.listen, source })?
        );
        let sim_root = service::tee::simulated_root(&config).map_err(NodeError::Config)?;
        let spec = service::chain::load_or_create_spec(home, &key, &api, dev, sim_root)?;
        let tee = service::tee::Tee::detect(&config);
        let chain = service::chain::NodeChain::start(
            home,
            &key,
            spec,
            config.snapshot_every_blocks,
            config.p2p,
            config.state_sync,
        )?;
        let state = Arc::new(NodeState {
            chain,
            provers: service::zk::Provers::new(config.model_cache_capacity()),
            home: home.to_owned(),
            api_url: api.clone(),
            infer_slots: tokio::sync::Semaphore::new(config.inference_slots()),
            upload_slots: tokio::sync::Semaphore::new(config.max_concurrent_uploads.max(1)),
            access: service::access::Access::new(config.access, config.api_keys.clone(), config.quotas),
            metrics: metrics::Metrics::new(),
            config,
            key,
            hub,
            cache,
            llm,
            receipts,
            calibrations,
            weight_salts,
            started: Instant::now(),
            tee,
        });
        Ok(Self { state, listener, home: home.to_owned() })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Hex node id.
    pub fn node_id(&self) -> String {
        hex::encode(self.state.key.public_key())
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
        let app = api::router(self.state.clone());
        // Register (and keep trying to register) this node as an executor on the ledger.
        let st = self.state.clone();
        let registrar = tokio::spawn(async move {
            // Only once the local archive is replayed: before, the node's account looks unregistered and its nonce
            // stale.
            st.chain.chain().wait_for(|c| c.is_replayed().then_some(())).await;
            let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                ticks.tick().await;
                st.chain.ensure_registered(&st.key, &st.api_url, &st.engines());
                service::tee::ensure_attested(&st);
            }
        });
        let settler = tokio::spawn(service::settlement::run(self.state.clone()));
        tracing::info!(addr = %self.local_addr(), node = %self.node_id(), "node.serve");
        let c = &self.state.config;
        let limits = api::serve::ConnLimits {
            max_connections: c.max_connections,
            header_timeout: std::time::Duration::from_secs(c.header_timeout_secs.max(1)),
            drain: std::time::Duration::from_secs(10),
        };
        let served = api::serve::serve(self.listener, app, limits, shutdown).await.map_err(NodeError::Serve);
        registrar.abort();
        settler.abort();
        served?;
        tracing::info!("node.stopped");
        Ok(())
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
