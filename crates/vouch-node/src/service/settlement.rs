//! Settlement of the receipts this node owes: submitted right after the receipt is stored, and submitted again by a
//! background loop for as long as the ledger has not recorded it (a crash before submission, a transaction lost with
//! a restarted mempool, a full mempool). The duty itself is durable: it is written with the receipt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_codec::Digest;

use crate::NodeState;

/// How long a submitted settlement may take to finalize before it is submitted again.
const RESUBMIT_AFTER: Duration = Duration::from_secs(30);
/// Most settlements looked at per pass.
const BATCH: usize = 4096;
/// The executed chain counts as caught up once it has replayed its own archive and its tip is at most this old (a
/// node still replaying or catching up does not know yet which settlements already finalized, nor its nonce).
const CAUGHT_UP_MS: u64 = 10_000;

/// Submits the settlement of a receipt this node issued. The duty is already durable, so a failure here only delays
/// the anchor (it is logged; the retry loop submits again).
pub(crate) fn settle(s: &NodeState, receipt: Digest) {
    if s.config.fault_skip_settlement {
        return;
    }
    s.settling.lock().unwrap_or_else(|p| p.into_inner()).insert(receipt, Instant::now());
    if let Err(e) = s.chain.settle(&s.key, receipt) {
        tracing::warn!(receipt = %receipt, error = %e, "receipt.settle failed");
    }
}

/// One pass of the retry loop: forgets the duties the ledger has recorded and resubmits the others that are not in
/// flight.
pub(crate) async fn retry(s: &Arc<NodeState>) {
    if s.config.fault_skip_settlement {
        return;
    }
    let chain = s.chain.chain();
    if !chain.is_replayed() || crate::now_ms().saturating_sub(chain.tip().timestamp_ms) > CAUGHT_UP_MS {
        return;
    }
    let st = s.clone();
    let owed = match tokio::task::spawn_blocking(move || st.receipts.unsettled(BATCH)).await {
        Ok(Ok(ids)) => ids,
        Ok(Err(e)) => return tracing::warn!(error = %e, "receipt.settle_retry: reading the duties failed"),
        Err(_) => return,
    };
    let settled = chain.settled(&owed);
    let (mut done, mut open) = (vec![], vec![]);
    for (id, settled) in owed.into_iter().zip(settled) {
        if settled { done.push(id) } else { open.push(id) }
    }
    if !done.is_empty() {
        let st = s.clone();
        let n = done.len();
        match tokio::task::spawn_blocking(move || st.receipts.settled(&done)).await {
            Ok(Ok(())) => tracing::debug!(n, "receipt.settled"),
            Ok(Err(e)) => tracing::warn!(error = %e, "receipt.settle_retry: forgetting settled duties failed"),
            Err(_) => {}
        }
    }
    let due: Vec<Digest> = {
        let mut settling = s.settling.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the submissions the ledger has recorded.
        let ids: Vec<Digest> = settling.keys().copied().collect();
        for (id, settled) in ids.iter().zip(chain.settled(&ids)) {
            if settled {
                settling.remove(id);
            }
        }
        open.iter().filter(|id| settling.get(*id).is_none_or(|t| t.elapsed() > RESUBMIT_AFTER)).copied().collect()
    };
    for id in due {
        tracing::info!(receipt = %id, "receipt.settle_retry");
        s.metrics.settlements_retried.inc();
        settle(s, id);
    }
}
