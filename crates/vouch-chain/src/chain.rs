//! What a validator knows about the chain: the executed ledger state, the index of settled transactions, the
//! finalized headers, and the mempool. Shared between the consensus application (which proposes from the mempool),
//! the executor (which applies finalized blocks in order) and the node.
//!
//! The node sees the chain through a facade: queries that copy out what they answer ([`Chain::job`],
//! [`Chain::model`], [`Chain::account`], [`Chain::tip`], ...) and waits ([`Chain::wait_height`],
//! [`Chain::wait_tx`], [`Chain::wait_job`]) woken by a watch channel the executor feeds after each block, so nothing
//! outside this crate holds the state lock or polls it in a sleep loop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use bytes::Bytes;
use vouch_codec::tx::{Address, SignedTx};
use vouch_codec::{AgreementRule, Digest, ModelId};
use vouch_ledger::{
    Account, Backing, BlockCtx, Event, Genesis, Job, ModelRecord, NodeRecord, Signature, State, TxError,
    check_stateless,
};

use crate::block::{Block, Header};
use crate::index::TxIndex;
use crate::mempool::Mempool;
use crate::record::TxRecord;
use crate::sigcache::VerifiedCache;
use crate::store::StateStore;

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Not a signed transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// Wrong chain or bad signature: no honest node sends this.
    #[error(transparent)]
    Invalid(TxError),
    /// It would not apply to the current state (beyond balance, unknown job, ...).
    #[error(transparent)]
    Rejected(TxError),
    /// The sender already used this nonce.
    #[error("stale nonce: account is at {expected}, transaction has {found}")]
    StaleNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        found: u64,
    },
    /// The transaction is already finalized.
    #[error("transaction {0} is already finalized")]
    AlreadyFinalized(String),
    /// The mempool is full.
    #[error("mempool is full ({0} transactions)")]
    Full(usize),
}

/// The executed chain.
#[derive(Debug, Clone)]
pub struct ChainState {
    /// The ledger after the last executed block.
    pub ledger: State,
    /// Height of the last executed block.
    pub height: u64,
    /// Finalized headers by height: the genesis and, with an index, only the recent ones (older ones are in
    /// marshal's archive).
    pub headers: BTreeMap<u64, Header>,
    /// Every finalized transaction by id.
    pub txs: HashMap<Digest, TxRecord>,
    /// State root after each executed height (with an index, only the recent ones: see [`Chain::root_at`]).
    pub roots: BTreeMap<u64, Digest>,
    /// What the end of each block did beyond its transactions (expired jobs, slashes), by height.
    pub block_events: BTreeMap<u64, Vec<Event>>,
}

impl ChainState {
    /// The last executed header.
    pub fn tip(&self) -> &Header {
        self.headers.values().next_back().expect("genesis header is always present")
    }
}

/// What [`Chain::store_status`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StoreStatus {
    /// Accounts in the ledger store (as of the last checkpoint).
    pub accounts_on_disk: u64,
    /// Models in the ledger store (as of the last checkpoint).
    pub models_on_disk: u64,
    /// Entries of the spilled tables held in memory (changed since the last checkpoint).
    pub resident_entries: u64,
    /// Height of the last checkpoint.
    pub checkpoint_height: Option<u64>,
}

/// State shared by one validator's tasks.
#[derive(Debug)]
pub struct Chain {
    genesis: Genesis,
    chain_id: [u8; 32],
    state: RwLock<ChainState>,
    mempool: Mutex<Mempool>,
    /// Height of the snapshot the state was restored from at start, if any.
    restored: Mutex<Option<u64>>,
    /// Height of the sync point this node's state came from (a state sync from peers), if any.
    synced: Mutex<Option<u64>>,
    /// Signatures verified so far.
    verified: Mutex<VerifiedCache>,
    /// The on-disk transaction index, if this chain has one.
    index: Option<Index>,
    /// The on-disk ledger store, if this chain has one: the accounts and models tables live there.
    store: Option<Arc<StateStore>>,
    /// Whether the executor has replayed this validator's own archive after a start (until then the executed state
    /// is older than what this node already knew, e.g. its own accounts' nonces).
    replayed: std::sync::atomic::AtomicBool,
    /// The executed height, published after each block (and after a restore): what the waits wake on.
    executed: tokio::sync::watch::Sender<u64>,
    /// Every epoch's validator set this chain's executed ledger fixed since it started (with the genesis set): what
    /// the node checks anchors of past epochs with.
    epoch_sets: Mutex<BTreeMap<u64, Vec<[u8; 32]>>>,
    /// Epoch links this node holds in memory (received in a state sync, whose blocks below the floor are not in its
    /// archive, or built once from the archive: about 1 KB each, immutable), by the epoch whose boundary block they
    /// carry.
    links: Mutex<BTreeMap<u64, crate::epoch::EpochLink>>,
}

/// A chain's on-disk transaction index and how many recent blocks' records stay in memory.
#[derive(Debug)]
struct Index {
    db: TxIndex,
    recent_blocks: u64,
    /// A write failed: stop evicting from memory.
    failed: std::sync::atomic::AtomicBool,
}

/// A handle to a validator's chain.
pub type ChainHandle = Arc<Chain>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Chain {
    /// The chain at genesis.
    pub fn new(genesis: Genesis) -> ChainHandle {
        Self::build(genesis, None, None)
    }

    /// The chain at genesis, with an on-disk transaction index: memory keeps the records of the last `recent_blocks`
    /// blocks (at least 1), the index all of them.
    pub fn with_index(genesis: Genesis, index: TxIndex, recent_blocks: u64) -> ChainHandle {
        let index = Index { db: index, recent_blocks: recent_blocks.max(1), failed: Default::default() };
        Self::build(genesis, Some(index), None)
    }

    /// [`Chain::with_index`] with the ledger state on disk: the accounts and models tables live in `store`, and the
    /// chain starts from its checkpoint if it has a valid one (see [`crate::store`]); the executor then replays only
    /// the blocks after it. Memory holds the spilled tables' entries changed since the last [`Chain::checkpoint`].
    pub fn on_disk(genesis: Genesis, index: TxIndex, recent_blocks: u64, store: StateStore) -> ChainHandle {
        let index = Index { db: index, recent_blocks: recent_blocks.max(1), failed: Default::default() };
        let store = Arc::new(store);
        let chain = Self::build(genesis, Some(index), Some(store.clone()));
        let disk: Arc<dyn Backing> = store.clone();
        let restored = match store.checkpoint() {
            Ok(Some((height, bytes))) => match crate::snapshot::decode_local(&bytes, &chain, &disk) {
                Ok(st) if st.height == height => {
                    tracing::info!(height, "restored the chain state from the ledger store");
                    chain.restore(st)
                }
                Ok(st) => {
                    tracing::warn!(height, found = st.height, "ledger store checkpoint skipped: wrong height");
                    false
                }
                Err(e) => {
                    tracing::warn!(height, error = %e, "ledger store checkpoint skipped");
                    false
                }
            },
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "ledger store checkpoint unreadable");
                false
            }
        };
        if !restored {
            // Start from genesis, with an empty store under it.
            if let Err(e) = store.reset() {
                tracing::error!(error = %e, "ledger store reset failed");
            }
            chain.state.write().unwrap_or_else(|p| p.into_inner()).ledger.attach(disk);
        }
        chain
    }

    /// Whether this chain keeps its ledger state on disk.
    pub fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// The ledger store, if this chain has one.
    pub fn store(&self) -> Option<&StateStore> {
        self.store.as_deref()
    }

    /// Entries of the spilled ledger tables held in memory (all of them without a ledger store).
    pub fn resident_entries(&self) -> usize {
        self.state().ledger.resident_entries()
    }

    /// The ledger store's status (`None` without one): entries on disk per spilled table, entries held in memory,
    /// and the height of the last checkpoint.
    pub fn store_status(&self) -> Option<StoreStatus> {
        let store = self.store.as_ref()?;
        let resident_entries = self.state().ledger.resident_entries() as u64;
        Some(StoreStatus {
            accounts_on_disk: store.len("accounts").unwrap_or(0),
            models_on_disk: store.len("models").unwrap_or(0),
            resident_entries,
            checkpoint_height: store.checkpoint_height().ok().flatten(),
        })
    }

    /// Writes a checkpoint to the ledger store (the spilled entries changed since the last one, and the rest of the
    /// executed chain), then lets memory forget those entries. The executor calls it between blocks; false without a
    /// store or when the write failed (memory then keeps the entries, and the next checkpoint writes them).
    pub fn checkpoint(&self) -> bool {
        let Some(store) = &self.store else { return false };
        let (height, writes, bytes) = {
            let st = self.state();
            (st.height, st.ledger.disk_writes(), crate::snapshot::encode_local(&st, !self.has_index()))
        };
        let entries: usize = writes.iter().map(|(_, w)| w.len()).sum();
        if let Err(e) = store.put(height, &writes, &bytes) {
            tracing::error!(height, error = %e, "ledger store checkpoint failed; entries stay in memory");
            return false;
        }
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if st.height == height {
            st.ledger.flushed();
        }
        tracing::info!(height, entries, bytes = bytes.len(), "ledger store checkpoint written");
        true
    }

    fn build(genesis: Genesis, index: Option<Index>, store: Option<Arc<StateStore>>) -> ChainHandle {
        let chain_id = genesis.chain_id();
        let ledger = State::genesis(&genesis);
        let g = Block::genesis(chain_id);
        let root = ledger.root();
        let state = ChainState {
            ledger,
            height: 0,
            headers: BTreeMap::from([(0, *g.header())]),
            txs: HashMap::new(),
            roots: BTreeMap::from([(0, root)]),
            block_events: BTreeMap::new(),
        };
        Arc::new(Self {
            chain_id,
            state: RwLock::new(state),
            mempool: Mutex::new(Mempool::default()),
            restored: Mutex::new(None),
            synced: Mutex::new(None),
            verified: Mutex::new(VerifiedCache::default()),
            index,
            store,
            replayed: std::sync::atomic::AtomicBool::new(false),
            executed: tokio::sync::watch::Sender::new(0),
            epoch_sets: Mutex::new(BTreeMap::from([(0, {
                let mut set = genesis.validators.clone();
                set.sort_unstable();
                set.dedup();
                set
            })])),
            links: Mutex::new(BTreeMap::new()),
            genesis,
        })
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The chain id (genesis hash) every transaction commits to.
    pub fn chain_id(&self) -> [u8; 32] {
        self.chain_id
    }

    /// The validator sets this chain knows: the genesis set, and every later one its executed ledger fixed.
    pub fn validator_sets(&self) -> crate::epoch::ValidatorSets {
        let sets = lock(&self.epoch_sets).clone();
        let mut out = crate::epoch::ValidatorSets::from_links(&self.genesis.params.validators, &sets[&0], &[])
            .expect("no links to check");
        for (e, set) in sets {
            out.insert(e, set);
        }
        out
    }

    /// Trusts the sets of verified epoch links (a state sync) and keeps the links, for anchors of those epochs and for
    /// peers that sync from this node.
    pub fn learn(&self, sets: &crate::epoch::ValidatorSets, links: &[crate::epoch::EpochLink]) {
        lock(&self.epoch_sets).extend(sets.sets().iter().map(|(e, s)| (*e, s.clone())));
        let params = &self.genesis.params.validators;
        lock(&self.links).extend(links.iter().map(|l| (params.epoch_of(l.header.height), l.clone())));
    }

    /// The link of `epoch`'s boundary block, if this node holds it in memory.
    pub fn learned_link(&self, epoch: u64) -> Option<crate::epoch::EpochLink> {
        lock(&self.links).get(&epoch).cloned()
    }

    /// Keeps a link built from the archive, so serving it again reads no block.
    pub fn remember_link(&self, epoch: u64, link: crate::epoch::EpochLink) {
        lock(&self.links).insert(epoch, link);
    }

    /// The genesis block.
    pub fn genesis_block(&self) -> Block {
        Block::genesis(self.chain_id)
    }

    /// Replaces the executed state with a snapshot's (at start, before any block is executed); refused unless the
    /// snapshot is ahead of the current state. On a chain with a ledger store, a snapshot held wholly in memory (a
    /// state sync) moves onto the emptied store and is checkpointed at once.
    pub fn restore(&self, mut snapshot: ChainState) -> bool {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if snapshot.height <= st.height {
            return false;
        }
        let moved = match &self.store {
            Some(store) if !snapshot.ledger.accounts.is_backed() => {
                if let Err(e) = store.reset() {
                    tracing::error!(error = %e, "ledger store reset failed; the state stays in memory");
                    return false;
                }
                snapshot.ledger.attach(store.clone());
                true
            }
            _ => false,
        };
        *lock(&self.restored) = Some(snapshot.height);
        let height = snapshot.height;
        *st = snapshot;
        drop(st);
        if moved {
            self.checkpoint();
        }
        self.executed.send_replace(height);
        true
    }

    /// Marks the local replay after a start as done.
    pub fn mark_replayed(&self) {
        self.replayed.store(true, std::sync::atomic::Ordering::Release);
        // Waiters that also care about the replay (e.g. the node's nonce) look again.
        self.executed.send_modify(|_| {});
    }

    /// Whether the executor has replayed the local archive after a start.
    pub fn is_replayed(&self) -> bool {
        self.replayed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that the state came from a peer's sync point after `height`.
    pub fn mark_synced(&self, height: u64) {
        *lock(&self.synced) = Some(height);
    }

    /// Height of the sync point this node's state came from in this run (a state sync from peers), if any.
    pub fn synced_height(&self) -> Option<u64> {
        *lock(&self.synced)
    }

    /// Height of the snapshot this chain was restored from at start, if any.
    pub fn restored_height(&self) -> Option<u64> {
        *lock(&self.restored)
    }

    /// Reads the whole executed state (the executor, snapshots, the consensus application and tests; the node uses
    /// the queries below, which copy out what they answer and never hold the lock across an await).
    pub fn state(&self) -> RwLockReadGuard<'_, ChainState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    // ---- queries ----

    /// Height of the last executed block.
    pub fn height(&self) -> u64 {
        self.state().height
    }

    /// The last executed header.
    pub fn tip(&self) -> Header {
        *self.state().tip()
    }

    /// A recent executed header (older ones are in marshal's archive).
    pub fn recent_header(&self, height: u64) -> Option<Header> {
        self.state().headers.get(&height).copied()
    }

    /// The newest block the ledger records as a freshness value for TEE attestations: (height, hash, time ms).
    pub fn freshness(&self) -> Option<(u64, [u8; 32], u64)> {
        self.state().ledger.blocks.iter().next_back().map(|(h, (hash, t))| (*h, *hash, *t))
    }

    /// The state root after the last executed block.
    pub fn state_root(&self) -> Digest {
        let st = self.state();
        st.roots.get(&st.height).copied().unwrap_or_else(|| st.ledger.root())
    }

    /// A job.
    pub fn job(&self, id: &Digest) -> Option<Job> {
        self.state().ledger.jobs.get(id).cloned()
    }

    /// A model on the ledger.
    pub fn model(&self, id: &ModelId) -> Option<ModelRecord> {
        self.state().ledger.models.get(id)
    }

    /// A model's agreement rule as the ledger records it (exact when the model is unknown).
    pub fn rule(&self, model: &ModelId) -> AgreementRule {
        self.state().ledger.models.get(model).map_or(AgreementRule::Exact, |m| m.rule)
    }

    /// An account (empty if it never received anything).
    pub fn account(&self, address: &Address) -> Account {
        self.state().ledger.accounts.get(address).unwrap_or_default()
    }

    /// A registered executor node.
    pub fn node(&self, key: &Address) -> Option<NodeRecord> {
        self.state().ledger.nodes.get(key).cloned()
    }

    /// Every registered executor node, by key.
    pub fn nodes(&self) -> Vec<(Address, NodeRecord)> {
        self.state().ledger.nodes.iter().map(|(k, n)| (*k, n.clone())).collect()
    }

    /// Bonded validator keys (chains with epochs), by key.
    pub fn validator_records(&self) -> Vec<(Address, vouch_ledger::ValidatorRecord)> {
        self.state().ledger.validators.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// The validator sets the executed ledger holds (the current epoch's and the next one's), by epoch.
    pub fn fixed_validator_sets(&self) -> Vec<(u64, Vec<Address>)> {
        self.state().ledger.validator_sets.iter().map(|(e, s)| (*e, s.clone())).collect()
    }

    /// Receipts settled so far (one by one or in batches).
    pub fn settled_count(&self) -> u64 {
        self.state().ledger.settled_receipts()
    }

    /// A settled batch: the issuing node, the height and the member count.
    pub fn batch(&self, root: &Digest) -> Option<(Address, u64, u32)> {
        self.state().ledger.batches.get(root).copied()
    }

    // ---- waits ----

    /// A receiver of the executed height, for callers that wait on several things at once.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.executed.subscribe()
    }

    /// Resolves once the executed chain is at `height` or above.
    pub async fn wait_height(&self, height: u64) -> u64 {
        let mut rx = self.executed.subscribe();
        // The sender lives as long as the chain, which outlives this borrow.
        rx.wait_for(|h| *h >= height).await.map_or(height, |h| *h)
    }

    /// Resolves once `f` answers something for the executed state: checked now, then after each executed block.
    pub async fn wait_for<T>(&self, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let mut rx = self.executed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(v) = f(self) {
                return v;
            }
            if rx.changed().await.is_err() {
                // The sender lives in the chain, which outlives this borrow: this cannot happen.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves with a transaction's record once it is finalized and executed.
    pub async fn wait_tx(&self, id: &Digest) -> TxRecord {
        self.wait_for(|c| c.tx_record(id)).await
    }

    /// Resolves with job `id` once it exists and `pred` holds for it.
    pub async fn wait_job(&self, id: &Digest, pred: impl Fn(&Job) -> bool) -> Job {
        self.wait_for(|c| c.job(id).filter(|j| pred(j))).await
    }

    // ---- mempool ----

    /// Number of pending transactions.
    pub fn mempool_len(&self) -> usize {
        lock(&self.mempool).len()
    }

    /// The nonce `from`'s next transaction should use: the executed state's, past the contiguous run of `from`'s
    /// transactions pending in this mempool.
    pub fn next_nonce(&self, from: &Address) -> u64 {
        self.next_free_nonce(from, 0)
    }

    /// The first nonce of `from` at or above `start` (and the executed nonce) that no pending transaction uses: a
    /// signer that tracks its own next nonce passes it as `start`, so the search is O(log pending) instead of a walk
    /// over its whole pending run.
    pub fn next_free_nonce(&self, from: &Address, start: u64) -> u64 {
        let executed = self.state().ledger.accounts.get(from).map_or(0, |a| a.nonce);
        lock(&self.mempool).next_free_nonce(from, executed, start)
    }

    /// [`check_stateless`] through the cache of verified signatures: each (transaction, signature) pair is verified
    /// once.
    pub fn check_tx(&self, stx: &SignedTx, id: &Digest) -> Result<(), TxError> {
        let key = VerifiedCache::key(stx, id);
        if stx.tx.chain == self.chain_id && lock(&self.verified).contains(&key) {
            return Ok(());
        }
        check_stateless(&self.chain_id, stx)?;
        lock(&self.verified).insert(key);
        Ok(())
    }

    /// Checks a transaction and queues it for inclusion; returns its id. Idempotent for a pending transaction.
    pub fn submit(&self, bytes: Bytes) -> Result<Digest, SubmitError> {
        let stx = SignedTx::from_bytes(&bytes).map_err(|e| SubmitError::Malformed(e.to_string()))?;
        let id = stx.tx.id();
        // Already pending (e.g. our own transaction coming back through gossip): nothing to check again.
        if lock(&self.mempool).contains(&id) {
            return Ok(id);
        }
        self.check_tx(&stx, &id).map_err(SubmitError::Invalid)?;
        {
            let st = self.state();
            if st.txs.contains_key(&id) {
                return Err(SubmitError::AlreadyFinalized(id.to_hex()));
            }
            match st.ledger.precheck_with(&stx, Signature::Verified) {
                Ok(()) => {}
                // A finalized transaction's nonce is used, so only here can it be an older one in the index.
                Err(TxError::BadNonce { expected, found }) => {
                    drop(st);
                    if self.indexed(&id) {
                        return Err(SubmitError::AlreadyFinalized(id.to_hex()));
                    }
                    return Err(SubmitError::StaleNonce { expected, found });
                }
                Err(e) => return Err(SubmitError::Rejected(e)),
            }
        }
        let mut pool = lock(&self.mempool);
        if !pool.insert(id, bytes, stx) {
            return Err(SubmitError::Full(pool.len()));
        }
        Ok(id)
    }

    /// Picks up to `max` pending transactions that can follow the executed state plus `pending` (transactions of
    /// notarized but not yet executed ancestors): per sender, only the contiguous run of nonces that comes next.
    pub fn select(&self, pending: &[SignedTx], max: usize) -> Vec<Bytes> {
        let st = self.state();
        let pending_ids: HashSet<Digest> = pending.iter().map(|t| t.tx.id()).collect();
        let nonce_of = |a: &Address| st.ledger.accounts.get(a).map_or(0, |a| a.nonce);
        let mut next: HashMap<Address, u64> = HashMap::new();
        for t in pending {
            let n = next.entry(t.tx.from).or_insert_with(|| nonce_of(&t.tx.from));
            if t.tx.nonce == *n {
                *n += 1;
            }
        }
        lock(&self.mempool).select(
            |from| *next.entry(*from).or_insert_with(|| nonce_of(from)),
            |id| pending_ids.contains(id) || st.txs.contains_key(id),
            max,
        )
    }

    // ---- execution ----

    /// Executes the next finalized block; returns false (and changes nothing) if it is not the next height.
    pub fn execute(&self, block: &Block) -> bool {
        let h = block.header();
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if h.height != st.height + 1 || h.parent != st.tip().digest() {
            return false;
        }
        let ctx = BlockCtx { height: h.height, seed: h.parent, time_ms: h.timestamp_ms };
        // A boundary block's last item is the epoch change, which the ledger's own schedule already holds.
        let (txs, _) = crate::epoch::split(&self.genesis.params.validators, block);
        let mut done = Vec::with_capacity(txs.len());
        for (index, bytes) in txs.iter().enumerate() {
            // Validators only vote for blocks whose transactions decode; a block finalized anyway (by a byzantine
            // supermajority) still executes deterministically, skipping what does not decode.
            let Ok(stx) = SignedTx::from_bytes(bytes) else { continue };
            let id = stx.tx.id();
            // A duplicate of an earlier transaction (or of one earlier in this block): already recorded.
            if st.txs.contains_key(&id) {
                continue;
            }
            // A signature this node verified before is not verified again; any other is (and a bad one fails).
            let sig = if self.check_tx(&stx, &id).is_ok() { Signature::Verified } else { Signature::Unchecked };
            let result = st.ledger.execute_with(&ctx, &stx, sig);
            // A transaction finalized in an earlier block always fails its nonce check (changing nothing), so only then
            // can it be a duplicate whose record, no longer in memory, is in the index and must not be overwritten.
            // (After a restart the index also holds the records of the blocks being replayed: those are of this very
            // height and execute normally.)
            if matches!(result, Err(TxError::BadNonce { .. })) && self.indexed_before(&id, h.height) {
                continue;
            }
            let result = result.map_err(|e| e.to_string());
            st.txs.insert(id, TxRecord { height: h.height, index: index as u32, result });
            done.push(id);
        }
        // Blocks with transactions are recorded as freshness values for TEE attestations; empty ones change nothing.
        let expired = if txs.is_empty() {
            st.ledger.end_block(h.height)
        } else {
            st.ledger.finish_block(h.height, h.digest(), h.timestamp_ms)
        };
        if !expired.is_empty() {
            st.block_events.insert(h.height, expired);
        }
        st.height = h.height;
        st.headers.insert(h.height, *h);
        let root = st.ledger.root();
        st.roots.insert(h.height, root);
        let new_records: Vec<(Digest, TxRecord)> = match &self.index {
            Some(_) => done.iter().map(|id| (*id, st.txs[id].clone())).collect(),
            None => vec![],
        };
        // With an index, memory keeps only the recent blocks' records, headers and roots (the genesis header stays):
        // older records and roots are in the index by then, older headers in marshal's archive.
        if let Some(ix) = &self.index
            && h.height.is_multiple_of(ix.recent_blocks)
            && !ix.failed.load(std::sync::atomic::Ordering::Acquire)
        {
            let cutoff = h.height.saturating_sub(ix.recent_blocks);
            st.txs.retain(|_, r| r.height > cutoff);
            st.headers.retain(|height, _| *height == 0 || *height > cutoff);
            st.roots.retain(|height, _| *height > cutoff);
        }
        if self.genesis.params.validators.epochs() {
            let mut sets = lock(&self.epoch_sets);
            for (e, set) in st.ledger.validator_sets.iter() {
                sets.entry(*e).or_insert_with(|| set.clone());
            }
        }
        // Drop what is now finalized, and what can never apply (nonce already used).
        let done: HashSet<Digest> = done.into_iter().collect();
        lock(&self.mempool).prune(&done, |from| st.ledger.accounts.get(from).map_or(0, |a| a.nonce));
        drop(st);
        if let Some(ix) = &self.index
            && let Err(e) = ix.db.put(h.height, &root, &new_records)
        {
            // Keep every record in memory from now on rather than lose any.
            tracing::error!(height = h.height, error = %e, "txindex.write failed; records stay in memory");
            ix.failed.store(true, std::sync::atomic::Ordering::Release);
        }
        self.executed.send_replace(h.height);
        true
    }

    fn indexed(&self, id: &Digest) -> bool {
        self.index.as_ref().is_some_and(|ix| matches!(ix.db.get(id), Ok(Some(_))))
    }

    fn indexed_before(&self, id: &Digest, height: u64) -> bool {
        self.index.as_ref().is_some_and(|ix| matches!(ix.db.get(id), Ok(Some(r)) if r.height < height))
    }

    /// Where a finalized transaction landed and what it did (recent ones from memory, older ones from the index).
    pub fn tx_record(&self, id: &Digest) -> Option<TxRecord> {
        if let Some(r) = self.state().txs.get(id) {
            return Some(r.clone());
        }
        self.index.as_ref().and_then(|ix| ix.db.get(id).ok().flatten())
    }

    /// Whether this chain keeps an on-disk index.
    pub fn has_index(&self) -> bool {
        self.index.is_some()
    }

    /// The state root after `height` (recent ones from memory, older ones from the index).
    pub fn root_at(&self, height: u64) -> Option<Digest> {
        if let Some(r) = self.state().roots.get(&height) {
            return Some(*r);
        }
        if height == 0 {
            // Evicted from memory with the old heights, and never indexed (no block executes at 0).
            return Some(State::genesis(&self.genesis).root());
        }
        self.index.as_ref().and_then(|ix| ix.db.root(height).ok().flatten())
    }

    /// Whether a transaction is finalized.
    pub fn is_finalized(&self, id: &Digest) -> bool {
        self.state().txs.contains_key(id) || self.indexed(id)
    }

    /// Finalized transactions recorded.
    pub fn finalized_count(&self) -> u64 {
        match &self.index {
            Some(ix) if !ix.failed.load(std::sync::atomic::Ordering::Acquire) => {
                ix.db.len().unwrap_or(0).max(self.state().txs.len() as u64)
            }
            _ => self.state().txs.len() as u64,
        }
    }
}

/// Why a block's transactions are refused before voting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockTxError {
    /// A transaction does not decode.
    #[error("tx {index}: {reason}")]
    Malformed {
        /// Its index in the block.
        index: usize,
        /// The decoder's error.
        reason: String,
    },
    /// A transaction is for another chain or carries a bad signature.
    #[error("tx {index}: {error}")]
    Invalid {
        /// Its index in the block.
        index: usize,
        /// The ledger's error.
        error: TxError,
    },
    /// A transaction appears twice.
    #[error("tx {0} appears twice")]
    Duplicate(usize),
    /// A boundary block's epoch change is missing, malformed, or not the set the ledger fixed.
    #[error("epoch change: {0}")]
    EpochChange(String),
}

/// The epoch change the boundary block at `height` must carry: the set the executed ledger fixed for the next
/// epoch (`None` when `height` is no boundary, or the set is not known yet).
pub fn expected_epoch_change(chain: &Chain, height: u64) -> Option<crate::epoch::EpochChange> {
    let params = &chain.genesis().params.validators;
    if !params.is_boundary(height) {
        return None;
    }
    let ending = params.epoch_of(height);
    let validators = chain.state().ledger.validator_set(ending + 1)?.clone();
    let state_root = chain.root_at(crate::epoch::EpochChange::root_height(params, ending))?.0;
    Some(crate::epoch::EpochChange { epoch: ending + 1, state_root, validators })
}

/// Checks a boundary block's epoch change against the executed ledger (what a validator votes on); any other block
/// passes.
pub fn check_epoch_change(chain: &Chain, block: &Block) -> Result<(), BlockTxError> {
    use vouch_codec::Canonical as _;
    let params = &chain.genesis().params.validators;
    let height = block.header().height;
    if !params.is_boundary(height) {
        return Ok(());
    }
    let bad = |m: String| BlockTxError::EpochChange(m);
    let Some(expected) = expected_epoch_change(chain, height) else {
        return Err(bad(format!(
            "the set of epoch {} or the state root it commits to is not known here yet",
            params.epoch_of(height) + 1
        )));
    };
    let (_, item) = crate::epoch::split(params, block);
    let item = item.ok_or_else(|| bad("the boundary block carries none".into()))?;
    let found = crate::epoch::EpochChange::from_canonical(item).map_err(|e| bad(e.to_string()))?;
    if found.validators != expected.validators || found.epoch != expected.epoch {
        return Err(bad(format!("carries the set of epoch {} that the ledger did not choose", found.epoch)));
    }
    if found.state_root != expected.state_root {
        let h = crate::epoch::EpochChange::root_height(params, params.epoch_of(height));
        return Err(bad(format!("carries a state root that is not the ledger's at height {h}")));
    }
    Ok(())
}

/// Decodes the transactions of a block the way validators check them before voting: every transaction must decode,
/// be for this chain, carry a valid signature, and appear once.
pub fn check_block_txs(chain: &Chain, block: &Block) -> Result<Vec<SignedTx>, BlockTxError> {
    use vouch_codec::Canonical as _;
    let params = &chain.genesis().params.validators;
    let (txs, change) = crate::epoch::split(params, block);
    if params.is_boundary(block.header().height) {
        let item = change.ok_or_else(|| BlockTxError::EpochChange("the boundary block carries none".into()))?;
        let c =
            crate::epoch::EpochChange::from_canonical(item).map_err(|e| BlockTxError::EpochChange(e.to_string()))?;
        let want = params.epoch_of(block.header().height) + 1;
        if c.epoch != want {
            return Err(BlockTxError::EpochChange(format!("for epoch {}, expected {want}", c.epoch)));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(txs.len());
    for (index, bytes) in txs.iter().enumerate() {
        let stx = SignedTx::from_bytes(bytes).map_err(|e| BlockTxError::Malformed { index, reason: e.to_string() })?;
        let id = stx.tx.id();
        chain.check_tx(&stx, &id).map_err(|error| BlockTxError::Invalid { index, error })?;
        if !seen.insert(id) {
            return Err(BlockTxError::Duplicate(index));
        }
        out.push(stx);
    }
    Ok(out)
}
