//! Running a validator in a real process: commonware's tokio runtime and authenticated p2p (`lookup`: every
//! validator's address is in the chain spec). The runtime owns a thread of its own, so a node's HTTP server (on its
//! own tokio runtime) shares only the [`ChainHandle`], the gossip sender and marshal's mailbox with it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use commonware_cryptography::{ChaCha20Poly1305, Signer as _, ed25519};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{Quota, Runner as _, Spawner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::{NZU32, NZUsize, ordered::Map, ordered::Set};
use futures::channel::mpsc;

use crate::app::Scheme;
use crate::block::{Block, MAX_BLOCK_BYTES};
use crate::chain::{Chain, ChainHandle};
use crate::spec::ChainSpec;
use crate::validator::{self, Channels, Config, NAMESPACE, StartError, Timing, channel};
use commonware_consensus::marshal::{core::Mailbox, standard::Standard};

/// Blocks whose transaction records a node keeps in memory (older ones are read from its on-disk index).
pub const RECENT_BLOCKS: u64 = 1_024;

/// What a node needs to run its validator.
pub struct NetConfig {
    /// The chain.
    pub spec: ChainSpec,
    /// This validator's consensus key.
    pub signer: ed25519::PrivateKey,
    /// Where to listen for peers.
    pub p2p_listen: SocketAddr,
    /// Consensus journal and block archive directory.
    pub storage: PathBuf,
    /// Timing.
    pub timing: Timing,
    /// Whether a start with nothing executed state-syncs from peers (chains with epochs).
    pub state_sync: bool,
}

/// The most peers one tracked set may hold: the genesis set, and with epochs the current and next sets and the
/// candidates for the one after (plus this node).
fn max_peers(params: &vouch_ledger::ValidatorParams, genesis: usize) -> usize {
    match params.epochs() {
        true => genesis + 3 * params.max_validators as usize + 1,
        false => genesis.max(1),
    }
}

/// The peers a node on a chain with epochs connects to: the keys of the current and next sets and the strongest
/// candidates for the one after (at their bonded addresses), and the genesis validators (at their spec addresses),
/// at most `max` (in that order of priority).
fn peer_map(
    chain: &Chain,
    genesis: &[(ed25519::PublicKey, SocketAddr)],
    max: usize,
) -> Map<ed25519::PublicKey, Address> {
    use commonware_codec::DecodeExt as _;
    let st = chain.state();
    let ledger = &st.ledger;
    let top = ledger.params.validators.max_validators as usize;
    let mut candidates: Vec<(&[u8; 32], &vouch_ledger::ValidatorRecord)> =
        ledger.validators.iter().filter(|(_, v)| v.stake >= ledger.params.validators.min_stake).collect();
    candidates.sort_unstable_by(|a, b| b.1.stake.cmp(&a.1.stake).then(a.0.cmp(b.0)));
    candidates.truncate(top);
    let in_sets: std::collections::BTreeSet<[u8; 32]> =
        ledger.validator_sets.values().flat_map(|s| s.iter().copied()).collect();
    let spec_addr = |k: &ed25519::PublicKey| genesis.iter().find(|(g, _)| g == k).map(|(_, a)| *a);
    let mut out: Vec<(ed25519::PublicKey, Address)> = vec![];
    let bonded = in_sets.into_iter().chain(candidates.into_iter().map(|(k, _)| *k));
    for key in bonded {
        let Ok(pk) = ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&key)) else { continue };
        let bonded_addr = ledger.validators.get(&key).and_then(|v| v.p2p.parse::<SocketAddr>().ok());
        if let Some(addr) = bonded_addr.or_else(|| spec_addr(&pk))
            && !out.iter().any(|(k, _)| *k == pk)
        {
            out.push((pk, Address::Symmetric(addr)));
        }
    }
    for (k, a) in genesis {
        if !out.iter().any(|(o, _)| o == k) {
            out.push((k.clone(), Address::Symmetric(*a)));
        }
    }
    out.truncate(max.saturating_sub(1));
    Map::from_iter_dedup(out)
}

/// A validator running on its own thread.
pub struct RunningChain {
    /// The executed chain.
    pub chain: ChainHandle,
    /// Submits and gossips transactions.
    pub gossip: mpsc::UnboundedSender<Bytes>,
    /// Finalized blocks and certificates.
    pub marshal: Mailbox<Scheme, Standard<Block>>,
}

/// Starts the validator thread; returns once the validator is wired (peers connect in the background).
pub fn spawn(cfg: NetConfig) -> Result<RunningChain, StartError> {
    let genesis = cfg.spec.genesis()?;
    let keys = cfg.spec.validator_keys()?;
    let me = cfg.signer.public_key();
    let vparams = genesis.params.validators.clone();
    // On a chain with epochs any node may follow consensus (and validate once bonded and chosen).
    if !vparams.epochs() && !keys.contains(&me) {
        return Err(StartError::NotAValidator(me.to_string()));
    }
    let peers: Vec<(ed25519::PublicKey, SocketAddr)> =
        keys.iter().cloned().zip(cfg.spec.validators.iter().map(|v| v.p2p)).collect();
    std::fs::create_dir_all(&cfg.storage)
        .map_err(|source| StartError::Storage { path: cfg.storage.clone(), source })?;
    let index = crate::index::TxIndex::open(&cfg.storage.join("txindex.redb"))?;
    let store = crate::store::StateStore::open(&cfg.storage.join("state.redb"))?;
    let chain = Chain::on_disk(genesis, index, RECENT_BLOCKS, store);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread_chain = chain.clone();
    std::thread::Builder::new()
        .name("vouch-chain".into())
        .spawn(move || {
            let runtime = commonware_runtime::tokio::Config::new()
                .with_storage_directory(cfg.storage.clone())
                .with_worker_threads(2);
            commonware_runtime::tokio::Runner::new(runtime).start(|ctx| async move {
                let handshake = Cups::<_, ChaCha20Poly1305>::new(
                    Sake {
                        signer: cfg.signer.clone(),
                        synchrony_bound: Duration::from_secs(5),
                        max_handshake_age: Duration::from_secs(10),
                        version: sake::Version::V1,
                    },
                    cups::Version::V1,
                );
                // Peers: the genesis validators, and with epochs also the current, next and candidate sets.
                let max_peers = max_peers(&vparams, peers.len());
                let p2p = lookup::Config::local(
                    handshake,
                    NAMESPACE,
                    cfg.p2p_listen,
                    std::num::NonZeroUsize::new(max_peers).unwrap_or(NZUsize!(1)),
                    (MAX_BLOCK_BYTES + (1 << 16)) as u32,
                    NZUsize!(4096),
                );
                let (mut network, mut oracle) = lookup::Network::new(ctx.child("network"), p2p);
                let map: Map<ed25519::PublicKey, Address> =
                    Map::from_iter_dedup(peers.iter().map(|(k, a)| (k.clone(), Address::Symmetric(*a))));
                let _ = oracle.track(0, map.clone());
                if vparams.epochs() {
                    let (watch_chain, mut tracker) = (thread_chain.clone(), oracle.clone());
                    let genesis_peers = peers.clone();
                    ctx.child("peer_sets").spawn(move |_| async move {
                        let mut executed = watch_chain.subscribe();
                        let (mut id, mut tracked) = (0u64, map);
                        while executed.changed().await.is_ok() {
                            let now = peer_map(&watch_chain, &genesis_peers, max_peers);
                            if now != tracked {
                                id += 1;
                                let _ = tracker.track(id, now.clone());
                                tracked = now;
                            }
                        }
                    });
                }
                // The p2p layer sizes each channel's mailbox to one burst per peer it may retain, so with room for
                // more peers each one's rate shrinks in proportion: the node's memory stays what the genesis set's
                // needs (consensus channels keep at least 128 messages per second per peer).
                let per_peer = |c: u64| {
                    let scaled = u64::from(channel::rate(c)) * peers.len().max(1) as u64 / max_peers as u64;
                    scaled.max(if c == channel::TXS || c == channel::BLOCKS { 16 } else { 128 }) as u32
                };
                let rate = |c: u64| std::num::NonZeroU32::new(per_peer(c)).unwrap_or(NZU32!(1));
                let pairs = channel::ALL.iter().map(|c| network.register(*c, Quota::per_second(rate(*c)))).collect();
                network.start();
                let vcfg = Config {
                    signer: cfg.signer.clone(),
                    validators: Set::from_iter_dedup(peers.iter().map(|(k, _)| k.clone())),
                    partition: "vouch".into(),
                    provider: oracle.clone(),
                    blocker: oracle.clone(),
                    timing: cfg.timing.clone(),
                    state_sync: cfg.state_sync,
                };
                match validator::start(ctx.child("validator"), thread_chain, vcfg, Channels { pairs }).await {
                    Ok(v) => {
                        let _ = ready_tx.send(Ok((v.gossip.clone(), v.marshal.clone())));
                        let _ = v.engine.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(StartError::Thread)?;
    let (gossip, marshal) = ready_rx.recv().map_err(|_| StartError::Stopped)??;
    Ok(RunningChain { chain, gossip, marshal })
}
