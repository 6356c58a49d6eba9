//! The ledger state, and applying a transaction: the checks every transaction passes (chain, signature, nonce,
//! fee), then its family's handler (`tx/`), which validates everything before its first write.

use std::collections::{BTreeMap, BTreeSet};

use vouch_codec::tx::{Address, SignedTx, Tx, TxKind};
use vouch_codec::{Digest, ModelId, domain};

use crate::error::TxError;
use std::sync::Arc;

use crate::entries::{ACCOUNTS, MODELS};
use crate::spill::{Backing, Spill, Write};
use crate::table::{LtHash, Table};
use crate::types::{
    Account, BlockCtx, Event, Genesis, Job, JobStatus, ModelRecord, NodeRecord, PRUNE_EVERY, Params, ValidatorRecord,
};

/// The ledger state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Chain id.
    pub chain: [u8; 32],
    /// Parameters.
    pub params: Params,
    /// Accounts (on the node's disk when it has a store).
    pub accounts: Spill<Address, Account>,
    /// Executors by node key.
    pub nodes: Table<Address, NodeRecord>,
    /// Models by id (on the node's disk when it has a store).
    pub models: Spill<ModelId, ModelRecord>,
    /// Jobs by id.
    pub jobs: Table<Digest, Job>,
    /// Fees and unclaimed slashes.
    pub treasury: u64,
    /// Settled receipts whose settlement was pruned from the state (single ones and batch members).
    pub pruned_settled: u64,
    /// Settled receipts: id -> (issuing node, height).
    pub receipts: Table<Digest, (Address, u64)>,
    /// Settled batches of receipts: Merkle root -> (issuing node, height, member count).
    pub batches: Table<Digest, (Address, u64, u32)>,
    /// The last `tee.freshness_blocks` finalized blocks that carried transactions: height -> (hash, time ms), the
    /// freshness values TEE attestations may name.
    pub blocks: Table<u64, ([u8; 32], u64)>,
    /// Bonded validator keys (chains with epochs).
    pub validators: Table<Address, ValidatorRecord>,
    /// The validator sets already fixed (chains with epochs): after the last block of epoch `e − 1` executed, exactly
    /// epochs `e` and `e + 1`, each a sorted list of consensus keys. Empty for a fixed set.
    pub validator_sets: Table<u64, Vec<Address>>,
    /// Multiset hash of every table entry, up to the tables' pending changes.
    pub(crate) entries: LtHash,
    /// Where `end_block` finds the rounds that timed out without scanning every job.
    pub(crate) deadlines: Deadlines,
}

/// Open jobs by deadline: `(deadline, job)` for every open round. Derived from the jobs table (rebuilt on restore),
/// never hashed and not part of a state's identity (equality ignores it); it may hold stale entries (a job that
/// settled, or whose dispute set a later deadline, which also added its new entry), which expiry skips.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deadlines(pub BTreeSet<(u64, Digest)>);

impl PartialEq for Deadlines {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Deadlines {}

impl Deadlines {
    fn of(jobs: &Table<Digest, Job>) -> Self {
        Self(
            jobs.iter()
                .filter(|(_, j)| matches!(j.status, JobStatus::Pending | JobStatus::Disputed))
                .map(|(id, j)| (j.deadline, *id))
                .collect(),
        )
    }
}

/// Every table of a state, for [`State::restore`].
pub(crate) struct Tables {
    pub accounts: Spill<Address, Account>,
    pub nodes: Table<Address, NodeRecord>,
    pub models: Spill<ModelId, ModelRecord>,
    pub jobs: Table<Digest, Job>,
    pub receipts: Table<Digest, (Address, u64)>,
    pub batches: Table<Digest, (Address, u64, u32)>,
    pub blocks: Table<u64, ([u8; 32], u64)>,
    pub validators: Table<Address, ValidatorRecord>,
    pub validator_sets: Table<u64, Vec<Address>>,
}

/// Whether a transaction's signature was already verified (with [`check_stateless`]) by the caller, e.g. through a
/// cache of verified (id, signature) pairs. `Verified` skips only the signature check; the chain id is still checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Verify it.
    Unchecked,
    /// The caller verified it for exactly this transaction id and signature.
    Verified,
}

/// The checks that need no state: the transaction is for `chain` and its signature verifies. Block
/// validators run these before voting; [`State::apply`] runs them again.
pub fn check_stateless(chain: &[u8; 32], stx: &SignedTx) -> Result<(), TxError> {
    let tx = &stx.tx;
    if tx.chain != *chain {
        return Err(TxError::WrongChain { expected: hex::encode(chain), found: hex::encode(tx.chain) });
    }
    vouch_crypto::verify(domain::TX_SIGNATURE, &tx.from, &tx.id().0, &stx.signature).map_err(|_| TxError::BadSignature)
}

pub(crate) fn short(a: &[u8; 32]) -> String {
    hex::encode(&a[..8])
}

/// One transaction being applied: what every family's handler needs.
pub(crate) struct TxCtx<'a> {
    /// The transaction.
    pub tx: &'a Tx,
    /// Its id.
    pub id: Digest,
    /// The sender's account before it.
    pub sender: Account,
    /// Where it is applied.
    pub block: &'a BlockCtx,
}

impl TxCtx<'_> {
    /// The fee plus `amount`, if the sender can pay both.
    pub fn spend(&self, amount: u64) -> Result<u64, TxError> {
        let needed = self.tx.fee.checked_add(amount).ok_or(TxError::InvalidAmount)?;
        if needed > self.sender.balance {
            return Err(TxError::InsufficientBalance { needed, available: self.sender.balance });
        }
        Ok(needed)
    }
}

impl State {
    /// The state at genesis.
    pub fn genesis(g: &Genesis) -> Self {
        let mut accounts = BTreeMap::new();
        for (a, b) in &g.accounts {
            accounts.entry(*a).or_insert_with(Account::default).balance += b;
        }
        let mut state = Self {
            chain: g.chain_id(),
            params: g.params.clone(),
            accounts: Spill::new(&ACCOUNTS, accounts),
            nodes: Table::default(),
            models: Spill::new(&MODELS, BTreeMap::new()),
            jobs: Table::default(),
            treasury: 0,
            pruned_settled: 0,
            receipts: Table::default(),
            batches: Table::default(),
            blocks: Table::default(),
            validators: Table::default(),
            validator_sets: Table::default(),
            entries: LtHash::default(),
            deadlines: Deadlines::default(),
        };
        let v = &g.params.validators;
        if v.epochs() {
            // Each genesis validator starts bonded with the minimum stake, owned by its consensus key's account; the
            // genesis set validates epochs 0 and 1.
            let mut set: Vec<Address> = g.validators.clone();
            set.sort_unstable();
            set.dedup();
            let record = |k: &Address| ValidatorRecord {
                operator: *k,
                p2p: String::new(),
                stake: v.min_stake,
                unbonding: vec![],
            };
            state.validators = Table::from(set.iter().map(|k| (*k, record(k))).collect::<BTreeMap<_, _>>());
            state.validator_sets = Table::from(BTreeMap::from([(0, set.clone()), (1, set)]));
        }
        state.entries = state.entries_from_scratch();
        state
    }

    /// A state of `base`'s chain (its chain id and parameters) with these tables; the entry hash is recomputed.
    pub(crate) fn restore(base: &State, t: Tables, treasury: u64, pruned_settled: u64) -> State {
        let mut state = State {
            chain: base.chain,
            params: base.params.clone(),
            accounts: t.accounts,
            nodes: t.nodes,
            models: t.models,
            jobs: t.jobs,
            treasury,
            pruned_settled,
            receipts: t.receipts,
            batches: t.batches,
            blocks: t.blocks,
            validators: t.validators,
            validator_sets: t.validator_sets,
            entries: LtHash::default(),
            deadlines: Deadlines::default(),
        };
        state.entries = state.entries_from_scratch();
        state.deadlines = Deadlines::of(&state.jobs);
        state
    }

    /// Moves the tables that grow with the number of users (accounts, models) onto `disk`, which must hold none of
    /// their entries yet: they are written at the next [`State::flushed`] checkpoint.
    pub fn attach(&mut self, disk: Arc<dyn Backing>) {
        self.accounts.attach(disk.clone());
        self.models.attach(disk);
    }

    /// The changed entries of the tables on disk not yet written to it, by table name (empty without a disk).
    pub fn disk_writes(&self) -> Vec<(&'static str, Vec<Write>)> {
        vec![
            (crate::entries::ACCOUNTS.name, self.accounts.writes()),
            (crate::entries::MODELS.name, self.models.writes()),
        ]
    }

    /// The disk now holds [`State::disk_writes`]: memory forgets those tables' entries. Call between blocks.
    pub fn flushed(&mut self) {
        self.accounts.flushed();
        self.models.flushed();
    }

    /// Entries of the tables on disk held in memory.
    pub fn resident_entries(&self) -> usize {
        self.accounts.resident() + self.models.resident()
    }

    /// Receipts settled so far: one per `SettleReceipt`, plus every batch's members, pruned ones included.
    pub fn settled_receipts(&self) -> u64 {
        self.pruned_settled + self.receipts.len() as u64 + self.batches.values().map(|b| u64::from(b.2)).sum::<u64>()
    }

    /// Every token: balances, stakes, escrows and the treasury. Constant across transactions.
    pub fn total_supply(&self) -> u128 {
        let mut balances = 0u128;
        self.accounts.for_each(|_, a| balances += u128::from(a.balance));
        balances
            + self.nodes.values().map(|n| u128::from(n.slashable())).sum::<u128>()
            + self.jobs.values().map(|j| u128::from(j.escrow)).sum::<u128>()
            + self.validators.values().map(|v| u128::from(v.locked())).sum::<u128>()
            + u128::from(self.treasury)
    }

    /// The validator set of `epoch`, once fixed (chains with epochs: the current epoch's and the next one's).
    pub fn validator_set(&self, epoch: u64) -> Option<&Vec<Address>> {
        self.validator_sets.get(&epoch)
    }

    /// The newest epoch whose set is fixed, and that set (chains with epochs).
    pub fn latest_validator_set(&self) -> Option<(u64, &Vec<Address>)> {
        self.validator_sets.iter().next_back().map(|(e, s)| (*e, s))
    }

    /// Nodes eligible for new work: stake at least the minimum.
    pub fn eligible(&self) -> Vec<(Address, u64)> {
        self.nodes.iter().filter(|(_, n)| n.stake >= self.params.min_stake).map(|(k, n)| (*k, n.stake)).collect()
    }

    pub(crate) fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).unwrap_or_default()
    }

    /// The cheap stateful checks a mempool runs before accepting a transaction (no state is cloned or changed):
    /// stateless validity, a nonce not yet used, the fee, a balance covering fee plus the amount the action moves,
    /// and, for a result, a known job. Passing does not guarantee the transaction applies (earlier transactions of
    /// the same block may change the state); failing means it would not apply now.
    pub fn precheck(&self, stx: &SignedTx) -> Result<(), TxError> {
        self.precheck_with(stx, Signature::Unchecked)
    }

    /// [`State::precheck`], trusting `sig` about the signature.
    pub fn precheck_with(&self, stx: &SignedTx, sig: Signature) -> Result<(), TxError> {
        let tx = &stx.tx;
        self.check_signed(stx, sig)?;
        let sender = self.account(&tx.from);
        if tx.nonce < sender.nonce {
            return Err(TxError::BadNonce { expected: sender.nonce, found: tx.nonce });
        }
        if tx.fee < self.params.min_fee {
            return Err(TxError::FeeTooLow { fee: tx.fee, min: self.params.min_fee });
        }
        let amount = match &tx.kind {
            TxKind::Transfer { amount, .. } | TxKind::AddStake { amount, .. } => *amount,
            TxKind::RegisterNode { stake, .. } | TxKind::BondValidator { stake, .. } => *stake,
            TxKind::SubmitJob { quorum, fee_per_executor, .. } => {
                fee_per_executor.checked_mul(u64::from(*quorum)).ok_or(TxError::InvalidAmount)?
            }
            TxKind::SubmitResult { job, .. } => {
                if !self.jobs.contains_key(job) {
                    return Err(TxError::UnknownJob(job.to_hex()));
                }
                0
            }
            TxKind::RegisterModel { .. }
            | TxKind::SettleReceipt { .. }
            | TxKind::SettleBatch { .. }
            | TxKind::Unbond { .. }
            | TxKind::SetEngine { .. }
            | TxKind::Attest { .. }
            | TxKind::UnbondValidator { .. } => 0,
        };
        let needed = tx.fee.checked_add(amount).ok_or(TxError::InvalidAmount)?;
        if needed > sender.balance {
            return Err(TxError::InsufficientBalance { needed, available: sender.balance });
        }
        Ok(())
    }

    /// Executes one transaction of a finalized block. Like [`State::apply`], except that a transaction that is
    /// for this chain, correctly signed, at the sender's next nonce and able to pay its fee is *included* even when
    /// its action fails: the fee is charged and the nonce consumed, so a failed action never blocks the sender's
    /// later transactions (the error is still returned). A transaction failing those checks changes nothing.
    pub fn execute(&mut self, ctx: &BlockCtx, stx: &SignedTx) -> Result<Vec<Event>, TxError> {
        self.execute_with(ctx, stx, Signature::Unchecked)
    }

    /// [`State::execute`], trusting `sig` about the signature.
    pub fn execute_with(&mut self, ctx: &BlockCtx, stx: &SignedTx, sig: Signature) -> Result<Vec<Event>, TxError> {
        let err = match self.apply_with(ctx, stx, sig) {
            Ok(events) => return Ok(events),
            Err(e) => e,
        };
        let tx = &stx.tx;
        let sender = self.account(&tx.from);
        let admissible = !matches!(
            err,
            TxError::WrongChain { .. } | TxError::BadSignature | TxError::BadNonce { .. } | TxError::FeeTooLow { .. }
        ) && tx.nonce == sender.nonce
            && tx.fee >= self.params.min_fee
            && sender.balance >= tx.fee;
        if admissible {
            self.charge(tx.from, tx.fee, tx.fee);
            self.accounts.entry_or_default(tx.from).nonce += 1;
            self.commit();
        }
        Err(err)
    }

    /// Applies one transaction, or rejects it leaving the state unchanged.
    pub fn apply(&mut self, ctx: &BlockCtx, stx: &SignedTx) -> Result<Vec<Event>, TxError> {
        self.apply_with(ctx, stx, Signature::Unchecked)
    }

    /// The stateless checks, the signature's only when `sig` says it is unchecked.
    fn check_signed(&self, stx: &SignedTx, sig: Signature) -> Result<(), TxError> {
        match sig {
            Signature::Unchecked => check_stateless(&self.chain, stx),
            Signature::Verified if stx.tx.chain != self.chain => {
                Err(TxError::WrongChain { expected: hex::encode(self.chain), found: hex::encode(stx.tx.chain) })
            }
            Signature::Verified => Ok(()),
        }
    }

    /// [`State::apply`], trusting `sig` about the signature.
    pub fn apply_with(&mut self, ctx: &BlockCtx, stx: &SignedTx, sig: Signature) -> Result<Vec<Event>, TxError> {
        let tx = &stx.tx;
        self.check_signed(stx, sig)?;
        let id = tx.id();
        let sender = self.account(&tx.from);
        if tx.nonce != sender.nonce {
            return Err(TxError::BadNonce { expected: sender.nonce, found: tx.nonce });
        }
        if tx.fee < self.params.min_fee {
            return Err(TxError::FeeTooLow { fee: tx.fee, min: self.params.min_fee });
        }
        let c = TxCtx { tx, id, sender, block: ctx };
        // Each handler validates everything, then writes: an error leaves the state unchanged.
        let events = match &tx.kind {
            TxKind::Transfer { to, amount } => self.transfer(&c, to, *amount)?,
            TxKind::RegisterNode { node, endpoint, stake, node_signature } => {
                self.register_node(&c, node, endpoint, *stake, node_signature)?
            }
            TxKind::AddStake { node, amount } => self.add_stake(&c, node, *amount)?,
            TxKind::Unbond { node, amount } => self.unbond(&c, node, *amount)?,
            TxKind::SetEngine { node, engine } => self.set_engine(&c, node, engine)?,
            TxKind::Attest { node, evidence } => self.attest(&c, node, evidence)?,
            TxKind::RegisterModel { model, name, commitment, rule } => {
                self.register_model(&c, model, name, commitment, rule)?
            }
            TxKind::SubmitJob { model, input_digest, mode, quorum, fee_per_executor } => {
                self.submit_job(&c, model, input_digest, *mode, *quorum, *fee_per_executor)?
            }
            TxKind::SettleReceipt { receipt } => self.settle_receipt(&c, receipt)?,
            TxKind::SettleBatch { root, count } => self.settle_batch(&c, root, *count)?,
            TxKind::SubmitResult { job, node, body, signature } => {
                self.submit_result(&c, job, node, body, signature)?
            }
            TxKind::BondValidator { key, p2p, stake, key_signature } => {
                self.bond_validator(&c, key, p2p, *stake, key_signature)?
            }
            TxKind::UnbondValidator { key } => self.unbond_validator(&c, key)?,
        };
        self.accounts.entry_or_default(tx.from).nonce += 1;
        self.commit();
        Ok(events)
    }

    /// Runs after a block's transactions: unbonded stake due at this height returns to its operators, then every open
    /// job whose round missed its deadline expires. Its silent members lose `slash_bps` of their stake (to the
    /// treasury); members that answered are paid; the rest of the escrow goes back to the requester. Deterministic:
    /// nodes and jobs are visited in id order.
    pub fn end_block(&mut self, height: u64) -> Vec<Event> {
        self.end_block_at(height, None)
    }

    /// [`State::end_block`], recording the block's hash and time (Unix ms) among the recent blocks TEE attestations
    /// may name for freshness (the oldest beyond `tee.freshness_blocks` is dropped). The executor records the blocks
    /// that carry transactions, so an idle chain's state (and root) stays as it is.
    pub fn finish_block(&mut self, height: u64, hash: [u8; 32], time_ms: u64) -> Vec<Event> {
        self.end_block_at(height, Some((hash, time_ms)))
    }

    fn end_block_at(&mut self, height: u64, block: Option<([u8; 32], u64)>) -> Vec<Event> {
        if let Some(b) = block {
            self.blocks.insert(height, b);
            while self.blocks.len() as u64 > self.params.tee.freshness_blocks.max(1) {
                let Some(oldest) = self.blocks.keys().next().copied() else { break };
                self.blocks.remove(&oldest);
            }
        }
        let mut events = self.release_unbonded(height);
        events.extend(self.release_unbonded_validators(height));
        events.extend(self.end_epoch(height));
        events.extend(self.expire_jobs(height));
        events.extend(self.prune(height));
        self.commit();
        events
    }

    /// At heights that are multiples of [`PRUNE_EVERY`], drops the finished records older than
    /// `params.retention_blocks`: jobs settled, resolved or expired whose last deadline is that old, and single and
    /// batched settlements recorded that long ago. Deterministic (every validator prunes the same entries at the
    /// same height); the blocks keep proving them.
    fn prune(&mut self, height: u64) -> Option<Event> {
        let keep = self.params.retention_blocks;
        if keep == 0 || height == 0 || !height.is_multiple_of(PRUNE_EVERY) {
            return None;
        }
        let old = |h: u64| h.saturating_add(keep) <= height;
        let jobs: Vec<Digest> = self
            .jobs
            .iter()
            .filter(|(_, j)| !matches!(j.status, JobStatus::Pending | JobStatus::Disputed) && old(j.deadline))
            .map(|(id, _)| *id)
            .collect();
        let receipts: Vec<Digest> = self.receipts.iter().filter(|(_, (_, h))| old(*h)).map(|(id, _)| *id).collect();
        let batches: Vec<Digest> = self.batches.iter().filter(|(_, (_, h, _))| old(*h)).map(|(id, _)| *id).collect();
        if jobs.is_empty() && receipts.is_empty() && batches.is_empty() {
            return None;
        }
        let members: u64 = batches.iter().map(|r| u64::from(self.batches.get(r).map_or(0, |b| b.2))).sum();
        self.pruned_settled += receipts.len() as u64 + members;
        for id in &jobs {
            self.jobs.remove(id);
        }
        for id in &receipts {
            self.receipts.remove(id);
        }
        for id in &batches {
            self.batches.remove(id);
        }
        Some(Event::Pruned { jobs: jobs.len() as u64, receipts: receipts.len() as u64, batches: batches.len() as u64 })
    }

    pub(crate) fn charge(&mut self, from: Address, needed: u64, fee: u64) {
        self.accounts.entry_or_default(from).balance -= needed;
        self.treasury += fee;
    }

    pub(crate) fn pay(&mut self, node: &Address, amount: u64) {
        if amount == 0 {
            return;
        }
        let operator = self.nodes.get(node).map(|n| n.operator).unwrap_or(*node);
        self.accounts.entry_or_default(operator).balance += amount;
    }
}
