//! Runs one simplex engine per epoch. The engine of epoch `e` starts once the executor has applied the last block of
//! epoch `e − 1` (so the ledger has fixed set(e) and set(e + 1), which the engine's application reads to propose
//! and check the next boundary block), with that block as its genesis; the engine of the epoch before is stopped.
//! A validator outside the set runs its epoch's engine as an observer (a verifier scheme: it collects certificates
//! and does not vote). Consensus traffic of an epoch not entered yet means the peers are ahead: the orchestrator
//! asks marshal for the finalization of its epoch's boundary block, which backfill then follows.

use std::num::NonZeroUsize;
use std::time::Duration;

use commonware_consensus::marshal::{core::Mailbox, standard::Inline, standard::Standard};
use commonware_consensus::simplex::{self, elector::RoundRobin};
use commonware_consensus::types::{Epoch, FixedEpocher, Height, ViewDelta};
use commonware_cryptography::{Digestible as _, Sha256, ed25519, sha256};
use commonware_p2p::utils::mux::{MuxHandle, SubReceiver, SubSender};
use commonware_p2p::{Blocker, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, IoBuf, Metrics, Spawner, Storage};
use commonware_utils::ordered::Set;
use commonware_utils::vec::NonEmptyVec;
use commonware_utils::{NZDuration, NZUsize};
use futures::future::{Either, select};
use tracing::{info, warn};

use crate::app::{App, Scheme};
use crate::block::Block;
use crate::chain::ChainHandle;
use crate::epoch::{EpochSchemes, keys};
use crate::validator::Timing;

/// What the orchestrator woke up for.
enum Woke {
    /// A block was executed (false: the chain is gone).
    Executed(bool),
    /// Traffic of an epoch with no open sub-channel (None: the p2p layer is gone).
    Ahead(Option<Box<(u64, ed25519::PublicKey)>>),
    /// Nothing for a while.
    Quiet,
}

/// Traffic for a sub-channel (epoch) nobody registered.
pub(crate) type Backup = tokio::sync::mpsc::Receiver<(u64, (ed25519::PublicKey, IoBuf))>;

/// What the orchestrator needs to start engines.
pub(crate) struct Orchestrator<E, S, B>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey> + Sync,
{
    pub chain: ChainHandle,
    pub schemes: EpochSchemes,
    pub signer: ed25519::PrivateKey,
    pub genesis_set: Set<ed25519::PublicKey>,
    pub genesis_digest: sha256::Digest,
    pub inline: Inline<E, Scheme, App, Block, FixedEpocher>,
    pub marshal: Mailbox<Scheme, Standard<Block>>,
    pub blocker: B,
    pub timing: Timing,
    pub partition: String,
    pub page_cache: CacheRef,
    pub mailbox_size: NonZeroUsize,
    pub votes: MuxHandle<S>,
    pub certs: MuxHandle<S>,
    pub resolver: MuxHandle<S>,
}

/// Least time between two requests for the same boundary finalization.
const HINT_EVERY: Duration = Duration::from_millis(500);

/// Without an executed block for this long, the validator asks its set's members for its epoch's boundary
/// finalization (its peers may have moved on to an epoch whose traffic it queues without reading).
const STALL: Duration = Duration::from_secs(2);

/// One sub-channel pair.
type Pair<S> = (SubSender<S>, SubReceiver<ed25519::PublicKey>);

/// The sub-channels of one epoch: votes, certificates, certificate fetches.
struct Opened<S: Sender<PublicKey = ed25519::PublicKey>> {
    epoch: u64,
    votes: Pair<S>,
    certs: Pair<S>,
    resolver: Pair<S>,
}

impl<E, S, B> Orchestrator<E, S, B>
where
    E: Spawner + Metrics + Clock + Storage + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey> + Sync,
{
    /// The set of `epoch` as this validator knows it: the genesis set for epoch 0 (and forever on a chain without
    /// epochs), otherwise the executed ledger's.
    fn set(&self, epoch: u64) -> Option<Set<ed25519::PublicKey>> {
        if epoch == 0 || !self.chain.genesis().params.validators.epochs() {
            return Some(self.genesis_set.clone());
        }
        keys(self.chain.state().ledger.validator_set(epoch)?)
    }

    /// The consensus journal's storage partition of `epoch`'s engine (epoch 0 keeps the name of a fixed-set chain's).
    fn partition_of(&self, epoch: u64) -> String {
        match epoch {
            0 => format!("{}-simplex", self.partition),
            e => format!("{}-simplex-{e}", self.partition),
        }
    }

    /// Digest of the block the engine of `epoch` starts from: the last block of the epoch before.
    async fn floor(&self, epoch: u64) -> Option<sha256::Digest> {
        if epoch == 0 {
            return Some(self.genesis_digest);
        }
        let h = self.chain.genesis().params.validators.last_height(epoch - 1);
        if let Some(header) = self.chain.recent_header(h) {
            return Some(sha256::Digest::from(header.digest()));
        }
        self.marshal.get_block(Height::new(h)).await.map(|b| b.inner().digest())
    }

    /// Runs until the validator stops: enters each epoch as the executor reaches it.
    pub async fn run(mut self, ctx: E, mut votes_backup: Backup, mut certs_backup: Backup) {
        let params = self.chain.genesis().params.validators.clone();
        let mut executed = self.chain.subscribe();
        // The executor first replays this validator's own archive (after a restart): enter the epoch it ends in.
        while !self.chain.is_replayed() {
            if executed.changed().await.is_err() {
                return;
            }
        }
        let mut active: Option<(u64, Handle<()>)> = None;
        // The next epoch's sub-channels, opened as soon as an epoch starts: what faster peers send for it queues there
        // instead of being lost before this validator enters it.
        let mut next: Option<Opened<S>> = None;
        let mut last_hint: Option<(u64, std::time::SystemTime)> = None;
        let mut progress = (self.chain.height(), ctx.current());
        loop {
            let target = params.epoch_of(self.chain.height() + 1);
            if active.as_ref().map(|a| a.0) != Some(target) {
                let opened = match next.take() {
                    Some(o) if o.epoch == target => Some(o),
                    stale => {
                        drop(stale);
                        self.open(target).await
                    }
                };
                match self.enter(&ctx, target, opened).await {
                    Some(handle) => {
                        if let Some((old, h)) = active.replace((target, handle)) {
                            h.abort();
                            info!(from = old, to = target, "entered a new epoch");
                        }
                        if params.epochs() {
                            next = self.open(target + 1).await;
                        }
                        // The journal of an engine two epochs back is no longer needed (a restart resumes the
                        // current epoch's); a failure only leaves files behind. A node that caught up or synced past
                        // that epoch never ran its engine.
                        if target >= 2
                            && let Err(e) = ctx.remove(&self.partition_of(target - 2), None).await
                            && !matches!(e, commonware_runtime::Error::PartitionMissing(_))
                        {
                            warn!(epoch = target - 2, error = %e, "could not remove an old consensus journal");
                        }
                    }
                    None => warn!(epoch = target, "cannot enter the epoch yet (its set or floor is unknown)"),
                }
            }
            // Wait for the next executed block, for traffic of an epoch ahead of ours, or for a stall.
            let woke = {
                let changed = Box::pin(executed.changed());
                let backup = Box::pin(async {
                    match select(Box::pin(votes_backup.recv()), Box::pin(certs_backup.recv())).await {
                        Either::Left((m, _)) | Either::Right((m, _)) => m,
                    }
                });
                let stall = Box::pin(ctx.sleep(STALL));
                match select(select(changed, backup), stall).await {
                    Either::Left((Either::Left((r, _)), _)) => Woke::Executed(r.is_ok()),
                    Either::Left((Either::Right((m, _)), _)) => {
                        Woke::Ahead(m.map(|(sub, (peer, _))| Box::new((sub, peer))))
                    }
                    Either::Right(_) => Woke::Quiet,
                }
            };
            let ours = active.as_ref().map_or(target, |a| a.0);
            let peers = match woke {
                Woke::Executed(true) => None,
                Woke::Executed(false) | Woke::Ahead(None) => return,
                Woke::Ahead(Some(m)) => (params.epochs() && m.0 > ours).then(|| vec![m.1]),
                Woke::Quiet => {
                    let now = ctx.current();
                    let height = self.chain.height();
                    let stalled = height == progress.0 && now.duration_since(progress.1).is_ok_and(|d| d >= STALL);
                    if height != progress.0 {
                        progress = (height, now);
                    }
                    let me = commonware_cryptography::Signer::public_key(&self.signer);
                    (params.epochs() && stalled)
                        .then(|| self.set(ours).map(|s| s.iter().filter(|k| **k != me).cloned().collect()))
                        .flatten()
                }
            };
            let height = self.chain.height();
            if height != progress.0 {
                progress = (height, ctx.current());
            }
            if let Some(peers) = peers.filter(|p: &Vec<ed25519::PublicKey>| !p.is_empty()) {
                let now = ctx.current();
                let due = match last_hint {
                    Some((e, at)) if e == ours => now.duration_since(at).map_or(true, |d| d >= HINT_EVERY),
                    _ => true,
                };
                if due {
                    last_hint = Some((ours, now));
                    let boundary = Height::new(params.last_height(ours));
                    self.marshal.hint_finalized(boundary, NonEmptyVec::from_unchecked(peers));
                }
            }
        }
    }

    /// Opens `epoch`'s sub-channels (`None` if they are open already).
    async fn open(&mut self, epoch: u64) -> Option<Opened<S>> {
        let votes = self.votes.register(epoch).await.ok()?;
        let certs = self.certs.register(epoch).await.ok()?;
        let resolver = self.resolver.register(epoch).await.ok()?;
        Some(Opened { epoch, votes, certs, resolver })
    }

    /// Registers `epoch`'s scheme (and the next one's, when fixed) and starts its engine on `opened`, its
    /// sub-channels.
    async fn enter(&mut self, ctx: &E, epoch: u64, opened: Option<Opened<S>>) -> Option<Handle<()>> {
        let set = self.set(epoch)?;
        let floor = self.floor(epoch).await?;
        let Opened { votes, certs, resolver, .. } = opened?;
        let scheme = self.schemes.register(epoch, set.clone(), &self.signer);
        if let Some(next) = self.set(epoch + 1) {
            self.schemes.register(epoch + 1, next, &self.signer);
        }
        let member = set.iter().any(|k| *k == commonware_cryptography::Signer::public_key(&self.signer));
        info!(epoch, validators = set.len(), member, "starting the epoch's consensus engine");
        let t = &self.timing;
        let partition = if epoch == 0 {
            format!("{}-simplex", self.partition)
        } else {
            format!("{}-simplex-{epoch}", self.partition)
        };
        let engine = simplex::Engine::new(
            ctx.child("simplex").with_attribute("epoch", epoch),
            simplex::Config {
                scheme: (*scheme).clone(),
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: self.inline.clone(),
                relay: self.inline.clone(),
                reporter: self.inline.clone(),
                strategy: Sequential,
                partition,
                mailbox_size: self.mailbox_size,
                epoch: Epoch::new(epoch),
                floor: simplex::Floor::Genesis(floor),
                replay_buffer: NZUsize!(1 << 20),
                write_buffer: NZUsize!(1 << 20),
                page_cache: self.page_cache.clone(),
                leader_timeout: t.leader_timeout,
                certification_timeout: t.certification_timeout,
                timeout_retry: t.timeout_retry,
                view_retention: ViewDelta::new(10),
                skip: simplex::SkipPolicy::Enabled {
                    timeout: t.timeout_retry + t.certification_timeout,
                    budget: simplex::SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                forward: simplex::ForwardPolicy::Disabled,
                track_historical_votes: false,
            },
        );
        Some(engine.start(votes, certs, resolver))
    }
}
