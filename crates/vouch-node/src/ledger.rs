//! The node's seat on the chain: its validator (on its own thread), settlement of the receipts it issues, anchors,
//! and the ledger's JSON views.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use vouch_chain::SubmitError;
use vouch_chain::net::{self, NetConfig, RunningChain};
use vouch_chain::spec::{
    AccountSpec, CONSENSUS_KEY_CONTEXT, ChainSpec, ValidatorSpec, consensus_key, consensus_public_hex,
};
use vouch_chain::validator::Timing;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{Anchor, Digest, domain};
use vouch_crypto::NodeKey;

use crate::NodeError;

/// Balance of the node's own account in a `--dev` chain.
pub const DEV_FUNDS: u64 = 1_000_000_000_000;

/// A node's chain.
pub(crate) struct Ledger {
    pub running: RunningChain,
    pub spec: ChainSpec,
    next_nonce: Mutex<u64>,
}

/// Reads `home/genesis.json`, or (with `dev`) writes a single-validator chain with this node funded.
pub(crate) fn load_or_create_spec(home: &Path, key: &NodeKey, api: &str, dev: bool) -> Result<ChainSpec, NodeError> {
    let path = home.join("genesis.json");
    if path.exists() {
        return ChainSpec::load(&path).map_err(NodeError::Config);
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
    let spec = ChainSpec {
        accounts: vec![AccountSpec { address: hex::encode(key.public_key()), balance: DEV_FUNDS }],
        params: Default::default(),
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

impl Ledger {
    /// Starts this node's validator for `spec`.
    pub fn start(home: &Path, key: &NodeKey, spec: ChainSpec) -> Result<Self, NodeError> {
        let seed = key.derive_seed(CONSENSUS_KEY_CONTEXT);
        let me = consensus_public_hex(&seed);
        let entry = spec.validators.iter().find(|v| v.consensus_key == me).ok_or_else(|| {
            NodeError::Config(format!("this node (consensus key {me}) is not a validator of the chain"))
        })?;
        let running = net::spawn(NetConfig {
            spec: spec.clone(),
            signer: consensus_key(&seed),
            p2p_listen: entry.p2p,
            storage: home.join("chain"),
            timing: Timing::default(),
        })
        .map_err(NodeError::Config)?;
        Ok(Self { running, spec, next_nonce: Mutex::new(0) })
    }

    /// Submits a transaction and gossips it to the other validators.
    pub fn submit(&self, bytes: Bytes) -> Result<Digest, SubmitError> {
        let id = self.running.chain.submit(bytes.clone())?;
        let _ = self.running.gossip.unbounded_send(bytes);
        Ok(id)
    }

    /// Signs and submits the settlement of a receipt this node issued.
    pub fn settle(&self, key: &NodeKey, receipt: Digest) -> Result<Digest, SubmitError> {
        let from = key.public_key();
        let mut next = self.next_nonce.lock().unwrap_or_else(|p| p.into_inner());
        let on_chain = self.running.chain.state().ledger.accounts.get(&from).map_or(0, |a| a.nonce);
        *next = (*next).max(on_chain);
        for _ in 0..2 {
            let tx = Tx {
                chain: self.running.chain.chain_id(),
                from,
                nonce: *next,
                fee: self.spec.params.min_fee,
                kind: TxKind::SettleReceipt { receipt },
            };
            let signature = key.sign(domain::TX_SIGNATURE, &tx.id().0);
            match self.submit(Bytes::from(SignedTx { tx, signature }.to_bytes())) {
                Ok(id) => {
                    *next += 1;
                    return Ok(id);
                }
                // The executed chain was behind (still replaying after a restart): retry at the account's nonce.
                Err(SubmitError::StaleNonce { expected, .. }) => *next = expected,
                Err(e) => return Err(e),
            }
        }
        Err(SubmitError::StaleNonce { expected: *next, found: *next })
    }

    /// The anchor of a settled receipt, once its settlement is finalized.
    pub async fn anchor(&self, receipt: &Digest) -> Option<Anchor> {
        vouch_chain::anchor::build(&self.running.chain, &self.running.marshal, receipt).await
    }
}
