//! Local snapshots of a validator's executed chain, so a restart replays only the blocks after the latest snapshot
//! instead of the whole chain.
//!
//! Every `Timing::snapshot_every` executed blocks the executor takes the [`ChainState`] (ledger state, headers,
//! roots, block events, and the transaction records unless the chain has an on-disk index) and a background task
//! writes it to a blob of the runtime's storage (partition `{prefix}-snapshot`, one
//! blob per height, the two newest kept), synced before older ones are removed. A snapshot is
//! `VOUCHSNAP1 ‖ body ‖ blake3(body)`; at start the newest one that decodes, matches its checksum, is of this chain
//! and whose recomputed ledger root equals the root recorded for its height is restored, and any other is skipped
//! with a warning (the node then replays from an older snapshot or from genesis: nothing is lost, blocks stay in
//! marshal's archive).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use commonware_runtime::{Blob, Storage};
use tracing::{info, warn};
use vouch_codec::{Canonical, DecodeError, Digest, Limits, Reader, Writer};
use vouch_ledger::{Backing, Event, State};

use crate::block::Header;
use crate::chain::{Chain, ChainState};
use crate::record::TxRecord;

/// Version 4: the accounts and models tables carry a marker, inline or on the node's disk (older snapshots are
/// skipped, and the chain replays from the archive).
const MAGIC: &[u8; 10] = b"VOUCHSNAP4";
/// Snapshots kept.
const KEEP: usize = 2;

/// The snapshot bytes of an executed chain (with `txs`, the in-memory transaction records too: a chain with an
/// on-disk index leaves them out, since the index has them all).
pub fn encode_with(st: &ChainState, txs: bool) -> Vec<u8> {
    encode_parts(st, txs, false, false)
}

/// [`encode_with`] for a checkpoint of a chain with a [`crate::store::StateStore`]: the ledger tables on that disk
/// are only marked as such.
pub fn encode_local(st: &ChainState, txs: bool) -> Vec<u8> {
    encode_parts(st, txs, false, true)
}

/// Headers a state-sync snapshot carries besides the genesis: the recent ones, for the proposer's and the
/// attestations' freshness (older ones are below the syncing node's floor).
pub const SYNC_HEADERS: u64 = 256;

/// The snapshot a node serves to peers that state-sync from it: the ledger, the genesis and the last
/// [`SYNC_HEADERS`] headers, and only the tip's root (nothing a peer could not check: the ledger against the root the
/// chain committed to, the headers against the finalized tip they chain back from). No transaction records or
/// block events: the syncing node starts its history at the snapshot.
pub fn encode_sync(st: &ChainState) -> Vec<u8> {
    encode_parts(st, false, true, false)
}

fn encode_parts(st: &ChainState, txs: bool, sync: bool, local: bool) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(st.height);
    if local {
        st.ledger.encode_local(&mut w);
    } else {
        st.ledger.encode(&mut w);
    }
    let keep = |h: u64| !sync || h == 0 || h + SYNC_HEADERS > st.height;
    let headers: Vec<&Header> = st.headers.values().filter(|h| keep(h.height)).collect();
    w.len(headers.len());
    for h in headers {
        w.raw(&h.parent);
        w.u64(h.height);
        w.u64(h.timestamp_ms);
        w.raw(&h.tx_root);
    }
    let roots: Vec<(&u64, &Digest)> = st.roots.iter().filter(|(h, _)| !sync || **h == st.height).collect();
    w.len(roots.len());
    for (h, root) in roots {
        w.u64(*h);
        w.raw(&root.0);
    }
    // Sorted, so equal states give equal bytes.
    let mut txs: Vec<(&Digest, &TxRecord)> = if txs { st.txs.iter().collect() } else { vec![] };
    txs.sort_by_key(|(id, _)| **id);
    w.len(txs.len());
    for (id, rec) in txs {
        w.raw(&id.0);
        rec.encode(&mut w);
    }
    let events: Vec<_> = if sync { vec![] } else { st.block_events.iter().collect() };
    w.len(events.len());
    for (h, evs) in events {
        w.u64(*h);
        Event::encode_list(&mut w, evs);
    }
    let body = w.finish();
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out
}

/// [`encode_with`], transaction records included.
pub fn encode(st: &ChainState) -> Vec<u8> {
    encode_with(st, true)
}

/// Why snapshot bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Too short or without the magic.
    #[error("not a snapshot (bad magic or too short)")]
    NotASnapshot,
    /// The body does not hash to the stored checksum.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// The body does not decode.
    #[error("snapshot body: {0}")]
    Decode(#[from] DecodeError),
    /// The headers are empty, or do not run from this chain's genesis to the snapshot height.
    #[error("headers do not run from this chain's genesis to the snapshot height")]
    ForeignHeaders,
    /// The ledger does not hash to the root recorded for its height.
    #[error("the ledger does not hash to the root recorded for its height")]
    RootMismatch,
}

/// Decodes and checks snapshot bytes for `chain` (every ledger table inline, in memory).
pub fn decode(bytes: &[u8], chain: &Chain) -> Result<ChainState, SnapshotError> {
    decode_with(bytes, chain, None)
}

/// Decodes and checks a checkpoint of `chain` whose spilled ledger tables are on `disk`.
pub fn decode_local(bytes: &[u8], chain: &Chain, disk: &Arc<dyn Backing>) -> Result<ChainState, SnapshotError> {
    decode_with(bytes, chain, Some(disk))
}

fn decode_with(bytes: &[u8], chain: &Chain, disk: Option<&Arc<dyn Backing>>) -> Result<ChainState, SnapshotError> {
    if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let (body, sum) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(SnapshotError::ChecksumMismatch);
    }
    let limits = Limits { max_items: u64::from(u32::MAX), ..Limits::default() };
    let mut r = Reader::with_limits(body, limits);
    let st = read(&mut r, chain, disk)?;
    r.finish("snapshot")?;
    let tip = st.headers.values().next_back().ok_or(SnapshotError::ForeignHeaders)?;
    if tip.height != st.height
        || st.headers.get(&0).is_none_or(|g| g.digest() != chain.genesis_block().header().digest())
    {
        return Err(SnapshotError::ForeignHeaders);
    }
    if st.roots.get(&st.height) != Some(&st.ledger.root()) {
        return Err(SnapshotError::RootMismatch);
    }
    Ok(st)
}

fn read(r: &mut Reader<'_>, chain: &Chain, disk: Option<&Arc<dyn Backing>>) -> Result<ChainState, DecodeError> {
    let height = r.u64("height")?;
    let base = chain.state().ledger.clone();
    let ledger = match disk {
        Some(d) => State::decode_local(r, &base, d)?,
        None => State::decode(r, &base)?,
    };
    let n = r.count("headers")?;
    let mut headers = BTreeMap::new();
    for _ in 0..n {
        let h = Header {
            parent: r.array("parent")?,
            height: r.u64("height")?,
            timestamp_ms: r.u64("timestamp")?,
            tx_root: r.array("tx root")?,
        };
        headers.insert(h.height, h);
    }
    let n = r.count("roots")?;
    let mut roots = BTreeMap::new();
    for _ in 0..n {
        roots.insert(r.u64("height")?, Digest(r.array("root")?));
    }
    let n = r.count("txs")?;
    let mut txs = HashMap::with_capacity(n);
    for _ in 0..n {
        let id = Digest(r.array("tx id")?);
        txs.insert(id, TxRecord::decode(r)?);
    }
    let n = r.count("block events")?;
    let mut block_events = BTreeMap::new();
    for _ in 0..n {
        block_events.insert(r.u64("height")?, Event::decode_list(r)?);
    }
    Ok(ChainState { ledger, height, headers, txs, roots, block_events })
}

pub(crate) fn blob_name(height: u64) -> Vec<u8> {
    format!("snapshot-{height:020}").into_bytes()
}

/// The height and bytes of a snapshot of `chain`'s executed state (taken under its read lock).
pub fn take(chain: &Chain) -> (u64, Vec<u8>) {
    let st = chain.state();
    (st.height, encode_with(&st, !chain.has_index()))
}

/// Writes snapshot bytes taken at `height` (synced), then removes all but the newest [`KEEP`].
pub async fn write<E: Storage>(ctx: &E, partition: &str, height: u64, bytes: Vec<u8>) {
    store(ctx, partition, height, bytes, KEEP).await;
}

/// Writes snapshot bytes taken at `height` to `partition` (synced), then removes all but the newest `keep`; whether
/// the write succeeded.
pub(crate) async fn store<E: Storage>(ctx: &E, partition: &str, height: u64, bytes: Vec<u8>, keep: usize) -> bool {
    let name = blob_name(height);
    let written = async {
        let (blob, _) = ctx.open(partition, &name).await?;
        blob.resize(0).await?;
        blob.write_at(0, bytes.clone(), Default::default()).await?;
        blob.sync().await
    }
    .await;
    if let Err(e) = written {
        warn!(height, partition, error = %e, "snapshot.write failed");
        return false;
    }
    info!(height, partition, bytes = bytes.len(), "snapshot.written");
    let Ok(mut names) = ctx.scan(partition).await else { return true };
    names.sort();
    let stale = names.len().saturating_sub(keep);
    for old in &names[..stale] {
        if let Err(e) = ctx.remove(partition, Some(old)).await {
            warn!(error = %e, "snapshot.remove failed");
        }
    }
    true
}

/// The height of a snapshot blob's name.
pub(crate) fn blob_height(name: &[u8]) -> Option<u64> {
    std::str::from_utf8(name).ok()?.strip_prefix("snapshot-")?.parse().ok()
}

/// The newest valid snapshot in `partition`, if any.
pub async fn load<E: Storage>(ctx: &E, partition: &str, chain: &Chain) -> Option<ChainState> {
    let mut names = ctx.scan(partition).await.unwrap_or_default();
    names.sort();
    for name in names.iter().rev() {
        let label = String::from_utf8_lossy(name).into_owned();
        let bytes = async {
            let (blob, len) = ctx.open(partition, name).await?;
            let buf = blob.read_at(0, len as usize, Default::default()).await?;
            Ok::<_, commonware_runtime::Error>(buf.coalesce().as_ref().to_vec())
        }
        .await;
        match bytes {
            Ok(b) => match decode(&b, chain) {
                Ok(st) => return Some(st),
                Err(e) => warn!(snapshot = %label, error = %e, "snapshot.skipped"),
            },
            Err(e) => warn!(snapshot = %label, error = %e, "snapshot.skipped: unreadable"),
        }
    }
    None
}
