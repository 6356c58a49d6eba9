//! State sync: a node that starts with no executed state on a chain with epochs takes the ledger from a peer at the
//! start of a recent epoch instead of replaying every block since genesis, then follows consensus from there.
//!
//! **What it trusts.** Only the genesis. The syncing node fetches the [`EpochLink`]s of epochs `0 ..= e` and checks
//! them from the genesis set ([`ValidatorSets::from_links`]): each is a boundary block finalized by the set of its
//! epoch, whose [`EpochChange`](crate::epoch::EpochChange) names the next set and commits the ledger's state root at
//! the start of the ending epoch. The link of epoch `e` thus commits the root after `last(e − 1)`, the sync point, and
//! the link of epoch `e − 1` carries that block's header and finalization. A snapshot is accepted only if its ledger
//! hashes to that root and its headers chain back from that header; the finalization becomes marshal's floor, so
//! blocks from there on are fetched and checked as on any node. A peer that serves anything else is blocked, and the
//! node tries the next one; with no usable offer it replays from genesis as before.
//!
//! **Protocol** (p2p channel [`channel::STATE_SYNC`](crate::validator::channel::STATE_SYNC)): [`Message`]s. A node
//! keeps the snapshot taken after each of the last few epochs' last blocks ([`encode_sync`](crate::snapshot::encode_sync),
//! on disk, partition `{prefix}-syncpoint`) and offers the newest one whose root the chain has committed (the epoch
//! after it has ended); peers fetch the links in pages and the snapshot in [`CHUNK`]-byte pieces, one request at a
//! time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commonware_consensus::marshal::{core::Mailbox, standard::Standard};
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::{ed25519, sha256};
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_runtime::{Blob as _, Clock, Storage};
use futures::StreamExt as _;
use futures::channel::mpsc;
use futures::future::{Either, select};
use tracing::{debug, info, warn};
use vouch_codec::{Canonical, DecodeError, Reader, Writer};
use vouch_ledger::ValidatorParams;

use crate::app::Scheme;
use crate::block::Block;
use crate::chain::{Chain, ChainState};
use crate::epoch::{self, EpochLink, LinkError, ValidatorSets};
use crate::snapshot::{self, SnapshotError};

/// Bytes of one snapshot chunk.
pub const CHUNK: usize = 512 << 10;
/// Largest snapshot a node fetches (the bytes are held until the whole snapshot is checked, so this bounds what a
/// lying peer can make a syncing node hold; an honest state with batched settlement is a few MB).
pub const MAX_SNAPSHOT: u64 = 1 << 30;
/// Most links in one message.
pub const LINKS_PER_MESSAGE: u64 = 64;
/// Sync points a node keeps (the newest committed one stays served while the next two epochs end).
const KEEP: usize = 3;
/// How long a starting node waits for offers when some peers have not answered.
const OFFER_WAIT: Duration = Duration::from_secs(3);
/// Interval between offer requests while waiting.
const ASK_EVERY: Duration = Duration::from_millis(500);
/// How long the syncing node waits for one answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// A state-sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Asks for the peer's newest sync point.
    OfferRequest,
    /// The peer's newest sync point: the snapshot after block `height` (an epoch's last), `len` bytes.
    Offer {
        /// The block the snapshot follows.
        height: u64,
        /// Its length.
        len: u64,
    },
    /// The peer has no sync point to offer.
    NoOffer,
    /// Asks for the links of the boundary blocks of epochs `from ..= to` (at most [`LINKS_PER_MESSAGE`]).
    LinksRequest {
        /// The first epoch.
        from: u64,
        /// The last epoch.
        to: u64,
    },
    /// Links of consecutive epochs from `from` (fewer than asked where the peer lacks some).
    Links {
        /// The epoch of the first link.
        from: u64,
        /// The links.
        links: Vec<EpochLink>,
    },
    /// Asks for chunk `index` of the sync point after `height`.
    ChunkRequest {
        /// The sync point.
        height: u64,
        /// The chunk.
        index: u32,
    },
    /// Chunk `index` of the sync point after `height`.
    Chunk {
        /// The sync point.
        height: u64,
        /// The chunk.
        index: u32,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The sync point after `height` is no longer served.
    Gone {
        /// The sync point.
        height: u64,
    },
}

/// A tag byte, then the fields.
impl Canonical for Message {
    const WHAT: &'static str = "state sync message";

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::OfferRequest => w.u8(0),
            Self::Offer { height, len } => {
                w.u8(1);
                w.u64(*height);
                w.u64(*len);
            }
            Self::NoOffer => w.u8(2),
            Self::LinksRequest { from, to } => {
                w.u8(3);
                w.u64(*from);
                w.u64(*to);
            }
            Self::Links { from, links } => {
                w.u8(4);
                w.u64(*from);
                w.len(links.len());
                links.iter().for_each(|l| w.bytes(&l.to_canonical()));
            }
            Self::ChunkRequest { height, index } => {
                w.u8(5);
                w.u64(*height);
                w.u32(*index);
            }
            Self::Chunk { height, index, bytes } => {
                w.u8(6);
                w.u64(*height);
                w.u32(*index);
                w.bytes(bytes);
            }
            Self::Gone { height } => {
                w.u8(7);
                w.u64(*height);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("state sync tag")? {
            0 => Self::OfferRequest,
            1 => Self::Offer { height: r.u64("height")?, len: r.u64("length")? },
            2 => Self::NoOffer,
            3 => Self::LinksRequest { from: r.u64("from")?, to: r.u64("to")? },
            4 => {
                let from = r.u64("from")?;
                let n = r.count("links")?;
                if n as u64 > LINKS_PER_MESSAGE {
                    return Err(DecodeError::InvalidValue { what: "link count", value: n as u64 });
                }
                let links = (0..n).map(|_| EpochLink::from_canonical(r.bytes("link")?)).collect::<Result<_, _>>()?;
                Self::Links { from, links }
            }
            5 => Self::ChunkRequest { height: r.u64("height")?, index: r.u32("index")? },
            6 => {
                let (height, index) = (r.u64("height")?, r.u32("index")?);
                let bytes = r.bytes("chunk")?;
                if bytes.len() > CHUNK {
                    return Err(DecodeError::InvalidValue { what: "chunk length", value: bytes.len() as u64 });
                }
                Self::Chunk { height, index, bytes: bytes.to_vec() }
            }
            7 => Self::Gone { height: r.u64("height")? },
            t => return Err(DecodeError::InvalidValue { what: "state sync tag", value: u64::from(t) }),
        })
    }
}

impl Message {
    /// Whether this asks something (answered by the server) rather than answers (read by a syncing node).
    pub fn is_request(&self) -> bool {
        matches!(self, Self::OfferRequest | Self::LinksRequest { .. } | Self::ChunkRequest { .. })
    }
}

/// Why a sync point from a peer is refused (or could not be fetched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The chain has a fixed validator set: nothing commits state roots.
    #[error("this chain's validator set is fixed: no state roots are committed")]
    NoEpochs,
    /// The offered height is not the last block of an epoch after the first.
    #[error("height {0} is not the last block of an epoch")]
    NotAnEpochEnd(u64),
    /// Fewer links than the sync point needs.
    #[error("{have} epoch links, {need} needed")]
    MissingLinks {
        /// Needed.
        need: u64,
        /// Received.
        have: u64,
    },
    /// A link does not follow from the genesis set.
    #[error("epoch links: {0}")]
    Link(#[from] LinkError),
    /// The snapshot is malformed or inconsistent in itself.
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The snapshot is of another height than offered.
    #[error("snapshot is at height {found}, offered at {expected}")]
    WrongHeight {
        /// Offered.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// The ledger does not hash to the root the chain committed for the sync point.
    #[error("the snapshot's ledger does not hash to the state root the chain committed at height {0}")]
    RootMismatch(u64),
    /// The tip header is not the finalized block of the sync point.
    #[error("the snapshot's tip header is not the finalized block at height {0}")]
    HeaderMismatch(u64),
    /// A header does not chain to the one before.
    #[error("the snapshot's header at height {0} does not chain to the one before")]
    BrokenHeaders(u64),
    /// A chunk of the wrong length, or a message out of protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer stopped serving the sync point.
    #[error("the peer no longer serves the sync point")]
    Gone,
    /// The peer did not answer in time.
    #[error("no answer in time")]
    Timeout,
}

impl SyncError {
    /// Whether the peer broke the protocol or served data that fails verification (rather than being slow or
    /// having moved on).
    pub fn is_fault(&self) -> bool {
        !matches!(self, Self::Gone | Self::Timeout)
    }
}

/// A verified sync point.
pub struct Synced {
    /// The chain state after the sync point (no transaction records or block events; only the tip's root).
    pub state: ChainState,
    /// The validator sets of epochs `0 ..= e + 1`, `e` the epoch the sync point starts.
    pub sets: ValidatorSets,
    /// The links that proved them.
    pub links: Vec<EpochLink>,
    /// The finalization of the sync point's block (by the set of its epoch): marshal's floor.
    pub floor: Finalization<Scheme, sha256::Digest>,
    /// The snapshot bytes, verified (the node serves them on).
    pub bytes: Vec<u8>,
}

/// Checks a sync point fetched from a peer: `links` from the genesis set through the epoch the sync point starts,
/// the snapshot's ledger against the state root they commit, its headers against the finalized block.
pub fn verify(chain: &Chain, links: &[EpochLink], height: u64, bytes: Vec<u8>) -> Result<Synced, SyncError> {
    let params = &chain.genesis().params.validators;
    if !params.epochs() {
        return Err(SyncError::NoEpochs);
    }
    if !params.is_boundary(height) {
        return Err(SyncError::NotAnEpochEnd(height));
    }
    // The sync point starts epoch `e`; the change in `e`'s boundary block commits its root.
    let e = params.epoch_of(height) + 1;
    if (links.len() as u64) < e + 1 {
        return Err(SyncError::MissingLinks { need: e + 1, have: links.len() as u64 });
    }
    let links = &links[..=e as usize];
    let sets = ValidatorSets::from_links(params, &chain.genesis().validators, links)?;
    let root = *sets.state_roots().get(&height).ok_or(SyncError::NotAnEpochEnd(height))?;
    let boundary = &links[(e - 1) as usize];
    let mut state = snapshot::decode(&bytes, chain)?;
    if state.height != height {
        return Err(SyncError::WrongHeight { expected: height, found: state.height });
    }
    if state.ledger.root().0 != root {
        return Err(SyncError::RootMismatch(height));
    }
    if state.tip().digest() != boundary.header.digest() {
        return Err(SyncError::HeaderMismatch(height));
    }
    let headers: Vec<_> = state.headers.values().collect();
    for pair in headers.windows(2) {
        if pair[1].height == pair[0].height + 1 && pair[1].parent != pair[0].digest() {
            return Err(SyncError::BrokenHeaders(pair[1].height));
        }
    }
    let set = sets.get(e - 1).ok_or(SyncError::MissingLinks { need: e + 1, have: links.len() as u64 })?;
    let floor = epoch::decode_finalization(&boundary.certificate, &set)
        .map_err(|e| SyncError::Link(LinkError::BadCertificate(e)))?;
    // Only what the chain authenticated stays.
    state.txs.clear();
    state.block_events.clear();
    state.roots.retain(|h, _| *h == height);
    Ok(Synced { state, sets, links: links.to_vec(), floor, bytes })
}

/// The sync points a node keeps on disk: their heights and lengths.
#[derive(Debug, Clone, Default)]
pub struct SyncPoints(Arc<Mutex<BTreeMap<u64, u64>>>);

impl SyncPoints {
    /// The sync points stored in `partition`.
    pub async fn load<E: Storage>(ctx: &E, partition: &str) -> Self {
        let mut points = BTreeMap::new();
        for name in ctx.scan(partition).await.unwrap_or_default() {
            if let Some(h) = snapshot::blob_height(&name)
                && let Ok((_, len)) = ctx.open(partition, &name).await
            {
                points.insert(h, len);
            }
        }
        Self(Arc::new(Mutex::new(points)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the sync point after `height` (synced), and forgets all but the newest few.
    pub async fn write<E: Storage>(&self, ctx: &E, partition: &str, height: u64, bytes: Vec<u8>) {
        let len = bytes.len() as u64;
        if snapshot::store(ctx, partition, height, bytes, KEEP).await {
            let mut points = self.lock();
            points.insert(height, len);
            while points.len() > KEEP {
                points.pop_first();
            }
        }
    }

    /// The newest sync point whose root the chain has committed (the epoch it starts has ended by `executed`).
    fn offer(&self, params: &ValidatorParams, executed: u64) -> Option<(u64, u64)> {
        self.lock().iter().rev().find(|(h, _)| h.saturating_add(params.epoch_length) <= executed).map(|(h, l)| (*h, *l))
    }

    fn len(&self, height: u64) -> Option<u64> {
        self.lock().get(&height).copied()
    }
}

/// Answers peers' requests and hands answers to a syncing node (while one listens on `answers`).
pub(crate) struct Server<S, B> {
    pub chain: crate::chain::ChainHandle,
    pub marshal: Mailbox<Scheme, Standard<Block>>,
    pub points: SyncPoints,
    pub partition: String,
    pub sender: S,
    pub blocker: B,
    pub answers: mpsc::UnboundedSender<(ed25519::PublicKey, Message)>,
}

impl<S, B> Server<S, B>
where
    S: Sender<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    /// Runs until the p2p layer stops.
    pub async fn run<E: Storage, R: Receiver<PublicKey = ed25519::PublicKey>>(mut self, ctx: E, mut receiver: R) {
        while let Ok((peer, msg)) = receiver.recv().await {
            let msg = match Message::from_canonical(msg.as_ref()) {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "peer sent a malformed state-sync message; blocking it");
                    let _ = self.blocker.block(peer);
                    continue;
                }
            };
            if !msg.is_request() {
                // Nobody listening (no sync under way): dropped.
                let _ = self.answers.unbounded_send((peer, msg));
                continue;
            }
            if let Some(answer) = self.answer(&ctx, msg).await {
                let _ = self.sender.send(Recipients::One(peer), answer.to_canonical(), false);
            }
        }
    }

    async fn answer<E: Storage>(&self, ctx: &E, msg: Message) -> Option<Message> {
        let params = &self.chain.genesis().params.validators;
        match msg {
            Message::OfferRequest => Some(match self.points.offer(params, self.chain.height()) {
                Some((height, len)) => Message::Offer { height, len },
                None => Message::NoOffer,
            }),
            Message::LinksRequest { from, to } => {
                let executed = params.epoch_of(self.chain.height() + 1);
                let to = to.min(from.saturating_add(LINKS_PER_MESSAGE - 1)).min(executed.saturating_sub(1));
                let mut links = vec![];
                for e in from..=to {
                    match epoch::link_for(&self.chain, &self.marshal, e).await {
                        Some(l) => links.push(l),
                        None => break,
                    }
                }
                Some(Message::Links { from, links })
            }
            Message::ChunkRequest { height, index } => {
                let Some(len) = self.points.len(height) else { return Some(Message::Gone { height }) };
                let offset = u64::from(index) * CHUNK as u64;
                if offset >= len {
                    return Some(Message::Gone { height });
                }
                let n = (len - offset).min(CHUNK as u64) as usize;
                let read = async {
                    let (blob, _) = ctx.open(&self.partition, &snapshot::blob_name(height)).await?;
                    let buf = blob.read_at(offset, n, Default::default()).await?;
                    Ok::<_, commonware_runtime::Error>(buf.coalesce().as_ref().to_vec())
                }
                .await;
                Some(match read {
                    Ok(bytes) => Message::Chunk { height, index, bytes },
                    Err(e) => {
                        debug!(height, error = %e, "sync point unreadable");
                        Message::Gone { height }
                    }
                })
            }
            _ => None,
        }
    }
}

/// The next answer from a peer before `wait` ends.
async fn next_answer<E: Clock>(
    ctx: &E,
    answers: &mut mpsc::UnboundedReceiver<(ed25519::PublicKey, Message)>,
    wait: Duration,
) -> Option<(ed25519::PublicKey, Message)> {
    match select(answers.next(), Box::pin(ctx.sleep(wait))).await {
        Either::Left((m, _)) => m,
        Either::Right(_) => None,
    }
}

/// The syncing side: asks the peers for offers and fetches and checks the best one.
pub(crate) struct Client<'a, E, S, B> {
    pub ctx: &'a E,
    pub chain: &'a Chain,
    pub sender: S,
    pub blocker: B,
    pub answers: mpsc::UnboundedReceiver<(ed25519::PublicKey, Message)>,
    /// The peers whose answers end the wait for offers early (the genesis validators but this node).
    pub peers: Vec<ed25519::PublicKey>,
}

impl<E, S, B> Client<'_, E, S, B>
where
    E: Clock,
    S: Sender<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    /// A verified sync point from a peer, or `None` if no peer offers one that checks out.
    pub async fn fetch(mut self) -> Option<Synced> {
        let params = self.chain.genesis().params.validators.clone();
        let offers = self.offers(&params).await;
        let mut ranked: Vec<(ed25519::PublicKey, u64, u64)> =
            offers.into_iter().map(|(peer, (height, len))| (peer, height, len)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (peer, height, len) in ranked {
            info!(%peer, height, bytes = len, "state sync: fetching a sync point");
            match self.fetch_from(&params, &peer, height, len).await {
                Ok(synced) => return Some(synced),
                Err(e) => {
                    warn!(%peer, height, error = %e, "state sync from this peer failed");
                    if e.is_fault() {
                        let _ = self.blocker.block(peer);
                    }
                }
            }
        }
        None
    }

    /// Every peer's offer, asked until each of `peers` answered or [`OFFER_WAIT`] passed.
    async fn offers(&mut self, params: &ValidatorParams) -> BTreeMap<ed25519::PublicKey, (u64, u64)> {
        let (mut offers, mut answered) = (BTreeMap::new(), BTreeSet::new());
        let start = self.ctx.current();
        let elapsed = |ctx: &E| ctx.current().duration_since(start).unwrap_or_default();
        'ask: while elapsed(self.ctx) < OFFER_WAIT {
            let _ = self.sender.send(Recipients::All, Message::OfferRequest.to_canonical(), false);
            let round = elapsed(self.ctx);
            while let Some(left) = ASK_EVERY.checked_sub(elapsed(self.ctx) - round) {
                let Some((peer, msg)) = next_answer(self.ctx, &mut self.answers, left).await else { break };
                match msg {
                    Message::Offer { height, len }
                        if params.is_boundary(height) && (1..=MAX_SNAPSHOT).contains(&len) =>
                    {
                        offers.insert(peer.clone(), (height, len));
                        answered.insert(peer);
                    }
                    Message::Offer { .. } | Message::NoOffer => {
                        answered.insert(peer);
                    }
                    _ => {}
                }
                if self.peers.iter().all(|p| answered.contains(p)) {
                    break 'ask;
                }
            }
        }
        offers
    }

    /// The answer of `peer` that `want` accepts, within [`ANSWER_WAIT`].
    async fn ask<T>(
        &mut self,
        peer: &ed25519::PublicKey,
        request: Message,
        mut want: impl FnMut(Message) -> Option<Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        if self.sender.send(Recipients::One(peer.clone()), request.to_canonical(), false).is_empty() {
            return Err(SyncError::Timeout);
        }
        let start = self.ctx.current();
        loop {
            let waited = self.ctx.current().duration_since(start).unwrap_or_default();
            let left = ANSWER_WAIT.checked_sub(waited).ok_or(SyncError::Timeout)?;
            let (from, msg) = next_answer(self.ctx, &mut self.answers, left).await.ok_or(SyncError::Timeout)?;
            if from == *peer
                && let Some(r) = want(msg)
            {
                return r;
            }
        }
    }

    async fn fetch_from(
        &mut self,
        params: &ValidatorParams,
        peer: &ed25519::PublicKey,
        height: u64,
        len: u64,
    ) -> Result<Synced, SyncError> {
        let e = params.epoch_of(height) + 1;
        // Each page is checked as it arrives (against the set the links before it prove), so a peer cannot make
        // this node hold links it could not verify, however high the height it offered.
        let mut sets = ValidatorSets::from_links(params, &self.chain.genesis().validators, &[])?;
        let mut links: Vec<EpochLink> = vec![];
        while (links.len() as u64) <= e {
            let from = links.len() as u64;
            let to = e.min(from + LINKS_PER_MESSAGE - 1);
            let page = self
                .ask(peer, Message::LinksRequest { from, to }, |m| match m {
                    Message::Links { from: f, links } if f == from => Some(Ok(links)),
                    _ => None,
                })
                .await?;
            if page.is_empty() || page.len() as u64 > to - from + 1 {
                return Err(SyncError::Protocol(format!("{} links for epochs {from}..={to}", page.len())));
            }
            for link in &page {
                sets.follow(link)?;
            }
            links.extend(page);
        }
        let chunks = len.div_ceil(CHUNK as u64);
        // Grows with the bytes received, never sized from the offered length.
        let mut bytes = Vec::new();
        for index in 0..chunks {
            let index = u32::try_from(index).map_err(|_| SyncError::Protocol("too many chunks".into()))?;
            let expected = (len - u64::from(index) * CHUNK as u64).min(CHUNK as u64) as usize;
            let chunk = self
                .ask(peer, Message::ChunkRequest { height, index }, |m| match m {
                    Message::Chunk { height: h, index: i, bytes } if h == height && i == index => Some(Ok(bytes)),
                    Message::Gone { height: h } if h == height => Some(Err(SyncError::Gone)),
                    _ => None,
                })
                .await?;
            if chunk.len() != expected {
                return Err(SyncError::Protocol(format!("chunk {index}: {} bytes, {expected} expected", chunk.len())));
            }
            bytes.extend_from_slice(&chunk);
        }
        verify(self.chain, &links, height, bytes)
    }
}

/// Links learned in a state sync, kept on disk (partition `{prefix}-synclinks`) so a restarted node still serves and
/// checks them.
pub(crate) mod links {
    use commonware_runtime::{Blob as _, Storage};
    use vouch_codec::{Canonical as _, Limits, Reader, Writer};

    use crate::epoch::EpochLink;

    const NAME: &[u8] = b"links";

    /// Writes `links` (synced).
    pub async fn write<E: Storage>(ctx: &E, partition: &str, links: &[EpochLink]) {
        let mut w = Writer::new();
        w.len(links.len());
        links.iter().for_each(|l| w.bytes(&l.to_canonical()));
        let bytes = w.finish();
        let written = async {
            let (blob, _) = ctx.open(partition, NAME).await?;
            blob.resize(0).await?;
            blob.write_at(0, bytes, Default::default()).await?;
            blob.sync().await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not keep the state sync's epoch links");
        }
    }

    /// The links kept, if any decode.
    pub async fn read<E: Storage>(ctx: &E, partition: &str) -> Vec<EpochLink> {
        let bytes = async {
            let (blob, len) = ctx.open(partition, NAME).await?;
            let buf = blob.read_at(0, len as usize, Default::default()).await?;
            Ok::<_, commonware_runtime::Error>(buf.coalesce().as_ref().to_vec())
        }
        .await
        .unwrap_or_default();
        let limits = Limits { max_items: u64::from(u32::MAX), ..Limits::default() };
        let mut r = Reader::with_limits(&bytes, limits);
        let Ok(n) = r.count("links") else { return vec![] };
        (0..n).map_while(|_| EpochLink::from_canonical(r.bytes("link").ok()?).ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_malformed_ones_are_refused_with_their_reason() {
        let all = [
            Message::OfferRequest,
            Message::Offer { height: 59, len: 12_345 },
            Message::NoOffer,
            Message::LinksRequest { from: 0, to: 63 },
            Message::Links { from: 3, links: vec![] },
            Message::ChunkRequest { height: 59, index: 2 },
            Message::Chunk { height: 59, index: 2, bytes: vec![7; CHUNK] },
            Message::Gone { height: 59 },
        ];
        for m in all {
            assert_eq!(Message::from_canonical(&m.to_canonical()).unwrap(), m);
        }
        assert_eq!(
            Message::from_canonical(&[9]).unwrap_err(),
            DecodeError::InvalidValue { what: "state sync tag", value: 9 }
        );
        let mut w = Writer::new();
        w.u8(4);
        w.u64(0);
        w.len(LINKS_PER_MESSAGE as usize + 1);
        assert_eq!(
            Message::from_canonical(&w.finish()).unwrap_err(),
            DecodeError::InvalidValue { what: "link count", value: LINKS_PER_MESSAGE + 1 }
        );
        let long = Message::Chunk { height: 1, index: 0, bytes: vec![0; CHUNK + 1] }.to_canonical();
        assert_eq!(
            Message::from_canonical(&long).unwrap_err(),
            DecodeError::InvalidValue { what: "chunk length", value: CHUNK as u64 + 1 }
        );
        // A request with bytes after it.
        let mut trailing = Message::OfferRequest.to_canonical();
        trailing.push(0);
        assert!(Message::from_canonical(&trailing).is_err());
    }
}
