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
use commonware_runtime::{Quota, Runner as _, Supervisor as _};
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
    if !keys.contains(&me) {
        return Err(StartError::NotAValidator(me.to_string()));
    }
    let peers: Vec<(ed25519::PublicKey, SocketAddr)> =
        keys.iter().cloned().zip(cfg.spec.validators.iter().map(|v| v.p2p)).collect();
    std::fs::create_dir_all(&cfg.storage)
        .map_err(|source| StartError::Storage { path: cfg.storage.clone(), source })?;
    let index = crate::index::TxIndex::open(&cfg.storage.join("txindex.redb"))?;
    let chain = Chain::with_index(genesis, index, RECENT_BLOCKS);
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
                let p2p = lookup::Config::local(
                    handshake,
                    NAMESPACE,
                    cfg.p2p_listen,
                    NZUsize!(peers.len().max(1)),
                    (MAX_BLOCK_BYTES + (1 << 16)) as u32,
                    NZUsize!(4096),
                );
                let (mut network, mut oracle) = lookup::Network::new(ctx.child("network"), p2p);
                let map: Map<ed25519::PublicKey, Address> =
                    Map::from_iter_dedup(peers.iter().map(|(k, a)| (k.clone(), Address::Symmetric(*a))));
                let _ = oracle.track(0, map);
                let rate = |c: u64| std::num::NonZeroU32::new(channel::rate(c)).unwrap_or(NZU32!(1));
                let pairs = channel::ALL.iter().map(|c| network.register(*c, Quota::per_second(rate(*c)))).collect();
                network.start();
                let vcfg = Config {
                    signer: cfg.signer.clone(),
                    validators: Set::from_iter_dedup(peers.iter().map(|(k, _)| k.clone())),
                    partition: "vouch".into(),
                    provider: oracle.clone(),
                    blocker: oracle.clone(),
                    timing: cfg.timing.clone(),
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
