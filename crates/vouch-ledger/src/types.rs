//! The ledger's records: parameters and genesis, accounts, executor nodes, models, jobs, and the events a
//! transaction emits.

use std::collections::BTreeMap;

use vouch_codec::tx::Address;
use vouch_codec::{AgreementRule, Canonical, DecodeError, Digest, Mode, ModelId, Reader, Writer};

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
    /// What a node's TEE attestation must satisfy.
    pub tee: TeeParams,
    /// Blocks a finished record stays in the ledger state: a finished job (after its last deadline), a single
    /// settlement and a settled batch (after their height). Then it leaves the state (pruned every
    /// [`PRUNE_EVERY`] blocks), so the state holds what is live, not the chain's history; the blocks still prove
    /// it (an anchor is a block inclusion under a finalization certificate, never a state lookup). 0 keeps
    /// everything.
    pub retention_blocks: u64,
    /// Who validates: a fixed genesis set (the default), or sets chosen by bonded stake at epoch boundaries.
    pub validators: ValidatorParams,
}

/// How the validator set changes (the `[params.validators]` section of a chain spec).
///
/// With `epoch_length` 0 (the default) the genesis validators validate forever. Otherwise heights are cut into
/// epochs of `epoch_length` blocks (epoch `e` is heights `e·L ..= e·L + L − 1`, so genesis is in epoch 0). The set of
/// epoch `e + 2` is chosen when the last block of epoch `e` executes, from the keys bonded (`BondValidator`) with at
/// least `min_stake`: the `max_validators` largest stakes (ties by key). The last block of epoch `e` carries the set
/// of epoch `e + 1` (already fixed a whole epoch before), so a verifier follows the sets from the genesis through
/// finalized blocks alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorParams {
    /// Blocks per epoch (0: a fixed set; otherwise at least 2).
    pub epoch_length: u64,
    /// Smallest bond of a validator candidate; each genesis validator starts bonded with this much (minted at
    /// genesis, owned by the account of its consensus key).
    pub min_stake: u64,
    /// Largest validator set.
    pub max_validators: u32,
    /// Blocks between a validator's departure from the set and the return of its stake.
    pub unbonding_blocks: u64,
}

impl Default for ValidatorParams {
    fn default() -> Self {
        Self { epoch_length: 0, min_stake: 10_000, max_validators: 32, unbonding_blocks: 1_800 }
    }
}

impl ValidatorParams {
    /// Whether the set changes at epoch boundaries.
    pub fn epochs(&self) -> bool {
        self.epoch_length > 0
    }

    /// The epoch of `height` (0 for a fixed set).
    pub fn epoch_of(&self, height: u64) -> u64 {
        if self.epochs() { height / self.epoch_length } else { 0 }
    }

    /// Whether `height` is the last block of its epoch (never for a fixed set).
    pub fn is_boundary(&self, height: u64) -> bool {
        self.epochs() && (height + 1).is_multiple_of(self.epoch_length)
    }

    /// The last height of `epoch`.
    pub fn last_height(&self, epoch: u64) -> u64 {
        epoch.saturating_add(1).saturating_mul(self.epoch_length).saturating_sub(1)
    }
}

/// Blocks between two prunings of finished records (heights that are multiples of it).
pub const PRUNE_EVERY: u64 = 256;
/// The default [`Params::retention_blocks`].
pub const DEFAULT_RETENTION_BLOCKS: u64 = 100_000;

/// The chain's TEE policy (the `[params.tee]` section of a chain spec).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeeParams {
    /// Allowed launch measurements (hex); empty: any (each node's is recorded and shown).
    pub measurements: Vec<String>,
    /// Accepted TCB statuses.
    pub accepted_tcb: Vec<String>,
    /// How long an attestation stays valid after its freshness block (seconds); nodes re-attest before.
    pub attestation_ttl_s: u64,
    /// How many recent finalized blocks an attestation's freshness hash may name.
    pub freshness_blocks: u64,
    /// Simulated-platform roots this chain accepts (hex). Empty: simulated attestations are refused.
    pub simulated_roots: Vec<String>,
}

impl Default for TeeParams {
    fn default() -> Self {
        Self {
            measurements: vec![],
            accepted_tcb: vec![vouch_tee::policy::UP_TO_DATE.into()],
            attestation_ttl_s: 24 * 3600,
            freshness_blocks: 256,
            simulated_roots: vec![],
        }
    }
}

impl TeeParams {
    /// The verification policy validators apply.
    pub fn policy(&self) -> vouch_tee::Policy {
        vouch_tee::Policy {
            accepted_tcb: self.accepted_tcb.clone(),
            measurements: self.measurements.clone(),
            max_age_s: self.attestation_ttl_s,
            allow_simulated: !self.simulated_roots.is_empty(),
            simulated_roots: self.simulated_roots.clone(),
            ..vouch_tee::Policy::default()
        }
    }

    fn encode(&self, w: &mut Writer) {
        let strs = |w: &mut Writer, v: &[String]| {
            w.len(v.len());
            v.iter().for_each(|s| w.str(s));
        };
        strs(w, &self.measurements);
        strs(w, &self.accepted_tcb);
        w.u64(self.attestation_ttl_s);
        w.u64(self.freshness_blocks);
        strs(w, &self.simulated_roots);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let strs = |r: &mut Reader<'_>, what: &'static str| -> Result<Vec<String>, DecodeError> {
            let n = r.count(what)?;
            (0..n).map(|_| Ok(r.str(what)?.to_owned())).collect()
        };
        Ok(Self {
            measurements: strs(r, "tee measurements")?,
            accepted_tcb: strs(r, "tee accepted tcb")?,
            attestation_ttl_s: r.u64("tee attestation ttl")?,
            freshness_blocks: r.u64("tee freshness blocks")?,
            simulated_roots: strs(r, "tee simulated roots")?,
        })
    }
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
            tee: TeeParams::default(),
            retention_blocks: DEFAULT_RETENTION_BLOCKS,
            validators: ValidatorParams::default(),
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
    /// The chain id: the hash of the genesis's canonical bytes, which every transaction commits to.
    pub fn chain_id(&self) -> [u8; 32] {
        *blake3::hash(&self.to_canonical()).as_bytes()
    }
}

/// Magic of a genesis's canonical bytes.
const GENESIS_MAGIC: &[u8; 16] = b"VOUCH_GENESIS_V1";

/// `VOUCH_GENESIS_V1`, the funded accounts, the parameters, the validators' consensus keys.
impl Canonical for Genesis {
    const WHAT: &'static str = "genesis";

    fn encode(&self, w: &mut Writer) {
        w.raw(GENESIS_MAGIC);
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
        // Later sections (marker, contents, in marker order) only when they differ from the default, so chains that
        // never set them keep their ids: 1 the TEE policy, 2 the retention.
        if p.tee != TeeParams::default() {
            w.u8(1);
            p.tee.encode(w);
        }
        if p.retention_blocks != DEFAULT_RETENTION_BLOCKS {
            w.u8(2);
            w.u64(p.retention_blocks);
        }
        if p.validators != ValidatorParams::default() {
            let v = &p.validators;
            w.u8(3);
            w.u64(v.epoch_length);
            w.u64(v.min_stake);
            w.u32(v.max_validators);
            w.u64(v.unbonding_blocks);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.take(GENESIS_MAGIC.len(), "genesis magic")? != GENESIS_MAGIC {
            return Err(DecodeError::NonCanonical { what: "genesis", reason: "bad magic bytes".into() });
        }
        let n = r.count("genesis accounts")?;
        let accounts =
            (0..n).map(|_| Ok((r.array("account")?, r.u64("balance")?))).collect::<Result<Vec<_>, DecodeError>>()?;
        let params = Params {
            min_fee: r.u64("min fee")?,
            min_stake: r.u64("min stake")?,
            slash_bps: r.u64("slash bps")?,
            max_quorum: r.u8("max quorum")?,
            max_endpoint_len: usize::try_from(r.u64("max endpoint length")?)
                .map_err(|_| DecodeError::InvalidValue { what: "max endpoint length", value: u64::MAX })?,
            job_timeout_blocks: r.u64("job timeout")?,
            unbonding_blocks: r.u64("unbonding blocks")?,
            tee: TeeParams::default(),
            retention_blocks: DEFAULT_RETENTION_BLOCKS,
            validators: ValidatorParams::default(),
        };
        let n = r.count("validators")?;
        let validators = (0..n).map(|_| r.array("validator")).collect::<Result<Vec<_>, DecodeError>>()?;
        let mut params = params;
        let mut last = 0;
        let bad = |reason: &str| DecodeError::NonCanonical { what: "genesis", reason: reason.into() };
        while r.remaining() > 0 {
            let marker = r.u8("genesis section")?;
            if marker <= last {
                return Err(bad("genesis sections out of order"));
            }
            last = marker;
            match marker {
                1 => {
                    params.tee = TeeParams::decode(r)?;
                    if params.tee == TeeParams::default() {
                        return Err(bad("a default tee section is omitted"));
                    }
                }
                2 => {
                    params.retention_blocks = r.u64("retention blocks")?;
                    if params.retention_blocks == DEFAULT_RETENTION_BLOCKS {
                        return Err(bad("a default retention section is omitted"));
                    }
                }
                3 => {
                    params.validators = ValidatorParams {
                        epoch_length: r.u64("epoch length")?,
                        min_stake: r.u64("validator min stake")?,
                        max_validators: r.u32("max validators")?,
                        unbonding_blocks: r.u64("validator unbonding blocks")?,
                    };
                    if params.validators == ValidatorParams::default() {
                        return Err(bad("a default validators section is omitted"));
                    }
                }
                _ => return Err(bad("unknown genesis section")),
            }
        }
        Ok(Self { accounts, params, validators })
    }
}

/// Where a transaction is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCtx {
    /// Block height.
    pub height: u64,
    /// A value no proposer controls alone (the previous finalized block's hash): seeds executor selection.
    pub seed: [u8; 32],
    /// The block's timestamp (Unix ms): "now" for time-dependent checks such as TEE attestations.
    pub time_ms: u64,
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
    /// The engine string the node declared (`SetEngine`; empty until it does). A job's executors share one.
    pub engine: String,
    /// Locked stake.
    pub stake: u64,
    /// Total slashed so far.
    pub slashed: u64,
    /// Stake on its way back to the operator: (height at which it is released, amount), oldest first. Still
    /// slashable until released.
    pub unbonding: Vec<(u64, u64)>,
    /// Its latest accepted TEE attestation.
    pub attestation: Option<AttestationRecord>,
}

/// A bonded validator key (chains with epochs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorRecord {
    /// The account that bonded it (receives the stake back).
    pub operator: Address,
    /// Where it listens for peers (`ip:port`; empty for a genesis validator, whose address is in the chain spec).
    pub p2p: String,
    /// Bonded stake (0 once unbonded).
    pub stake: u64,
    /// Stake on its way back: (release height, amount).
    pub unbonding: Vec<(u64, u64)>,
}

impl ValidatorRecord {
    /// Stake plus what is unbonding.
    pub fn locked(&self) -> u64 {
        self.stake.saturating_add(self.unbonding.iter().map(|(_, a)| *a).sum())
    }
}

/// A node's TEE attestation as the ledger accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRecord {
    /// `tdx`, `sev-snp`, `nitro` or `simulated`.
    pub platform: String,
    /// The launch measurement.
    pub measurement: Vec<u8>,
    /// The TCB status accepted.
    pub tcb_status: String,
    /// When it stops being valid (Unix ms).
    pub expires_at_ms: u64,
    /// The accepted evidence's digest (`TeeEvidence::digest`): the one the node's `tee` receipts carry.
    pub evidence: [u8; 32],
    /// Height of the block that recorded it.
    pub height: u64,
}

impl AttestationRecord {
    /// Whether it is valid at `now_ms`.
    pub fn valid_at(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

impl NodeRecord {
    /// Stake plus what is unbonding: what a slash is a share of.
    pub fn slashable(&self) -> u64 {
        self.stake.saturating_add(self.unbonding.iter().map(|(_, a)| *a).sum())
    }

    /// Takes `bps` basis points of the slashable amount, from the stake first, then from the newest unbonding
    /// entries; returns the amount taken.
    pub(crate) fn slash(&mut self, bps: u64) -> u64 {
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
    /// Finished records older than the retention left the state (counts).
    Pruned {
        /// Jobs.
        jobs: u64,
        /// Single settlements.
        receipts: u64,
        /// Batches.
        batches: u64,
    },
    /// A batch of receipts was settled.
    BatchSettled {
        /// Merkle root over the members.
        root: Digest,
        /// Member count.
        count: u32,
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
    /// The validator set of an epoch was chosen (at the end of the epoch two before it).
    ValidatorSetChosen {
        /// The epoch it validates.
        epoch: u64,
        /// Its consensus keys, in order.
        validators: Vec<Address>,
    },
    /// A node lost stake.
    Slashed {
        /// The node.
        node: Address,
        /// Amount.
        amount: u64,
    },
}
