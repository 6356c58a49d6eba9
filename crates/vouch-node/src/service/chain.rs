//! The node's seat on the chain: its validator (on its own thread), transactions it signs and submits (settlements,
//! registration, models), anchors, blocks from the archive, and bounded waits on the chain facade
//! ([`vouch_chain::Chain`]'s queries and waits; nothing here polls).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use vouch_chain::net::{self, NetConfig, RunningChain};
use vouch_chain::spec::{
    AccountSpec, CONSENSUS_KEY_CONTEXT, ChainSpec, ValidatorSpec, consensus_key, consensus_public_hex,
};
use vouch_chain::validator::Timing;
use vouch_chain::{Block, Chain, SubmitError, TxRecord};
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{Anchor, Digest, domain};
use vouch_crypto::NodeKey;
use vouch_ledger::Job;

use crate::NodeError;

/// Balance of the node's own account in a `--dev` chain.
pub const DEV_FUNDS: u64 = 1_000_000_000_000;

/// A node's chain.
pub(crate) struct NodeChain {
    running: RunningChain,
    pub spec: ChainSpec,
    /// One signer at a time, and the nonce after the last one it used.
    signing: Mutex<u64>,
    /// When this node last tried to register.
    registering: Mutex<Option<std::time::Instant>>,
    /// When this node last declared its engine string.
    declaring: Mutex<Option<std::time::Instant>>,
}

/// Reads `home/genesis.json`, or (with `dev`) writes a single-validator chain with this node funded.
/// With `simulated_tee_root`, the new chain accepts simulated attestations signed by that root (testing only).
pub(crate) fn load_or_create_spec(
    home: &Path,
    key: &NodeKey,
    api: &str,
    dev: bool,
    simulated_tee_root: Option<[u8; 32]>,
) -> Result<ChainSpec, NodeError> {
    let path = home.join("genesis.json");
    if path.exists() {
        return ChainSpec::load(&path).map_err(|e| NodeError::Config(e.to_string()));
    }
    if !dev {
        return Err(NodeError::Config(format!(
            "no chain spec at {}: run `vouch node run --dev` for a single local node, or give a network's genesis.json",
            path.display()
        )));
    }
    // A free loopback port for the (single) validator's p2p listener.
    let p2p = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| NodeError::Config(format!("choosing a p2p port: {e}")))?;
    let mut params = vouch_ledger::Params::default();
    params.tee.simulated_roots.extend(simulated_tee_root.map(hex::encode));
    let spec = ChainSpec {
        accounts: vec![AccountSpec { address: hex::encode(key.public_key()), balance: DEV_FUNDS }],
        params,
        validators: vec![ValidatorSpec {
            consensus_key: consensus_public_hex(&key.derive_seed(CONSENSUS_KEY_CONTEXT)),
            node_id: hex::encode(key.public_key()),
            p2p,
            api: api.to_owned(),
        }],
    };
    let text = serde_json::to_string_pretty(&spec).expect("spec serializes");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| NodeError::Config(format!("writing {}: {e}", path.display())))?;
    Ok(spec)
}

impl NodeChain {
    /// Starts this node's validator for `spec`.
    /// A node that is not one of the spec's validators joins a chain with epochs at `p2p`.
    pub fn start(
        home: &Path,
        key: &NodeKey,
        spec: ChainSpec,
        snapshot_every: u64,
        p2p: Option<std::net::SocketAddr>,
        state_sync: bool,
    ) -> Result<Self, NodeError> {
        let seed = key.derive_seed(CONSENSUS_KEY_CONTEXT);
        let me = consensus_public_hex(&seed);
        let p2p_listen = match spec.validators.iter().find(|v| v.consensus_key == me) {
            Some(entry) => entry.p2p,
            None if spec.params.validators.epochs() => p2p.ok_or_else(|| {
                NodeError::Config(format!(
                    "this node (consensus key {me}) is not a genesis validator: give it a p2p address to follow \
                     consensus from (--p2p or `p2p` in config.toml), and bond it to validate"
                ))
            })?,
            None => {
                return Err(NodeError::Config(format!(
                    "this node (consensus key {me}) is not a validator of the chain (its validator set is fixed)"
                )));
            }
        };
        let running = net::spawn(NetConfig {
            spec: spec.clone(),
            signer: consensus_key(&seed),
            p2p_listen,
            storage: home.join("chain"),
            timing: Timing { snapshot_every, ..Timing::default() },
            state_sync,
        })
        .map_err(|e| NodeError::Config(e.to_string()))?;
        Ok(Self { running, spec, signing: Mutex::new(0), registering: Mutex::new(None), declaring: Mutex::new(None) })
    }

    /// The executed chain: queries and waits.
    pub fn chain(&self) -> &Chain {
        &self.running.chain
    }

    /// Submits a transaction and gossips it to the other validators.
    pub fn submit(&self, bytes: Bytes) -> Result<Digest, SubmitError> {
        let id = self.running.chain.submit(bytes.clone())?;
        let _ = self.running.gossip.unbounded_send(bytes);
        Ok(id)
    }

    /// Signs a transaction from this node's account (its node key) at its next nonce and submits it. The nonce is the
    /// first free one from the last this signer used (or the executed one), skipping any a pending transaction of the
    /// account already uses (so a transaction someone else signed with the same key and queued first is respected);
    /// one signer at a time.
    pub fn sign_submit(&self, key: &NodeKey, kind: TxKind) -> Result<Digest, SubmitError> {
        let from = key.public_key();
        let mut next = self.signing.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = None;
        for _ in 0..2 {
            let nonce = self.running.chain.next_free_nonce(&from, *next);
            let tx = Tx {
                chain: self.running.chain.chain_id(),
                from,
                nonce,
                fee: self.spec.params.min_fee,
                kind: kind.clone(),
            };
            let signature = key.sign(domain::TX_SIGNATURE, &tx.id().0);
            match self.submit(Bytes::from(SignedTx { tx, signature }.to_bytes())) {
                Ok(id) => {
                    *next = nonce + 1;
                    return Ok(id);
                }
                // Executed concurrently between reading the nonce and submitting: once more at the new nonce.
                Err(e @ SubmitError::StaleNonce { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("loop ran"))
    }

    /// Registers this node as an executor (stake from its own account) unless it already is, and once registered
    /// declares its engine string if the ledger holds another one (a first start, an upgraded build); each at most
    /// once per 10 s.
    pub fn ensure_registered(&self, key: &NodeKey, endpoint: &str, engine: &str) {
        let me = key.public_key();
        let due = |last: &Mutex<Option<std::time::Instant>>| {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            let due = !last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(10));
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        match self.running.chain.node(&me) {
            Some(n) if n.engine == engine => {}
            Some(_) if due(&self.declaring) => {
                match self.sign_submit(key, TxKind::SetEngine { node: me, engine: engine.to_owned() }) {
                    Ok(id) => tracing::info!(tx = %id, engine, "ledger.set_engine submitted"),
                    Err(e) => tracing::warn!(error = %e, "ledger.set_engine failed"),
                }
            }
            Some(_) => {}
            None if due(&self.registering) => self.register(key, me, endpoint),
            None => {}
        }
    }

    fn register(&self, key: &NodeKey, me: vouch_codec::tx::Address, endpoint: &str) {
        let stake = self.spec.params.min_stake.saturating_mul(10);
        let kind = TxKind::RegisterNode {
            node: me,
            endpoint: endpoint.to_owned(),
            stake,
            node_signature: key.sign(domain::NODE_BIND, &me),
        };
        match self.sign_submit(key, kind) {
            Ok(id) => tracing::info!(tx = %id, stake, "ledger.register_node submitted"),
            Err(e) => tracing::warn!(error = %e, "ledger.register_node failed"),
        }
    }

    /// A transaction's record once it is finalized, or `None` after `timeout`.
    pub async fn wait_tx(&self, id: &Digest, timeout: Duration) -> Option<TxRecord> {
        tokio::time::timeout(timeout, self.running.chain.wait_tx(id)).await.ok()
    }

    /// Whether the executed chain reached `height` within `timeout`.
    pub async fn wait_height(&self, height: u64, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.running.chain.wait_height(height)).await.is_ok()
    }

    /// Job `id` once it exists and `pred` holds for it, or `None` after `timeout`.
    pub async fn wait_job(&self, id: &Digest, pred: impl Fn(&Job) -> bool, timeout: Duration) -> Option<Job> {
        tokio::time::timeout(timeout, self.running.chain.wait_job(id, pred)).await.ok()
    }

    /// The anchor of a receipt settled on its own (`SettleReceipt`), once its settlement is finalized.
    pub async fn anchor(&self, receipt: &Digest) -> Option<Anchor> {
        vouch_chain::anchor::build(&self.running.chain, &self.running.marshal, receipt).await
    }

    /// The anchor of a receipt at `path` in the batch with `root`, once the batch's settlement is finalized.
    pub async fn anchor_batched(
        &self,
        root: &Digest,
        height: Option<u64>,
        path: vouch_codec::BatchPath,
    ) -> Option<Anchor> {
        vouch_chain::anchor::build_batched(&self.running.chain, &self.running.marshal, root, height, path).await
    }

    /// Checks an anchor of `body` against this chain's id and validator set, as `vouch verify --genesis` does.
    pub fn verify_anchor(&self, anchor: &Anchor, body: &vouch_codec::ReceiptBody) -> Result<(), String> {
        let sets = self.running.chain.validator_sets();
        vouch_chain::anchor::verify_with_sets(anchor, body, &self.running.chain.chain_id(), &sets)
            .map_err(|e| e.to_string())
    }

    /// The links proving the validator sets of epochs `from + 1 ..= to + 1` (each from the boundary block of the
    /// epoch before and its finalization, from this node's archive or learned in its state sync).
    pub async fn epoch_links(&self, from: u64, to: u64) -> Result<Vec<vouch_chain::epoch::EpochLink>, u64> {
        let mut links = vec![];
        for e in from..=to {
            links.push(vouch_chain::epoch::link_for(&self.running.chain, &self.running.marshal, e).await.ok_or(e)?);
        }
        Ok(links)
    }

    /// A finalized block from marshal's archive.
    pub async fn block(&self, height: u64) -> Option<Block> {
        let block = self.running.marshal.get_block(vouch_chain::validator::Height::new(height)).await?;
        Some(block.inner().clone())
    }

    /// The timestamp of the finalized block at `height` (recent ones from memory, older ones from the archive).
    pub async fn block_time(&self, height: u64) -> Option<u64> {
        match self.running.chain.recent_header(height) {
            Some(h) => Some(h.timestamp_ms),
            None => self.block(height).await.map(|b| b.header().timestamp_ms),
        }
    }
}
