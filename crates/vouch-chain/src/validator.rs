//! One validator: simplex consensus + marshal (block dissemination, finalized-block archive, backfill) + the
//! executor that applies finalized blocks to the ledger in height order. Generic over the runtime (deterministic
//! simulation or tokio) and the p2p network (simulated or authenticated), so tests and real nodes run the same code.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;
use commonware_broadcast::buffered;
use commonware_consensus::marshal::{self, standard::Inline, standard::Standard};
pub use commonware_consensus::types::Height;
use commonware_consensus::types::{FixedEpocher, ViewDelta};
use commonware_consensus::{Heightable, Reporter};
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::{Digested, Digestible, ed25519};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage};
use commonware_storage::archive::immutable;
use commonware_utils::acknowledgement::Exact;
use commonware_utils::{Acknowledgement, NZDuration, NZU16, NZU64, NZUsize};
use futures::StreamExt;
use futures::channel::mpsc;
use tracing::{debug, error, info, warn};

use crate::app::{App, Scheme};
use crate::block::Block;
use crate::chain::ChainHandle;
use crate::epoch::EpochSchemes;
use crate::orchestrator::Orchestrator;
use commonware_p2p::utils::mux::{Builder as _, Muxer};

/// Namespace of every consensus signature of Vouch chains.
pub const NAMESPACE: &[u8] = b"VOUCH_CONSENSUS_V1";

/// The p2p channels a validator uses, in registration order.
pub mod channel {
    /// Votes.
    pub const VOTES: u64 = 0;
    /// Certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Certificate fetches.
    pub const RESOLVER: u64 = 2;
    /// Finalized-block backfill.
    pub const BACKFILL: u64 = 3;
    /// Block broadcast.
    pub const BLOCKS: u64 = 4;
    /// Transaction gossip.
    pub const TXS: u64 = 5;
    /// State sync (offers, epoch links, snapshot chunks).
    pub const STATE_SYNC: u64 = 6;
    /// Every channel.
    pub const ALL: [u64; 7] = [VOTES, CERTIFICATES, RESOLVER, BACKFILL, BLOCKS, TXS, STATE_SYNC];

    /// Messages per second each peer may send on `channel`. The p2p layer sizes its mailboxes to one such burst per
    /// peer and channel, so these bound the node's memory as well as a peer's traffic: at 100,000 per second on
    /// every channel an idle node held 1.2 GB of empty mailbox slots. Transaction gossip needs the most (clients'
    /// transactions, jobs' results, settlement batches); consensus a few messages per view.
    pub fn rate(channel: u64) -> u32 {
        match channel {
            TXS => 20_000,
            BLOCKS => 256,
            STATE_SYNC => 64,
            _ => 1_024,
        }
    }
}

/// The channel pairs of [`channel::ALL`].
pub struct Channels<S, R> {
    /// Sender/receiver pairs, indexed by channel id.
    pub pairs: Vec<(S, R)>,
}

/// Timing knobs.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Wait for a leader's proposal before voting to skip the view.
    pub leader_timeout: Duration,
    /// Wait for a notarization before voting to skip.
    pub certification_timeout: Duration,
    /// Rebroadcast interval of skip votes.
    pub timeout_retry: Duration,
    /// Most transactions per block.
    pub max_block_txs: usize,
    /// Executed blocks between local snapshots of the chain state (a restart replays at most this many blocks).
    pub snapshot_every: u64,
    /// On a chain with a ledger store, a checkpoint is also written after a block that leaves at least this many
    /// spilled entries in memory (so memory stays bounded on a busy chain, not only every `snapshot_every` blocks).
    pub checkpoint_entries: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            leader_timeout: Duration::from_millis(1_000),
            certification_timeout: Duration::from_millis(2_000),
            timeout_retry: Duration::from_secs(5),
            max_block_txs: 4_096,
            snapshot_every: 1_024,
            checkpoint_entries: 65_536,
        }
    }
}

/// What a validator needs to start.
pub struct Config<P, B> {
    /// This validator's consensus key.
    pub signer: ed25519::PrivateKey,
    /// Every validator's consensus key.
    pub validators: commonware_utils::ordered::Set<ed25519::PublicKey>,
    /// Storage partition prefix (letters, digits, `-`, `_`).
    pub partition: String,
    /// Who the network is connected to.
    pub provider: P,
    /// Blocks misbehaving peers.
    pub blocker: B,
    /// Timing.
    pub timing: Timing,
    /// Whether a start with nothing executed takes the state from a peer's sync point (chains with epochs) instead of
    /// replaying every block since genesis.
    pub state_sync: bool,
}

/// A running validator: its tasks and the chain they maintain.
pub struct Validator {
    /// The chain (ledger state, tx index, mempool).
    pub chain: ChainHandle,
    /// Submits a transaction locally and gossips it to the other validators.
    pub gossip: futures::channel::mpsc::UnboundedSender<Bytes>,
    /// Marshal's mailbox: finalized blocks and certificates by height.
    pub marshal: marshal::core::Mailbox<Scheme, Standard<Block>>,
    /// The consensus engine's task.
    pub engine: Handle<()>,
}

/// The ledger executor's reporter: hands finalized blocks (with marshal's acknowledgement) to the executor task.
#[derive(Clone)]
struct Finalized(mpsc::UnboundedSender<(Digested<Block>, Exact)>);

impl Reporter for Finalized {
    type Activity = marshal::Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        match activity {
            marshal::Update::Block(block, ack) => {
                if self.0.unbounded_send((block, ack)).is_err() {
                    return commonware_actor::Feedback::Closed;
                }
            }
            marshal::Update::Tip(..) => {}
        }
        commonware_actor::Feedback::Ok
    }
}

fn archive_config<C>(p: &str, what: &str, page_cache: &CacheRef, codec_config: C) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{p}-{what}-metadata"),
        freezer_table_partition: format!("{p}-{what}-freezer-table"),
        freezer_table_initial_size: 64,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 10,
        freezer_key_partition: format!("{p}-{what}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_value_partition: format!("{p}-{what}-freezer-value"),
        freezer_value_target_size: 1 << 20,
        freezer_value_compression: None,
        ordinal_partition: format!("{p}-{what}-ordinal"),
        items_per_section: NZU64!(1024),
        codec_config,
        replay_buffer: NZUsize!(1 << 16),
        freezer_key_write_buffer: NZUsize!(1 << 16),
        freezer_value_write_buffer: NZUsize!(1 << 16),
        ordinal_write_buffer: NZUsize!(1 << 16),
    }
}

/// Why a validator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// This node's consensus key is not in the validator set.
    #[error("this node's consensus key {0} is not a validator of the chain spec")]
    NotAValidator(String),
    /// Fewer channel pairs than [`channel::ALL`].
    #[error("missing p2p channel")]
    MissingChannel,
    /// A block or certificate archive could not be opened.
    #[error("{what} archive: {source}")]
    Archive {
        /// Which archive.
        what: &'static str,
        /// The cause.
        source: commonware_storage::archive::Error,
    },
    /// The chain spec is invalid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// The transaction index could not be opened.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The ledger store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The storage directory could not be created.
    #[error("{path}: {source}")]
    Storage {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The chain thread could not be spawned.
    #[error("spawning the chain thread: {0}")]
    Thread(std::io::Error),
    /// The chain thread stopped while starting.
    #[error("the chain thread stopped while starting")]
    Stopped,
}

/// Starts a validator on `context` with the channel pairs of [`channel::ALL`].
pub async fn start<E, P, B, S, R>(
    context: E,
    chain: ChainHandle,
    cfg: Config<P, B>,
    channels: Channels<S, R>,
) -> Result<Validator, StartError>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    P: Provider<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey> + Sync,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    use commonware_cryptography::Signer as _;
    let me = cfg.signer.public_key();
    let params = chain.genesis().params.validators.clone();
    if !params.epochs() && !cfg.validators.iter().any(|k| *k == me) {
        return Err(StartError::NotAValidator(me.to_string()));
    }
    let epocher = match params.epochs() {
        true => FixedEpocher::new(NonZeroU64::new(params.epoch_length.max(2)).unwrap_or(NZU64!(2))),
        false => FixedEpocher::new(NZU64!(u64::MAX)),
    };
    // Epoch 0 is the genesis set's; the orchestrator registers each later epoch's set from the executed ledger.
    let schemes = EpochSchemes::default();
    schemes.register(0, cfg.validators.clone(), &cfg.signer);
    let mut pairs = channels.pairs.into_iter();
    let mut next = || pairs.next().ok_or(StartError::MissingChannel);
    let (votes, certs, resolver_net, backfill, blocks, txs) = (next()?, next()?, next()?, next()?, next()?, next()?);
    let (sync_sender, sync_receiver) = next()?;
    let p = cfg.partition.clone();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(256));
    let mailbox_size: NonZeroUsize = NZUsize!(4096);

    // Block dissemination and backfill.
    let resolver_cfg = marshal::resolver::p2p::Config {
        public_key: me.clone(),
        peer_provider: cfg.provider.clone(),
        blocker: cfg.blocker.clone(),
        mailbox_size,
        fetch_timeout: NZDuration!(Duration::from_secs(2)),
        fetch_retry_delay: Duration::from_millis(100),
        priority_requests: false,
        priority_responses: false,
    };
    let resolver = marshal::resolver::p2p::init(context.child("backfill"), resolver_cfg, backfill);
    let (broadcast, buffer): (_, buffered::Mailbox<ed25519::PublicKey, Block>) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: cfg.provider.clone(),
            strategy: Sequential,
        },
    );
    broadcast.start(blocks);

    let finalizations = immutable::Archive::init(
        context.child("finalizations"),
        archive_config(&p, "finalizations", &page_cache, Scheme::certificate_codec_config_unbounded()),
    )
    .await
    .map_err(|source| StartError::Archive { what: "finalizations", source })?;
    let finalized_blocks =
        immutable::Archive::init(context.child("blocks"), archive_config(&p, "blocks", &page_cache, ()))
            .await
            .map_err(|source| StartError::Archive { what: "blocks", source })?;

    let genesis = chain.genesis_block();
    let genesis_digest = genesis.digest();
    let (actor, mailbox, floor): (_, marshal::core::Mailbox<Scheme, Standard<Block>>, _) = marshal::core::Actor::init(
        context.child("marshal"),
        finalizations,
        finalized_blocks,
        marshal::Config {
            provider: schemes.clone(),
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
            partition_prefix: format!("{p}-marshal"),
            mailbox_size,
            view_retention: ViewDelta::new(10),
            prunable_items_per_section: NZU64!(10),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 16),
            key_write_buffer: NZUsize!(1 << 16),
            value_write_buffer: NZUsize!(1 << 16),
            block_codec_config: (),
            max_repair: NZUsize!(16),
            max_pending_acks: NZUsize!(64),
            strategy: Sequential,
        },
    )
    .await;
    let processed = floor.processed().map_or(0, |p| p.height().get());

    // State sync: this node serves its sync points and the epoch links to peers; the executor below fetches one
    // when it starts with nothing executed.
    let sync_points = format!("{p}-syncpoint");
    let sync_links = format!("{p}-synclinks");
    let points = crate::statesync::SyncPoints::load(&context, &sync_points).await;
    let learned = crate::statesync::links::read(&context, &sync_links).await;
    if !learned.is_empty() {
        match crate::epoch::ValidatorSets::from_links(&params, &chain.genesis().validators, &learned) {
            Ok(sets) => chain.learn(&sets, &learned),
            Err(e) => warn!(error = %e, "the kept epoch links do not verify; ignored"),
        }
    }
    let (answers_tx, answers_rx) = mpsc::unbounded();
    let server = crate::statesync::Server {
        chain: chain.clone(),
        marshal: mailbox.clone(),
        points: points.clone(),
        partition: sync_points.clone(),
        sender: sync_sender.clone(),
        blocker: cfg.blocker.clone(),
        answers: answers_tx,
    };
    context.child("state_sync").spawn(move |ctx| server.run(ctx, sync_receiver));
    let sync_peers: Vec<ed25519::PublicKey> = cfg.validators.iter().filter(|k| **k != me).cloned().collect();
    let (sync_blocker, sync_schemes, sync_signer) = (cfg.blocker.clone(), schemes.clone(), cfg.signer.clone());
    let state_sync = cfg.state_sync;

    // The executor: replays what this node executed before a restart from its own archive, then applies each new
    // finalized block in order and only then acknowledges it to marshal.
    let (finalized_tx, mut finalized_rx) = mpsc::unbounded::<(Digested<Block>, Exact)>();
    let exec_chain = chain.clone();
    let exec_mailbox = mailbox.clone();
    let snapshots = format!("{p}-snapshot");
    let snapshot_every = cfg.timing.snapshot_every.max(1);
    let checkpoint_entries = cfg.timing.checkpoint_entries.max(1);
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sync_point_store, sync_point_partition, sync_links_partition) = (points, sync_points, sync_links);
    context.child("executor").spawn(move |ctx| async move {
        // Start from the newest valid local snapshot, if any, then replay only the blocks after it (a chain with a
        // ledger store restored its checkpoint when it opened).
        if !exec_chain.has_store()
            && let Some(snap) = crate::snapshot::load(&ctx, &snapshots, &exec_chain).await
        {
            let h = snap.height;
            if exec_chain.restore(snap) {
                info!(height = h, "restored the chain state from a local snapshot");
            }
        }
        // Nothing executed yet on a chain with epochs: start from a peer's verified sync point, if one is offered.
        if state_sync && exec_chain.genesis().params.validators.epochs() && processed == 0 && exec_chain.height() == 0 {
            let client = crate::statesync::Client {
                ctx: &ctx,
                chain: &exec_chain,
                sender: sync_sender,
                blocker: sync_blocker,
                answers: answers_rx,
                peers: sync_peers,
            };
            if let Some(synced) = client.fetch().await {
                let h = synced.state.height;
                let e = exec_chain.genesis().params.validators.epoch_of(h) + 1;
                // Kept locally first (the snapshot a restart resumes from, the sync point peers may fetch, the links),
                // so that once marshal records the floor a restart never needs the blocks below it.
                // (A chain with a ledger store checkpoints the state there as it restores it.)
                if !exec_chain.has_store() {
                    let local = crate::snapshot::encode_with(&synced.state, !exec_chain.has_index());
                    crate::snapshot::write(&ctx, &snapshots, h, local).await;
                }
                sync_point_store.write(&ctx, &sync_point_partition, h, synced.bytes.clone()).await;
                crate::statesync::links::write(&ctx, &sync_links_partition, &synced.links).await;
                for epoch in e.saturating_sub(1)..=e + 1 {
                    if let Some(set) = synced.sets.get(epoch) {
                        sync_schemes.register(epoch, set, &sync_signer);
                    }
                }
                exec_chain.learn(&synced.sets, &synced.links);
                exec_chain.restore(synced.state);
                exec_chain.mark_synced(h);
                exec_mailbox.set_floor(synced.floor);
                info!(height = h, epoch = e, "state synced from a peer");
            }
        }
        let from = exec_chain.state().height + 1;
        for h in from..=processed {
            match exec_mailbox.get_block(Height::new(h)).await {
                Some(b) => {
                    if !exec_chain.execute(b.inner()) {
                        error!(height = h, "replayed block does not extend the executed chain");
                    }
                }
                None => {
                    error!(height = h, "finalized block missing from the local archive");
                    break;
                }
            }
        }
        if processed >= from {
            info!(from, to = processed, "replayed finalized blocks from the local archive");
        }
        exec_chain.mark_replayed();
        while let Some((block, ack)) = finalized_rx.next().await {
            let h = block.height().get();
            let executed = exec_chain.state().height;
            if h > executed {
                if exec_chain.execute(block.inner()) {
                    // Taken here (consistent with this height), written in the background so execution goes on; a
                    // snapshot due while the previous one is still being written is skipped.
                    if params.is_boundary(h) {
                        // A sync point: the state at the start of the next epoch, whose root that epoch's boundary
                        // block will commit.
                        let (points, part, bytes) = (
                            sync_point_store.clone(),
                            sync_point_partition.clone(),
                            crate::snapshot::encode_sync(&exec_chain.state()),
                        );
                        ctx.child("sync_point").spawn(move |c| async move { points.write(&c, &part, h, bytes).await });
                    }
                    let due = h % snapshot_every == 0 || exec_chain.resident_entries() >= checkpoint_entries;
                    if exec_chain.has_store() && due {
                        // Written here, before the next block: memory forgets the spilled entries only once the
                        // store holds them.
                        exec_chain.checkpoint();
                    } else if h % snapshot_every == 0 && !writing.swap(true, std::sync::atomic::Ordering::AcqRel) {
                        let (height, bytes) = crate::snapshot::take(&exec_chain);
                        let (part, done) = (snapshots.clone(), writing.clone());
                        ctx.child("snapshot").spawn(move |c| async move {
                            crate::snapshot::write(&c, &part, height, bytes).await;
                            done.store(false, std::sync::atomic::Ordering::Release);
                        });
                    }
                } else {
                    error!(height = h, executed, "finalized block does not extend the executed chain");
                }
            }
            ack.acknowledge();
        }
    });

    // Transaction gossip: local submissions go to every peer; peers' transactions enter the mempool after the same
    // checks as local ones.
    let (gossip_tx, mut gossip_rx) = mpsc::unbounded::<Bytes>();
    let (mut tx_sender, mut tx_receiver) = txs;
    let gossip_chain = chain.clone();
    context.child("tx_gossip_out").spawn(move |_| async move {
        while let Some(bytes) = gossip_rx.next().await {
            if gossip_chain.submit(bytes.clone()).is_ok() {
                let _ = tx_sender.send(Recipients::All, bytes, false);
            }
        }
    });
    let recv_chain = chain.clone();
    let mut blocker = cfg.blocker.clone();
    context.child("tx_gossip_in").spawn(move |_| async move {
        while let Ok((peer, msg)) = tx_receiver.recv().await {
            use crate::chain::SubmitError;
            match recv_chain.submit(Bytes::copy_from_slice(msg.as_ref())) {
                Ok(_) => {}
                // Garbage or forged transactions: the peer is not following the protocol.
                Err(e @ (SubmitError::Malformed(_) | SubmitError::Invalid(_))) => {
                    warn!(error = %e, "peer gossiped an invalid transaction; blocking it");
                    let _ = blocker.block(peer);
                }
                Err(e) => debug!(error = %e, "gossiped transaction not added"),
            }
        }
    });

    let inline = Inline::new(
        context.child("inline"),
        App::new(chain.clone(), cfg.timing.max_block_txs),
        mailbox.clone(),
        epocher.clone(),
    );
    actor.start(Finalized(finalized_tx), buffer, resolver);

    // Consensus traffic is multiplexed by epoch (sub-channel = epoch number), so each epoch's engine has channels of
    // its own; traffic for an epoch this validator has not entered yet lands in a backup queue and tells it that its
    // peers are ahead.
    let (votes_mux, votes_h, votes_backup) =
        Muxer::builder(context.child("votes_mux"), votes.0, votes.1).with_backup().build();
    votes_mux.start();
    let (certs_mux, certs_h, certs_backup) =
        Muxer::builder(context.child("certs_mux"), certs.0, certs.1).with_backup().build();
    certs_mux.start();
    let (resolver_mux, resolver_h) = Muxer::new(context.child("resolver_mux"), resolver_net.0, resolver_net.1);
    resolver_mux.start();
    let orchestrator = Orchestrator {
        chain: chain.clone(),
        schemes,
        signer: cfg.signer.clone(),
        genesis_set: cfg.validators.clone(),
        genesis_digest,
        inline,
        marshal: mailbox.clone(),
        blocker: cfg.blocker.clone(),
        timing: cfg.timing.clone(),
        partition: p,
        page_cache,
        mailbox_size,
        votes: votes_h,
        certs: certs_h,
        resolver: resolver_h,
    };
    let engine = context.child("orchestrator").spawn(move |ctx| orchestrator.run(ctx, votes_backup, certs_backup));
    Ok(Validator { chain, gossip: gossip_tx, marshal: mailbox, engine })
}
