//! Node configuration: one TOML file (`$VOUCH_HOME/config.toml`), every field optional.
//! Precedence: command-line flag > environment > file > default.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::NodeError;

/// The node's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// HTTP listen address. Flag `--listen`; default `127.0.0.1:7070`.
    pub listen: SocketAddr,
    /// Largest model file accepted, bytes. Default 4 GiB.
    pub max_model_bytes: u64,
    /// Largest JSON request body (inference inputs, receipts), bytes. Default 64 MiB.
    pub max_request_bytes: usize,
    /// Compiled models kept in memory. Default 16.
    pub model_cache: usize,
    /// Inferences run at once; 0 = one per core. Default 0.
    pub max_concurrent_inferences: usize,
    /// Models up to this size are compiled at push, so one the engine cannot run is refused at once.
    /// Default 512 MiB.
    pub compile_on_push_max_bytes: u64,
    /// Connections served at once (more wait in the listen backlog). Default 1024.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, and that an idle kept-alive connection stays open.
    /// Default 10.
    pub header_timeout_secs: u64,
    /// Seconds a request body may go without a byte before the request fails. Default 30.
    pub body_timeout_secs: u64,
    /// Model uploads received at once (more are answered `503 busy`). Default 16.
    pub max_concurrent_uploads: usize,
    /// Whether model pushes without an account signature are taken, as the node's own account's (for a private node
    /// whose only client is its operator). Default false: every push is signed by the account that owns the name.
    pub unsigned_pushes: bool,
    /// Who may use the node: `open` (anyone; clients told apart by address) or `api_keys` (requests that make the
    /// node work or spend need `Authorization: Bearer KEY` from `api_keys`). Default `open`.
    pub access: crate::service::access::AccessMode,
    /// API keys, as `[[api_keys]]` tables with `name` and `key`.
    pub api_keys: Vec<crate::service::access::ApiKey>,
    /// Per-client request rate and quotas (`[quotas]`).
    pub quotas: crate::service::access::Quotas,
    /// Largest tensor a model run may produce, elements: a run that would make a larger one is refused (before the
    /// allocation when the size follows from the input shapes). Default 64 Mi.
    pub max_tensor_elements: u64,
    /// Language-model generations run at once (more wait in the queue); 0 = one per core. Default 0.
    pub llm_parallel: usize,
    /// Language-model requests that may wait for a place; beyond, `429 queue_full` with `Retry-After`. Default 16.
    pub llm_queue: usize,
    /// Threads the running generations share (each gets its share when it starts); 0 = every core. Default 0.
    pub llm_threads: usize,
    /// Language models kept loaded (memory-mapped). Default 2.
    pub llm_model_cache: usize,
    /// Longest prompt plus completion, tokens (also bounded by each model's trained context). Default 8192.
    pub llm_max_context: usize,
    /// Whether receipts carry the inputs (their digest is always there). Default true.
    pub disclose_inputs: bool,
    /// Fault injection for tests only: as a quorum executor, flip one bit of the output (a lying node that the
    /// ledger's dispute process must catch and slash). Default false.
    pub fault_flip_outputs: bool,
    /// Executed blocks between checkpoints of the chain state in the ledger store (a restart replays at most this
    /// many blocks; memory holds the accounts and models changed since the last checkpoint).
    pub snapshot_every_blocks: u64,
    /// How often the node settles the receipts it owes, in one batch transaction (ms). Default 500.
    pub settle_interval_ms: u64,
    /// Most receipts per settlement batch (more owed at once go into several batches). Default 4096.
    pub settle_batch_max: u32,
    /// Fault injection for tests only: store receipts and batch them for settlement, but never send the batch's
    /// transaction (what a crash, or a mempool lost with a restart, right after submitting leaves behind). Default
    /// false.
    pub fault_skip_settlement: bool,
    /// Fault injection for tests only: claim a zk output one unit off what was proven (what a prover bug that
    /// yields an unverifiable proof looks like), so the self-check before issuing must refuse it. Default false.
    pub fault_corrupt_proofs: bool,
    /// TEE: use the simulated platform with the root key at this path (flag `--tee-simulate`; testing only, never a
    /// TEE). Default none: the hardware platform is detected (configfs-tsm for TDX and SEV-SNP, the Nitro NSM).
    pub tee_simulate_root: Option<PathBuf>,
    /// TEE: a collateral file attached to every attestation (TDX: DCAP collateral JSON from a PCCS; SEV-SNP: the
    /// VCEK DER when the host does not supply it). Re-read at each attestation.
    pub tee_collateral: Option<PathBuf>,
    /// Where to listen for consensus peers when this node is not one of the chain spec's validators (a chain with
    /// epochs: it follows consensus, and validates once bonded and chosen; its `BondValidator` names this address).
    /// Flag `--p2p`. A spec validator listens at its spec address.
    pub p2p: Option<SocketAddr>,
    /// On a chain with epochs, a node that starts with no chain storage takes the ledger from a peer's sync point
    /// (checked from the genesis through the epoch links) instead of replaying every block since genesis. Default
    /// true; false (flag `--no-state-sync`) makes an archival node that executes the whole chain itself.
    pub state_sync: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            max_model_bytes: 4 << 30,
            max_request_bytes: 64 << 20,
            model_cache: 16,
            max_concurrent_inferences: 0,
            compile_on_push_max_bytes: 512 << 20,
            max_connections: 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_concurrent_uploads: 16,
            unsigned_pushes: false,
            max_tensor_elements: vouch_engine::DEFAULT_MAX_ELEMENTS,
            access: Default::default(),
            api_keys: vec![],
            quotas: Default::default(),
            disclose_inputs: true,
            llm_parallel: 0,
            llm_queue: 16,
            llm_threads: 0,
            llm_model_cache: 2,
            llm_max_context: 8192,
            snapshot_every_blocks: 1_024,
            fault_flip_outputs: false,
            settle_interval_ms: 500,
            settle_batch_max: 4096,
            fault_skip_settlement: false,
            fault_corrupt_proofs: false,
            tee_simulate_root: None,
            tee_collateral: None,
            p2p: None,
            state_sync: true,
        }
    }
}

impl NodeConfig {
    /// Reads `home/config.toml` if it exists, else the defaults.
    pub fn load(home: &Path) -> Result<Self, NodeError> {
        let path = home.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| NodeError::Config(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(NodeError::Config(format!("{}: {e}", path.display()))),
        }
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    pub(crate) fn model_cache_capacity(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.model_cache).unwrap_or(NonZeroUsize::MIN)
    }

    pub(crate) fn inference_slots(&self) -> usize {
        if self.max_concurrent_inferences > 0 {
            self.max_concurrent_inferences
        } else {
            std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused_and_defaults_fill_the_rest() {
        let c: NodeConfig = toml::from_str("model_cache = 3").unwrap();
        assert_eq!(c.model_cache, 3);
        assert_eq!(c.listen, NodeConfig::default().listen);
        assert!(toml::from_str::<NodeConfig>("modle_cache = 3").is_err());
    }
}
