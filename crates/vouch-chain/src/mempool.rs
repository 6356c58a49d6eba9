//! Pending transactions: arrival order, ids, and each sender's pending nonces.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;
use vouch_codec::Digest;
use vouch_codec::tx::{Address, SignedTx};

/// Most transactions held in one mempool.
pub const MAX_MEMPOOL: usize = 200_000;

/// Pending transactions in arrival order.
#[derive(Debug, Default)]
pub struct Mempool {
    queue: VecDeque<(Digest, Bytes, SignedTx)>,
    ids: HashSet<Digest>,
    /// Pending nonces per sender (with multiplicity: two transactions may share a nonce until one is executed).
    nonces: HashMap<Address, BTreeMap<u64, usize>>,
}

impl Mempool {
    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a transaction is pending.
    pub fn contains(&self, id: &Digest) -> bool {
        self.ids.contains(id)
    }

    /// Queues a checked transaction; false if the pool is full. Idempotent for a pending one.
    pub(crate) fn insert(&mut self, id: Digest, bytes: Bytes, stx: SignedTx) -> bool {
        if self.ids.contains(&id) {
            return true;
        }
        if self.queue.len() >= MAX_MEMPOOL {
            return false;
        }
        self.ids.insert(id);
        *self.nonces.entry(stx.tx.from).or_default().entry(stx.tx.nonce).or_default() += 1;
        self.queue.push_back((id, bytes, stx));
        true
    }

    /// The first nonce of `from` at or above `start` (and `executed`, the account's executed nonce) that no pending
    /// transaction uses. A start past a nonce nothing pending uses would leave a gap no block can fill, so the walk
    /// then starts from `executed`.
    pub(crate) fn next_free_nonce(&self, from: &Address, executed: u64, start: u64) -> u64 {
        let pending = self.nonces.get(from);
        let gap = start > executed && !pending.is_some_and(|p| p.contains_key(&(start - 1)));
        let mut next = if gap { executed } else { executed.max(start) };
        if let Some(pending) = pending {
            for n in pending.range(next..).map(|(n, _)| *n) {
                if n != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Up to `max` pending transactions that can follow: per sender, only the contiguous run of nonces from
    /// `next_nonce(sender)`, oldest first (so a flood from one sender does not starve the others). `skip` leaves out
    /// transactions already in a block.
    pub(crate) fn select(
        &self,
        mut next_nonce: impl FnMut(&Address) -> u64,
        skip: impl Fn(&Digest) -> bool,
        max: usize,
    ) -> Vec<Bytes> {
        // Candidates by sender, ordered by nonce, so out-of-order arrivals still chain.
        let mut by_sender: BTreeMap<Address, BTreeMap<u64, (usize, &Bytes)>> = BTreeMap::new();
        for (i, (id, bytes, stx)) in self.queue.iter().enumerate() {
            if skip(id) {
                continue;
            }
            by_sender.entry(stx.tx.from).or_default().entry(stx.tx.nonce).or_insert((i, bytes));
        }
        let mut chosen: Vec<(usize, Bytes)> = vec![];
        for (from, txs) in by_sender {
            let mut n = next_nonce(&from);
            for (nonce, (i, bytes)) in txs {
                if nonce != n {
                    if nonce < n {
                        continue;
                    }
                    break;
                }
                chosen.push((i, bytes.clone()));
                n += 1;
            }
        }
        chosen.sort_by_key(|(i, _)| *i);
        chosen.truncate(max);
        chosen.into_iter().map(|(_, b)| b).collect()
    }

    /// Drops what a block finalized (`done`) and what can never apply any more (a nonce below the sender's executed
    /// one, `executed_nonce`).
    pub(crate) fn prune(&mut self, done: &HashSet<Digest>, executed_nonce: impl Fn(&Address) -> u64) {
        let Mempool { queue, ids, nonces } = self;
        queue.retain(|(id, _, stx)| {
            let keep = !done.contains(id) && stx.tx.nonce >= executed_nonce(&stx.tx.from);
            if !keep {
                ids.remove(id);
                drop_nonce(nonces, &stx.tx.from, stx.tx.nonce);
            }
            keep
        });
    }
}

fn drop_nonce(nonces: &mut HashMap<Address, BTreeMap<u64, usize>>, from: &Address, nonce: u64) {
    if let Some(set) = nonces.get_mut(from) {
        if let Some(c) = set.get_mut(&nonce) {
            *c -= 1;
            if *c == 0 {
                set.remove(&nonce);
            }
        }
        if set.is_empty() {
            nonces.remove(from);
        }
    }
}
