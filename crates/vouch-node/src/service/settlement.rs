//! Settlement of the receipts this node owes, in batches: every `settle_interval_ms` the node takes the receipts it
//! owes (up to `settle_batch_max` per batch), durably moves them into a batch (see `receipts.rs`) and submits one
//! `SettleBatch` with the batch's Merkle root. A batch stays pending, and is submitted again, until the ledger records
//! its root (a crash, a transaction lost with a restarted mempool, a full mempool); then its members are settled, and
//! each one's anchor carries its path to the root.
//!
//! Anchors: a receipt this node batched gets its path from the local batch; a quorum receipt settled by another
//! executor gets it from that node (`GET /v1/settlements/{id}`), checked against the root the ledger records. Either
//! way the anchor is verified here, as `vouch verify --genesis` would, before it is attached to a receipt.

use std::sync::Arc;
use std::time::Duration;

use vouch_api::Settlement;
use vouch_chain::batch::Batch;
use vouch_codec::tx::TxKind;
use vouch_codec::{Anchor, BatchPath, Digest, ReceiptBody};

use crate::NodeState;
use crate::error::{ApiError, Code};

/// How long a submitted batch may take to finalize before it is submitted again.
const RESUBMIT_AFTER: Duration = Duration::from_secs(30);
/// How long a peer may take to say where it settled a receipt (the caller is a client's receipt request).
const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// The executed chain counts as caught up once it has replayed its own archive and its tip is at most this old (a
/// node still replaying or catching up does not know yet which batches already finalized, nor its nonce).
const CAUGHT_UP_MS: u64 = 10_000;

/// Runs the batcher until the process ends.
pub(crate) async fn run(s: Arc<NodeState>) {
    s.chain.chain().wait_for(|c| c.is_replayed().then_some(())).await;
    let mut ticks = tokio::time::interval(Duration::from_millis(s.config.settle_interval_ms.max(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first pass that runs (the chain caught up) resubmits every batch a previous process left pending: its
    // transaction may have died with that process's mempool.
    let mut first = true;
    loop {
        ticks.tick().await;
        let st = s.clone();
        // Reads and durable writes of the receipt store: on the blocking pool.
        match tokio::task::spawn_blocking(move || pass(&st, first)).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "receipt.settle: pass failed"),
            Err(e) => tracing::warn!(error = %e, "receipt.settle: pass panicked"),
            Ok(Ok(ran)) => first &= !ran,
        }
    }
}

/// One pass: forgets the batches the ledger recorded, resubmits the pending ones that are due (all of them on a
/// process's first pass), and batches every receipt owed. False when the chain is not caught up (nothing done).
fn pass(s: &NodeState, first: bool) -> Result<bool, String> {
    let chain = s.chain.chain();
    if crate::now_ms().saturating_sub(chain.tip().timestamp_ms) > CAUGHT_UP_MS {
        return Ok(false);
    }
    let now = crate::now_ms();
    let (mut recorded, mut due) = (vec![], vec![]);
    for (root, submitted) in s.receipts.pending_batches().map_err(|e| e.to_string())? {
        if let Some((_, height, _)) = chain.batch(&root) {
            recorded.push((root, height));
        } else if first || now.saturating_sub(submitted) >= RESUBMIT_AFTER.as_millis() as u64 {
            due.push((root, submitted));
        }
    }
    if !recorded.is_empty() {
        s.receipts.batches_settled(&recorded).map_err(|e| e.to_string())?;
        tracing::debug!(n = recorded.len(), "receipt.batches_settled");
    }
    for (root, submitted) in due {
        let members = s.receipts.batch_members(&root).map_err(|e| e.to_string())?.unwrap_or_default();
        if submitted > 0 {
            tracing::info!(batch = %root, n = members.len(), "receipt.settle_retry");
            s.metrics.settlements_retried.inc();
        }
        submit(s, &root, members.len() as u32);
    }
    let max = s.config.settle_batch_max.clamp(1, vouch_codec::tx::MAX_BATCH_RECEIPTS) as usize;
    loop {
        let ids = s.receipts.unsettled(max).map_err(|e| e.to_string())?;
        if ids.is_empty() {
            return Ok(true);
        }
        let batch = Batch::new(&ids, &s.key.public_key());
        let root = batch.root();
        s.receipts.create_batch(&root, &ids).map_err(|e| e.to_string())?;
        submit(s, &root, batch.count());
        if ids.len() < max {
            return Ok(true);
        }
    }
}

/// Submits a pending batch; records the time, or leaves it due at the next pass when the submission failed.
fn submit(s: &NodeState, root: &Digest, count: u32) {
    if s.config.fault_skip_settlement {
        // As if the transaction were lost: stamped as submitted, never sent.
        let _ = s.receipts.batch_submitted(root, crate::now_ms());
        return;
    }
    let at = match s.chain.sign_submit(&s.key, TxKind::SettleBatch { root: *root, count }) {
        Ok(tx) => {
            tracing::debug!(batch = %root, count, tx = %tx, "receipt.batch_submitted");
            crate::now_ms()
        }
        Err(e) => {
            tracing::warn!(batch = %root, count, error = %e, "receipt.batch_submit failed");
            0
        }
    };
    if let Err(e) = s.receipts.batch_submitted(root, at) {
        tracing::warn!(batch = %root, error = %e, "receipt.batch_submitted: recording failed");
    }
}

/// Where a receipt this node batched sits, with its path (for `GET /v1/settlements/{id}`).
pub(crate) fn place(s: &NodeState, id: &Digest) -> Result<Option<Settlement>, ApiError> {
    let Some((root, index)) = s.receipts.batch_place(id)? else { return Ok(None) };
    let members = s
        .receipts
        .batch_members(&root)?
        .ok_or_else(|| ApiError::internal(format!("batch {root} of receipt {id} is missing")))?;
    let path = Batch::new(&members, &s.key.public_key())
        .path(index)
        .ok_or_else(|| ApiError::internal(format!("receipt {id} has no place {index} in batch {root}")))?;
    let height = s.receipts.batch_height(&root)?;
    Ok(Some(Settlement { root: root.to_hex(), index, path: hex::encode(path), height }))
}

/// The verified anchor of a receipt, once its settlement is finalized: from this node's own batch, a single
/// settlement on the ledger, or the batch of another executor of the receipt (asked over HTTP).
pub(crate) async fn anchor(s: &Arc<NodeState>, body: &ReceiptBody) -> Option<Anchor> {
    let id = body.id();
    let st = s.clone();
    let local = tokio::task::spawn_blocking(move || place(&st, &id)).await.ok()?;
    let anchor = match local {
        Ok(Some(p)) => batched(s, &p).await,
        Ok(None) => match s.chain.anchor(&id).await {
            Some(a) => Some(a),
            None => from_peers(s, body).await,
        },
        Err(e) => {
            tracing::warn!(receipt = %id, error = %e.message, "receipt.anchor: reading the batch failed");
            None
        }
    }?;
    // Never hand out an anchor this node could not verify itself.
    match s.chain.verify_anchor(&anchor, body) {
        Ok(()) => Some(anchor),
        Err(e) => {
            tracing::error!(receipt = %id, error = %e, "receipt.anchor: refused an anchor that does not verify");
            None
        }
    }
}

/// The anchor at `p`; the settling height from the state, else (a batch pruned from it) from `p`.
async fn batched(s: &NodeState, p: &Settlement) -> Option<Anchor> {
    let root = Digest(hex::decode(&p.root).ok()?.try_into().ok()?);
    let path = BatchPath { index: p.index, path: hex::decode(&p.path).ok()? };
    let height = match s.chain.chain().batch(&root) {
        Some((_, h, _)) => Some(h),
        None => Some(p.height?),
    };
    s.chain.anchor_batched(&root, height, path).await
}

/// Asks the receipt's other executors that the ledger lists whether one settled it in a batch.
async fn from_peers(s: &NodeState, body: &ReceiptBody) -> Option<Anchor> {
    let me = s.key.public_key();
    for executor in body.executors.iter().filter(|e| **e != me) {
        let Some(node) = s.chain.chain().node(executor) else { continue };
        let client = vouch_api::Client::new(&node.endpoint);
        let Ok(asked) = tokio::time::timeout(PEER_TIMEOUT, client.settlement(&body.id().to_hex())).await else {
            tracing::debug!(peer = %node.endpoint, "receipt.anchor: peer timed out");
            continue;
        };
        match asked {
            Ok(p) => {
                // While the ledger holds the batch it must be that executor's; either way the whole anchor is verified
                // (block inclusion, the executor's signature, the path) before it is used.
                let root = Digest(hex::decode(&p.root).ok()?.try_into().ok()?);
                if s.chain.chain().batch(&root).is_none_or(|(from, _, _)| from == *executor)
                    && let Some(a) = batched(s, &p).await
                {
                    return Some(a);
                }
            }
            Err(e) => tracing::debug!(peer = %node.endpoint, error = %e, "receipt.anchor: peer has no settlement"),
        }
    }
    None
}

/// `settlement_not_found` for an id this node did not batch.
pub(crate) fn not_found(id: &Digest) -> ApiError {
    ApiError::new(Code::SettlementNotFound, format!("this node has not settled receipt {id} in a batch"))
}
