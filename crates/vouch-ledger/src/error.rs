//! Why a transaction was rejected.

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
    /// A TEE attestation is refused (the check that failed).
    #[error("attestation refused: {0}")]
    Attestation(String),
    /// A validator transaction on a chain without epochs.
    #[error("this chain's validator set is fixed at genesis (no epochs)")]
    FixedValidatorSet,
    /// The consensus key's proof of possession does not verify.
    #[error("bad validator key proof of possession")]
    BadValidatorSignature,
    /// A validator's p2p address does not parse as `ip:port`.
    #[error("bad p2p address {0:?} (expected ip:port)")]
    BadP2pAddress(String),
    /// Another validator already uses this p2p address.
    #[error("p2p address {0} is already used by another validator")]
    P2pAddressInUse(String),
    /// No such bonded validator key.
    #[error("unknown validator {0}")]
    UnknownValidator(String),
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
    /// The batch root is already settled.
    #[error("batch {0} is already settled")]
    BatchSettled(String),
    /// The batch is malformed.
    #[error("bad batch: {0}")]
    BadBatch(String),
    /// The node's receipt signature does not verify.
    #[error("bad receipt signature by node {0}")]
    BadResultSignature(String),
}
