//! Ledger state and transaction application.

use std::collections::BTreeMap;

use vouch_codec::tx::{Address, SignedTx, TxKind};
use vouch_codec::{AgreementRule, Digest, Mode, ModelId, ReceiptBody, Writer, domain};

use crate::assign::select_executors;
use crate::table::{LtHash, Table};

/// Economic and safety parameters, fixed at genesis (the `params` of a chain spec file; missing fields default).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Smallest fee of any transaction.
    pub min_fee: u64,
    /// Smallest stake of an executor eligible for jobs.
    pub min_stake: u64,
    /// Share of stake slashed for a wrong result, in basis points.
    pub slash_bps: u64,
    /// Largest quorum a job may ask for.
    pub max_quorum: u8,
    /// Longest endpoint string.
    pub max_endpoint_len: usize,
    /// Blocks an executor round has to answer before its silent members are slashed and the job expires.
    pub job_timeout_blocks: u64,
    /// Blocks between unbonding stake and its return to the operator; it stays slashable meanwhile, so this should
    /// exceed two job rounds (a dispute opened just before the unbonding still reaches it).
    pub unbonding_blocks: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_fee: 1,
            min_stake: 1_000,
            slash_bps: 5_000,
            max_quorum: 16,
            max_endpoint_len: 256,
            job_timeout_blocks: 600,
            unbonding_blocks: 1_800,
        }
    }
}

/// The initial state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// Funded accounts.
    pub accounts: Vec<(Address, u64)>,
    /// Parameters.
    pub params: Params,
    /// Consensus (ed25519) public keys of the validators, in any order; the chain id commits to them.
    pub validators: Vec<[u8; 32]>,
}

impl Genesis {
    /// The chain id: the hash of the genesis, which every transaction commits to.
    pub fn chain_id(&self) -> [u8; 32] {
        let mut w = Writer::new();
        w.raw(b"VOUCH_GENESIS_V1");
        w.len(self.accounts.len());
        for (a, b) in &self.accounts {
            w.raw(a);
            w.u64(*b);
        }
        let p = &self.params;
        w.u64(p.min_fee);
        w.u64(p.min_stake);
        w.u64(p.slash_bps);
        w.u8(p.max_quorum);
        w.u64(p.max_endpoint_len as u64);
        w.u64(p.job_timeout_blocks);
        w.u64(p.unbonding_blocks);
        w.len(self.validators.len());
        self.validators.iter().for_each(|v| w.raw(v));
        *blake3::hash(&w.finish()).as_bytes()
    }
}

/// Where a transaction is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCtx {
    /// Block height.
    pub height: u64,
    /// A value no proposer controls alone (the previous finalized block's hash): seeds executor selection.
    pub seed: [u8; 32],
}

/// An account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Next nonce.
    pub nonce: u64,
}

/// A registered executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Operating account (pays stake, receives fees).
    pub operator: Address,
    /// API endpoint.
    pub endpoint: String,
    /// Locked stake.
    pub stake: u64,
    /// Total slashed so far.
    pub slashed: u64,
    /// Stake on its way back to the operator: (height at which it is released, amount), oldest first. Still
    /// slashable until released.
    pub unbonding: Vec<(u64, u64)>,
}

impl NodeRecord {
    /// Stake plus what is unbonding: what a slash is a share of.
    pub fn slashable(&self) -> u64 {
        self.stake.saturating_add(self.unbonding.iter().map(|(_, a)| *a).sum())
    }

    /// Takes `bps` basis points of the slashable amount, from the stake first, then from the newest unbonding
    /// entries; returns the amount taken.
    fn slash(&mut self, bps: u64) -> u64 {
        let amount = (u128::from(self.slashable()) * u128::from(bps) / 10_000) as u64;
        let from_stake = amount.min(self.stake);
        self.stake -= from_stake;
        let mut rest = amount - from_stake;
        for (_, a) in self.unbonding.iter_mut().rev() {
            let take = rest.min(*a);
            *a -= take;
            rest -= take;
        }
        self.unbonding.retain(|(_, a)| *a > 0);
        self.slashed += amount;
        amount
    }
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    /// Owner account.
    pub owner: Address,
    /// `name@version`.
    pub name: String,
    /// zk commitment (empty if none).
    pub commitment: Vec<u8>,
    /// When two executions agree in `quorum` mode (the float model's declared tolerance, or exact).
    pub rule: AgreementRule,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for the assigned executors.
    Pending,
    /// Every executor agreed on this output digest; fees paid.
    Settled(Digest),
    /// Executors disagreed; a larger set re-executes.
    Disputed,
    /// The re-execution majority decided this output digest; liars slashed.
    Resolved(Digest),
    /// The current round did not answer in time: silent members slashed, answering ones paid, rest refunded.
    Expired,
}

/// An inference job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Who pays.
    pub requester: Address,
    /// The model.
    pub model: ModelId,
    /// Digest of the inputs.
    pub input_digest: Digest,
    /// Mode.
    pub mode: Mode,
    /// Fee per honest executor.
    pub fee_per_executor: u64,
    /// Escrow left.
    pub escrow: u64,
    /// Assigned executors.
    pub executors: Vec<Address>,
    /// Re-executors, once disputed.
    pub dispute_set: Vec<Address>,
    /// Results: node -> (receipt id, output digest).
    pub results: BTreeMap<Address, (Digest, Digest)>,
    /// Status.
    pub status: JobStatus,
    /// Height of the block that created it.
    pub height: u64,
    /// Last height at which the current round (executors, or the dispute set) may answer.
    pub deadline: u64,
}

/// What applying a transaction did (beyond balances), for logs, APIs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job was created and assigned.
    JobAssigned {
        /// Job id.
        job: Digest,
        /// Executors.
        executors: Vec<Address>,
    },
    /// All executors agreed.
    JobSettled {
        /// Job id.
        job: Digest,
        /// The agreed output digest.
        output_digest: Digest,
    },
    /// Executors disagreed; re-execution assigned.
    DisputeOpened {
        /// Job id.
        job: Digest,
        /// Re-executors.
        dispute_set: Vec<Address>,
    },
    /// A dispute was decided.
    DisputeResolved {
        /// Job id.
        job: Digest,
        /// The majority's output digest.
        output_digest: Digest,
    },
    /// A round did not answer in time.
    JobExpired {
        /// Job id.
        job: Digest,
        /// Members of the round that never answered (slashed).
        silent: Vec<Address>,
    },
    /// A receipt was settled.
    ReceiptSettled {
        /// Receipt id.
        receipt: Digest,
    },
    /// Stake started unbonding.
    Unbonding {
        /// The node.
        node: Address,
        /// Amount.
        amount: u64,
        /// Height at which it returns to the operator.
        release_height: u64,
    },
    /// Unbonded stake returned to the operator.
    Unbonded {
        /// The node.
        node: Address,
        /// Amount.
        amount: u64,
    },
    /// A node lost stake.
    Slashed {
        /// The node.
        node: Address,
        /// Amount.
        amount: u64,
    },
}

/// Why a transaction was rejected. The state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Signed for another network.
    #[error("transaction is for chain {found}, this is {expected}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's.
        found: String,
    },
    /// The sender's signature does not verify.
    #[error("bad transaction signature")]
    BadSignature,
    /// Replayed or out-of-order nonce.
    #[error("bad nonce: expected {expected}, got {found}")]
    BadNonce {
        /// Next valid nonce.
        expected: u64,
        /// The transaction's.
        found: u64,
    },
    /// Fee below the minimum.
    #[error("fee {fee} below the minimum {min}")]
    FeeTooLow {
        /// Fee given.
        fee: u64,
        /// Minimum.
        min: u64,
    },
    /// Not enough balance for fee plus amount.
    #[error("insufficient balance: needs {needed}, has {available}")]
    InsufficientBalance {
        /// Needed.
        needed: u64,
        /// Available.
        available: u64,
    },
    /// A zero amount, or an amount that overflows.
    #[error("invalid amount")]
    InvalidAmount,
    /// The node key already belongs to a registered node.
    #[error("node {0} is already registered")]
    NodeExists(String),
    /// No such node.
    #[error("unknown node {0}")]
    UnknownNode(String),
    /// The sender does not operate the node.
    #[error("sender does not operate node {0}")]
    NotOperator(String),
    /// The node key's proof of possession does not verify.
    #[error("bad node key proof of possession")]
    BadNodeSignature,
    /// Stake below the minimum.
    #[error("stake {stake} below the minimum {min}")]
    StakeTooLow {
        /// Stake given.
        stake: u64,
        /// Minimum.
        min: u64,
    },
    /// A string is too long.
    #[error("{what} too long ({len} > {max})")]
    TooLong {
        /// Field.
        what: &'static str,
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The model id is already registered.
    #[error("model {0} is already registered")]
    ModelExists(String),
    /// A tolerance that is negative, infinite or NaN.
    #[error("invalid agreement rule: {0}")]
    InvalidRule(String),
    /// No such model.
    #[error("unknown model {0}")]
    UnknownModel(String),
    /// Mode and quorum do not fit.
    #[error("invalid quorum {quorum} for mode {mode}")]
    InvalidQuorum {
        /// Mode.
        mode: &'static str,
        /// Quorum asked.
        quorum: u8,
    },
    /// Fewer eligible executors than the quorum.
    #[error("only {available} eligible executors for a quorum of {quorum}")]
    NotEnoughExecutors {
        /// Eligible.
        available: usize,
        /// Asked.
        quorum: u8,
    },
    /// A job id that the same transaction already created (cannot happen with distinct nonces).
    #[error("job {0} already exists")]
    JobExists(String),
    /// No such job.
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// The job takes no more results.
    #[error("job {0} is already decided")]
    JobClosed(String),
    /// The node is not assigned to the job (or not in its current round).
    #[error("node {0} is not assigned to this job")]
    NotAssigned(String),
    /// The node already submitted.
    #[error("node {0} already submitted a result for this job")]
    DuplicateResult(String),
    /// The receipt body does not decode.
    #[error("malformed receipt body: {0}")]
    MalformedReceipt(String),
    /// The receipt is for another job, model or input, or does not list the node.
    #[error("receipt does not match the job: {0}")]
    ReceiptMismatch(&'static str),
    /// The receipt is already settled.
    #[error("receipt {0} is already settled")]
    ReceiptSettled(String),
    /// The node's receipt signature does not verify.
    #[error("bad receipt signature by node {0}")]
    BadResultSignature(String),
}

/// The ledger state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Chain id.
    pub chain: [u8; 32],
    /// Parameters.
    pub params: Params,
    /// Accounts.
    pub accounts: Table<Address, Account>,
    /// Executors by node key.
    pub nodes: Table<Address, NodeRecord>,
    /// Models by id.
    pub models: Table<ModelId, ModelRecord>,
    /// Jobs by id.
    pub jobs: Table<Digest, Job>,
    /// Fees and unclaimed slashes.
    pub treasury: u64,
    /// Settled receipts: id -> (issuing node, height).
    pub receipts: Table<Digest, (Address, u64)>,
    /// Multiset hash of every table entry, up to the tables' pending changes.
    entries: LtHash,
}

/// One table entry's canonical bytes: a table tag, the key, the value.
pub(crate) fn account_entry(w: &mut Writer, a: &Address, acc: &Account) {
    w.u8(1);
    w.raw(a);
    w.u64(acc.balance);
    w.u64(acc.nonce);
}

pub(crate) fn node_entry(w: &mut Writer, k: &Address, n: &NodeRecord) {
    w.u8(2);
    w.raw(k);
    w.raw(&n.operator);
    w.str(&n.endpoint);
    w.u64(n.stake);
    w.u64(n.slashed);
    w.len(n.unbonding.len());
    for (h, a) in &n.unbonding {
        w.u64(*h);
        w.u64(*a);
    }
}

pub(crate) fn model_entry(w: &mut Writer, id: &ModelId, m: &ModelRecord) {
    w.u8(3);
    w.bytes(&id.to_cid_bytes());
    w.raw(&m.owner);
    w.str(&m.name);
    w.bytes(&m.commitment);
    m.rule.encode(w);
}

pub(crate) fn job_entry(w: &mut Writer, id: &Digest, j: &Job) {
    w.u8(4);
    w.raw(&id.0);
    w.raw(&j.requester);
    w.bytes(&j.model.to_cid_bytes());
    w.raw(&j.input_digest.0);
    w.u8(j.mode as u8);
    w.u64(j.fee_per_executor);
    w.u64(j.escrow);
    w.u64(j.height);
    w.u64(j.deadline);
    for set in [&j.executors, &j.dispute_set] {
        w.len(set.len());
        set.iter().for_each(|e| w.raw(e));
    }
    w.len(j.results.len());
    for (n, (r, o)) in &j.results {
        w.raw(n);
        w.raw(&r.0);
        w.raw(&o.0);
    }
    match &j.status {
        JobStatus::Pending => w.u8(0),
        JobStatus::Settled(d) => {
            w.u8(1);
            w.raw(&d.0)
        }
        JobStatus::Disputed => w.u8(2),
        JobStatus::Resolved(d) => {
            w.u8(3);
            w.raw(&d.0)
        }
        JobStatus::Expired => w.u8(4),
    }
}

pub(crate) fn receipt_entry(w: &mut Writer, id: &Digest, r: &(Address, u64)) {
    w.u8(5);
    w.raw(&id.0);
    w.raw(&r.0);
    w.u64(r.1);
}

fn entry_hash<K, V>(encode: fn(&mut Writer, &K, &V), k: &K, v: &V) -> LtHash {
    let mut w = Writer::new();
    encode(&mut w, k, v);
    LtHash::of(&w.finish())
}

/// Folds a table's changes into `acc`: the old entry out, the new one in.
fn fold<K: Ord + Clone, V: Clone>(acc: &mut LtHash, t: &mut Table<K, V>, encode: fn(&mut Writer, &K, &V)) {
    for (k, old, new) in t.take_changes() {
        if let Some(v) = &old {
            acc.sub(&entry_hash(encode, &k, v));
        }
        if let Some(v) = &new {
            acc.add(&entry_hash(encode, &k, v));
        }
    }
}

fn sum<K: Ord + Clone, V: Clone>(acc: &mut LtHash, t: &Table<K, V>, encode: fn(&mut Writer, &K, &V)) {
    t.iter().for_each(|(k, v)| acc.add(&entry_hash(encode, k, v)));
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

fn short(a: &[u8; 32]) -> String {
    hex::encode(&a[..8])
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
            accounts: Table::from(accounts),
            nodes: Table::default(),
            models: Table::default(),
            jobs: Table::default(),
            treasury: 0,
            receipts: Table::default(),
            entries: LtHash::default(),
        };
        state.entries = state.entries_from_scratch();
        state
    }

    /// A state of `base`'s chain (its chain id and parameters) with these tables; the entry hash is recomputed.
    pub(crate) fn restore(
        base: &State,
        accounts: Table<Address, Account>,
        nodes: Table<Address, NodeRecord>,
        models: Table<ModelId, ModelRecord>,
        jobs: Table<Digest, Job>,
        treasury: u64,
        receipts: Table<Digest, (Address, u64)>,
    ) -> State {
        let mut state = State {
            chain: base.chain,
            params: base.params.clone(),
            accounts,
            nodes,
            models,
            jobs,
            treasury,
            receipts,
            entries: LtHash::default(),
        };
        state.entries = state.entries_from_scratch();
        state
    }

    /// Folds every table's pending changes into the entry hash (after each transaction and block).
    fn commit(&mut self) {
        let mut acc = std::mem::take(&mut self.entries);
        fold(&mut acc, &mut self.accounts, account_entry);
        fold(&mut acc, &mut self.nodes, node_entry);
        fold(&mut acc, &mut self.models, model_entry);
        fold(&mut acc, &mut self.jobs, job_entry);
        fold(&mut acc, &mut self.receipts, receipt_entry);
        self.entries = acc;
    }

    pub(crate) fn entries_from_scratch(&self) -> LtHash {
        let mut acc = LtHash::default();
        sum(&mut acc, &self.accounts, account_entry);
        sum(&mut acc, &self.nodes, node_entry);
        sum(&mut acc, &self.models, model_entry);
        sum(&mut acc, &self.jobs, job_entry);
        sum(&mut acc, &self.receipts, receipt_entry);
        acc
    }

    fn root_of(&self, entries: &LtHash) -> Digest {
        let mut w = Writer::new();
        w.raw(&self.chain);
        w.u64(self.treasury);
        w.raw(&entries.to_bytes());
        Digest::of(domain::STATE, &w.finish())
    }

    /// The state root: `VOUCH_STATE_V1` digest of the chain id, the treasury and the [`LtHash`] of every table
    /// entry. O(1) after each transaction (the entry hash is maintained incrementally); a state changed directly
    /// through the tables since is accounted for on the fly.
    pub fn root(&self) -> Digest {
        let dirty = self.accounts.is_dirty()
            || self.nodes.is_dirty()
            || self.models.is_dirty()
            || self.jobs.is_dirty()
            || self.receipts.is_dirty();
        if dirty {
            let mut copy = self.clone();
            copy.commit();
            return copy.root_of(&copy.entries);
        }
        self.root_of(&self.entries)
    }

    /// The state root recomputed from every entry (what [`State::root`] maintains incrementally; for audits and
    /// tests).
    pub fn root_from_scratch(&self) -> Digest {
        self.root_of(&self.entries_from_scratch())
    }

    /// Every token: balances, stakes, escrows and the treasury. Constant across transactions.
    pub fn total_supply(&self) -> u128 {
        self.accounts.values().map(|a| u128::from(a.balance)).sum::<u128>()
            + self.nodes.values().map(|n| u128::from(n.slashable())).sum::<u128>()
            + self.jobs.values().map(|j| u128::from(j.escrow)).sum::<u128>()
            + u128::from(self.treasury)
    }

    /// Nodes eligible for new work: stake at least the minimum.
    pub fn eligible(&self) -> Vec<(Address, u64)> {
        self.nodes.iter().filter(|(_, n)| n.stake >= self.params.min_stake).map(|(k, n)| (*k, n.stake)).collect()
    }

    fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).cloned().unwrap_or_default()
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
            TxKind::RegisterNode { stake, .. } => *stake,
            TxKind::SubmitJob { quorum, fee_per_executor, .. } => {
                fee_per_executor.checked_mul(u64::from(*quorum)).ok_or(TxError::InvalidAmount)?
            }
            TxKind::SubmitResult { job, .. } => {
                if !self.jobs.contains_key(job) {
                    return Err(TxError::UnknownJob(job.to_hex()));
                }
                0
            }
            TxKind::RegisterModel { .. } | TxKind::SettleReceipt { .. } | TxKind::Unbond { .. } => 0,
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
        let spend = |amount: u64| -> Result<u64, TxError> {
            let needed = tx.fee.checked_add(amount).ok_or(TxError::InvalidAmount)?;
            if needed > sender.balance {
                return Err(TxError::InsufficientBalance { needed, available: sender.balance });
            }
            Ok(needed)
        };

        // Validate everything, computing the effects; write nothing until the end.
        let mut events = vec![];
        match &tx.kind {
            TxKind::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(TxError::InvalidAmount);
                }
                let needed = spend(*amount)?;
                if *to != tx.from && self.account(to).balance.checked_add(*amount).is_none() {
                    return Err(TxError::InvalidAmount);
                }
                self.charge(tx.from, needed, tx.fee);
                self.accounts.entry_or_default(*to).balance += amount;
            }
            TxKind::RegisterNode { node, endpoint, stake, node_signature } => {
                if self.nodes.contains_key(node) {
                    return Err(TxError::NodeExists(short(node)));
                }
                if endpoint.len() > self.params.max_endpoint_len {
                    return Err(TxError::TooLong {
                        what: "endpoint",
                        len: endpoint.len(),
                        max: self.params.max_endpoint_len,
                    });
                }
                if *stake < self.params.min_stake {
                    return Err(TxError::StakeTooLow { stake: *stake, min: self.params.min_stake });
                }
                vouch_crypto::verify(domain::NODE_BIND, node, &tx.from, node_signature)
                    .map_err(|_| TxError::BadNodeSignature)?;
                let needed = spend(*stake)?;
                self.charge(tx.from, needed, tx.fee);
                self.nodes.insert(
                    *node,
                    NodeRecord {
                        operator: tx.from,
                        endpoint: endpoint.clone(),
                        stake: *stake,
                        slashed: 0,
                        unbonding: vec![],
                    },
                );
            }
            TxKind::AddStake { node, amount } => {
                let n = self.nodes.get(node).ok_or_else(|| TxError::UnknownNode(short(node)))?;
                if n.operator != tx.from {
                    return Err(TxError::NotOperator(short(node)));
                }
                if *amount == 0 || n.stake.checked_add(*amount).is_none() {
                    return Err(TxError::InvalidAmount);
                }
                let needed = spend(*amount)?;
                self.charge(tx.from, needed, tx.fee);
                self.nodes.get_mut(node).expect("checked").stake += amount;
            }
            TxKind::Unbond { node, amount } => {
                let n = self.nodes.get(node).ok_or_else(|| TxError::UnknownNode(short(node)))?;
                if n.operator != tx.from {
                    return Err(TxError::NotOperator(short(node)));
                }
                if *amount == 0 || *amount > n.stake {
                    return Err(TxError::InvalidAmount);
                }
                let needed = spend(0)?;
                self.charge(tx.from, needed, tx.fee);
                let release = ctx.height.saturating_add(self.params.unbonding_blocks);
                let n = self.nodes.get_mut(node).expect("checked");
                n.stake -= amount;
                n.unbonding.push((release, *amount));
                events.push(Event::Unbonding { node: *node, amount: *amount, release_height: release });
            }
            TxKind::RegisterModel { model, name, commitment, rule } => {
                if self.models.contains_key(model) {
                    return Err(TxError::ModelExists(model.to_string()));
                }
                if name.len() > 128 {
                    return Err(TxError::TooLong { what: "model name", len: name.len(), max: 128 });
                }
                if commitment.len() > 1024 {
                    return Err(TxError::TooLong { what: "commitment", len: commitment.len(), max: 1024 });
                }
                rule.check().map_err(TxError::InvalidRule)?;
                let needed = spend(0)?;
                self.charge(tx.from, needed, tx.fee);
                self.models.insert(
                    *model,
                    ModelRecord { owner: tx.from, name: name.clone(), commitment: commitment.clone(), rule: *rule },
                );
            }
            TxKind::SubmitJob { model, input_digest, mode, quorum, fee_per_executor } => {
                if !self.models.contains_key(model) {
                    return Err(TxError::UnknownModel(model.to_string()));
                }
                let ok = match mode {
                    Mode::Signed => *quorum == 1,
                    Mode::Quorum => (2..=self.params.max_quorum).contains(quorum),
                    Mode::Zk | Mode::Tee => false,
                };
                if !ok {
                    return Err(TxError::InvalidQuorum { mode: mode.name(), quorum: *quorum });
                }
                let escrow = fee_per_executor.checked_mul(u64::from(*quorum)).ok_or(TxError::InvalidAmount)?;
                let needed = spend(escrow)?;
                let eligible = self.eligible();
                if eligible.len() < usize::from(*quorum) {
                    return Err(TxError::NotEnoughExecutors { available: eligible.len(), quorum: *quorum });
                }
                let job_id = Digest::of(domain::JOB, &id.0);
                if self.jobs.contains_key(&job_id) {
                    return Err(TxError::JobExists(job_id.to_hex()));
                }
                let executors = select_executors(&eligible, &ctx.seed, &job_id, usize::from(*quorum));
                self.charge(tx.from, needed, tx.fee);
                events.push(Event::JobAssigned { job: job_id, executors: executors.clone() });
                self.jobs.insert(
                    job_id,
                    Job {
                        requester: tx.from,
                        model: *model,
                        input_digest: *input_digest,
                        mode: *mode,
                        fee_per_executor: *fee_per_executor,
                        escrow,
                        executors,
                        dispute_set: vec![],
                        results: BTreeMap::new(),
                        status: JobStatus::Pending,
                        height: ctx.height,
                        deadline: ctx.height.saturating_add(self.params.job_timeout_blocks),
                    },
                );
            }
            TxKind::SettleReceipt { receipt } => {
                if self.receipts.contains_key(receipt) {
                    return Err(TxError::ReceiptSettled(receipt.to_hex()));
                }
                let needed = spend(0)?;
                self.charge(tx.from, needed, tx.fee);
                self.receipts.insert(*receipt, (tx.from, ctx.height));
                events.push(Event::ReceiptSettled { receipt: *receipt });
            }
            TxKind::SubmitResult { job, node, body, signature } => {
                let j = self.jobs.get(job).ok_or_else(|| TxError::UnknownJob(job.to_hex()))?;
                let round = match j.status {
                    JobStatus::Pending => &j.executors,
                    JobStatus::Disputed => &j.dispute_set,
                    JobStatus::Settled(_) | JobStatus::Resolved(_) | JobStatus::Expired => {
                        return Err(TxError::JobClosed(job.to_hex()));
                    }
                };
                if !round.contains(node) {
                    return Err(TxError::NotAssigned(short(node)));
                }
                if j.results.contains_key(node) {
                    return Err(TxError::DuplicateResult(short(node)));
                }
                let mut r = vouch_codec::Reader::new(body);
                let receipt = ReceiptBody::decode(&mut r).map_err(|e| TxError::MalformedReceipt(e.to_string()))?;
                r.finish("receipt body").map_err(|e| TxError::MalformedReceipt(e.to_string()))?;
                if receipt.job != job.0 {
                    return Err(TxError::ReceiptMismatch("job"));
                }
                if receipt.model != j.model {
                    return Err(TxError::ReceiptMismatch("model"));
                }
                if receipt.input_digest != j.input_digest {
                    return Err(TxError::ReceiptMismatch("input digest"));
                }
                if !receipt.executors.contains(node) {
                    return Err(TxError::ReceiptMismatch("executors"));
                }
                let rid = receipt.id();
                vouch_crypto::verify(domain::RECEIPT_SIGNATURE, node, &rid.0, signature)
                    .map_err(|_| TxError::BadResultSignature(short(node)))?;
                let needed = spend(0)?;
                self.charge(tx.from, needed, tx.fee);
                let j = self.jobs.get_mut(job).expect("checked");
                j.results.insert(*node, (rid, receipt.output_digest));
                events.extend(self.progress(*job, &ctx.seed, ctx.height));
            }
        }
        self.accounts.entry_or_default(tx.from).nonce += 1;
        self.commit();
        Ok(events)
    }

    /// Runs after a block's transactions: unbonded stake due at this height returns to its operators, then every open
    /// job whose round missed its deadline expires. Its silent members lose `slash_bps` of their stake (to the
    /// treasury); members that answered are paid; the rest of the escrow goes back to the requester. Deterministic:
    /// nodes and jobs are visited in id order.
    pub fn end_block(&mut self, height: u64) -> Vec<Event> {
        let mut events = self.release_unbonded(height);
        events.extend(self.expire_jobs(height));
        self.commit();
        events
    }

    /// Returns unbonding stake whose release height has come to its operator.
    fn release_unbonded(&mut self, height: u64) -> Vec<Event> {
        let mut events = vec![];
        let due: Vec<Address> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.unbonding.iter().any(|(h, _)| *h <= height))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let n = self.nodes.get_mut(&id).expect("listed");
            let amount: u64 = n.unbonding.iter().filter(|(h, _)| *h <= height).map(|(_, a)| *a).sum();
            n.unbonding.retain(|(h, _)| *h > height);
            let operator = n.operator;
            self.accounts.entry_or_default(operator).balance += amount;
            events.push(Event::Unbonded { node: id, amount });
        }
        events
    }

    fn expire_jobs(&mut self, height: u64) -> Vec<Event> {
        let due: Vec<Digest> = self
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j.status, JobStatus::Pending | JobStatus::Disputed) && j.deadline < height)
            .map(|(id, _)| *id)
            .collect();
        let mut events = vec![];
        for id in due {
            let j = self.jobs[&id].clone();
            let round = if j.status == JobStatus::Disputed { &j.dispute_set } else { &j.executors };
            let silent: Vec<Address> = round.iter().filter(|n| !j.results.contains_key(*n)).copied().collect();
            for n in &silent {
                if let Some(node) = self.nodes.get_mut(n) {
                    let amount = node.slash(self.params.slash_bps);
                    self.treasury += amount;
                    events.push(Event::Slashed { node: *n, amount });
                }
            }
            // Original executors who answered earn their fee (bounded by what is left in escrow).
            let mut escrow = j.escrow;
            for n in j.executors.iter().filter(|n| j.results.contains_key(*n)) {
                let fee = j.fee_per_executor.min(escrow);
                escrow -= fee;
                self.pay(n, fee);
            }
            self.accounts.entry_or_default(j.requester).balance += escrow;
            let jm = self.jobs.get_mut(&id).expect("exists");
            jm.escrow = 0;
            jm.status = JobStatus::Expired;
            events.push(Event::JobExpired { job: id, silent });
        }
        events
    }

    fn charge(&mut self, from: Address, needed: u64, fee: u64) {
        self.accounts.entry_or_default(from).balance -= needed;
        self.treasury += fee;
    }

    fn pay(&mut self, node: &Address, amount: u64) {
        if amount == 0 {
            return;
        }
        let operator = self.nodes.get(node).map(|n| n.operator).unwrap_or(*node);
        self.accounts.entry_or_default(operator).balance += amount;
    }

    /// Settles or escalates a job once its current round is complete.
    fn progress(&mut self, job_id: Digest, block_seed: &[u8; 32], block_height: u64) -> Vec<Event> {
        let j = self.jobs[&job_id].clone();
        let mut events = vec![];
        match j.status {
            JobStatus::Pending if j.executors.iter().all(|e| j.results.contains_key(e)) => {
                let first = j.results[&j.executors[0]].1;
                if j.executors.iter().all(|e| j.results[e].1 == first) {
                    for e in &j.executors {
                        self.pay(e, j.fee_per_executor);
                    }
                    let refund = j.escrow - j.fee_per_executor * j.executors.len() as u64;
                    self.accounts.entry_or_default(j.requester).balance += refund;
                    let jm = self.jobs.get_mut(&job_id).expect("exists");
                    jm.escrow = 0;
                    jm.status = JobStatus::Settled(first);
                    events.push(Event::JobSettled { job: job_id, output_digest: first });
                } else {
                    // Re-execution by up to 2k+1 eligible nodes outside the original set.
                    let others: Vec<(Address, u64)> =
                        self.eligible().into_iter().filter(|(a, _)| !j.executors.contains(a)).collect();
                    // Seeded by the block, not by anything the executors wrote, so no executor can steer who
                    // judges it.
                    let k = (2 * j.executors.len() + 1).min(others.len());
                    let set = select_executors(&others, block_seed, &job_id, k);
                    let jm = self.jobs.get_mut(&job_id).expect("exists");
                    jm.dispute_set = set.clone();
                    jm.status = JobStatus::Disputed;
                    jm.deadline = block_height.saturating_add(self.params.job_timeout_blocks);
                    // With no eligible node outside the original set the dispute stays open: nobody independent
                    // is left to decide it.
                    events.push(Event::DisputeOpened { job: job_id, dispute_set: set });
                }
            }
            JobStatus::Disputed => {
                let votes: Vec<Digest> = j.dispute_set.iter().filter_map(|n| j.results.get(n).map(|r| r.1)).collect();
                let majority = j.dispute_set.len() / 2 + 1;
                let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
                votes.iter().for_each(|d| *counts.entry(*d).or_default() += 1);
                if let Some((winner, _)) = counts.into_iter().find(|(_, c)| *c >= majority) {
                    events.extend(self.resolve(job_id, winner));
                }
            }
            _ => {}
        }
        events
    }

    fn resolve(&mut self, job_id: Digest, winner: Digest) -> Vec<Event> {
        let j = self.jobs[&job_id].clone();
        let mut events = vec![];
        let mut slashed_total = 0u64;
        let everyone: Vec<Address> = j.executors.iter().chain(&j.dispute_set).copied().collect();
        for n in &everyone {
            if let Some((_, d)) = j.results.get(n)
                && *d != winner
            {
                let node = self.nodes.get_mut(n).expect("executors are registered nodes");
                let amount = node.slash(self.params.slash_bps);
                slashed_total += amount;
                events.push(Event::Slashed { node: *n, amount });
            }
        }
        // Honest original executors earn their fee; the rest of the escrow goes back to the requester.
        let honest: Vec<Address> =
            j.executors.iter().filter(|n| j.results.get(*n).map(|r| r.1) == Some(winner)).copied().collect();
        for n in &honest {
            self.pay(n, j.fee_per_executor);
        }
        let refund = j.escrow - j.fee_per_executor * honest.len() as u64;
        self.accounts.entry_or_default(j.requester).balance += refund;
        // Slashed stake rewards the re-executors who found the truth; any remainder goes to the treasury.
        let winners: Vec<Address> =
            j.dispute_set.iter().filter(|n| j.results.get(*n).map(|r| r.1) == Some(winner)).copied().collect();
        let share = slashed_total / winners.len().max(1) as u64;
        for n in &winners {
            self.pay(n, share);
        }
        self.treasury += slashed_total - share * winners.len() as u64;
        let jm = self.jobs.get_mut(&job_id).expect("exists");
        jm.escrow = 0;
        jm.status = JobStatus::Resolved(winner);
        events.push(Event::DisputeResolved { job: job_id, output_digest: winner });
        events
    }
}
