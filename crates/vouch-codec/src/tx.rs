//! Ledger transactions and their canonical encoding.
//!
//! A signed transaction is `magic "VOUCHTX1"`, the body, then the sender's ed25519 signature over
//! `VOUCH_TX_V1 || blake3_derive_key(VOUCH_TX_ID_V1, body)`. The body starts with the chain id (the genesis
//! hash), so a transaction signed for one network is invalid on every other; the sender's nonce makes each
//! one usable once.

use crate::canon::{Canonical, DecodeError, Reader, Writer};
use crate::digest::{Digest, domain};
use crate::model_id::ModelId;
use crate::receipt::{AgreementRule, Mode};

/// Magic bytes of a signed transaction.
pub const TX_MAGIC: &[u8; 8] = b"VOUCHTX1";
/// Largest encoded transaction accepted from a peer or client.
pub const MAX_TX_BYTES: usize = 16 * 1024;

/// An account or node identity: an ed25519 public key.
pub type Address = [u8; 32];

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxKind {
    /// Moves `amount` to `to` (tag 1).
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount.
        amount: u64,
    },
    /// Registers an executor node operated by the sender, locking `stake` (tag 2). `node_signature` is the
    /// node key's signature over `VOUCH_NODE_BIND_V1 || sender`, proving the sender holds that key.
    RegisterNode {
        /// The node's identity (receipt-signing) key.
        node: Address,
        /// Where it serves the API.
        endpoint: String,
        /// Stake locked from the sender's balance.
        stake: u64,
        /// Proof of possession of the node key.
        node_signature: [u8; 64],
    },
    /// Locks more stake on an own node (tag 3).
    AddStake {
        /// The node.
        node: Address,
        /// Amount.
        amount: u64,
    },
    /// Records a model owned by the sender (tag 4).
    RegisterModel {
        /// Content id.
        model: ModelId,
        /// `name@version`.
        name: String,
        /// The model's zk commitment, if any.
        commitment: Vec<u8>,
        /// When two executions agree in `quorum` mode: `Exact` (integer models) or the float model's declared
        /// tolerance. Executors read it from the ledger, never from the requester.
        rule: AgreementRule,
    },
    /// Asks for an inference; escrows `quorum * fee_per_executor` (tag 5). The ledger assigns the executors.
    SubmitJob {
        /// The model.
        model: ModelId,
        /// Digest of the canonical inputs.
        input_digest: Digest,
        /// Verification mode (`signed` or `quorum`).
        mode: Mode,
        /// Executors wanted.
        quorum: u8,
        /// Paid to each honest executor.
        fee_per_executor: u64,
    },
    /// An assigned executor's result for a job (tag 6): its receipt body (canonical bytes) and the node's
    /// receipt signature over that body's id. Anyone may relay it; the signature authenticates the node.
    SubmitResult {
        /// Job id.
        job: Digest,
        /// The executing node.
        node: Address,
        /// Canonical receipt body (model, input and output digests, job, executors).
        body: Vec<u8>,
        /// The node's receipt signature (`VOUCH_RECEIPT_V1 || receipt id`).
        signature: [u8; 64],
    },
    /// Starts returning `amount` of an own node's stake to the sender (tag 8): it leaves the stake at once (so the
    /// node may fall below the minimum and stop being assigned work), stays slashable, and reaches the sender's
    /// balance `unbonding_blocks` later.
    Unbond {
        /// The node.
        node: Address,
        /// Amount.
        amount: u64,
    },
    /// Settles a receipt the sender issued (tag 7): the sender is the executing node's identity key, so the signed
    /// transaction is the node's on-ledger statement that it issued the receipt with this id.
    SettleReceipt {
        /// The receipt id.
        receipt: Digest,
    },
    /// Settles a batch of receipts the sender issued (tag 11): `root` is the root of a binary Merkle tree
    /// (`commonware_storage::bmt` over SHA-256, which binds each leaf's position and the leaf count) whose leaves are
    /// `sha256("VOUCH_SETTLE_LEAF_V1" || receipt id || executor)`, the executor being the sender; `count` is the
    /// number of leaves. The ledger records the root, not the members: a member's anchor carries its path to the
    /// root (`vouch_chain::batch`).
    SettleBatch {
        /// Merkle root over the members.
        root: Digest,
        /// Number of members (1 ..= [`MAX_BATCH_RECEIPTS`]).
        count: u32,
    },
    /// Declares the inference engines a node runs (tag 9), sent by its operator or by the node key itself: the
    /// engine builds and CPU kernel tiers whose results it signs (e.g. `tract 0.23.9; llama.cpp (...) cpu x86_64+avx2`).
    /// A job's executors are drawn among nodes that declare the same string, so honest nodes never disagree
    /// because their builds round differently.
    SetEngine {
        /// The node.
        node: Address,
        /// Its engine string (at most [`MAX_ENGINE_LEN`] bytes).
        engine: String,
    },
    /// Records a node's TEE attestation (tag 10), sent by its operator or by the node key itself. Validators verify
    /// the evidence with the block's time as "now": the vendor chain, the chain parameters' TEE policy, a report
    /// data binding `node`, this chain and one of its recent finalized block hashes.
    Attest {
        /// The node.
        node: Address,
        /// Its evidence.
        evidence: crate::tee::TeeEvidence,
    },
    /// Bonds `stake` from the sender on a consensus (ed25519) key (tag 12), or adds `stake` to a key the sender
    /// already bonded. A bonded key with at least the chain's minimum validator stake is a candidate for the
    /// validator set of the epoch after next (chains with epochs only). `key_signature` is the consensus key's
    /// signature over `VOUCH_VALIDATOR_BIND_V1 || sender`; `p2p` is where the validator listens for peers
    /// (`ip:port`, unique among validators).
    BondValidator {
        /// The consensus key.
        key: Address,
        /// Its p2p address.
        p2p: String,
        /// Stake locked from the sender's balance.
        stake: u64,
        /// Proof of possession of the consensus key.
        key_signature: [u8; 64],
    },
    /// Unbonds all of a validator key's stake (tag 13), sent by the account that bonded it: the key stops being a
    /// candidate at once (it leaves the set at the epoch after next) and the stake returns once the validator has
    /// left the set plus `unbonding_blocks`.
    UnbondValidator {
        /// The consensus key.
        key: Address,
    },
}

/// Most receipts one `SettleBatch` may settle.
pub const MAX_BATCH_RECEIPTS: u32 = 1 << 20;

/// Longest engine string a node may declare.
pub const MAX_ENGINE_LEN: usize = 256;

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    /// Genesis hash of the network.
    pub chain: [u8; 32],
    /// Sender.
    pub from: Address,
    /// Sender's next nonce.
    pub nonce: u64,
    /// Fee paid to the treasury.
    pub fee: u64,
    /// The action.
    pub kind: TxKind,
}

/// A transaction with the sender's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The transaction.
    pub tx: Tx,
    /// Sender's ed25519 signature over `VOUCH_TX_V1 || id`.
    pub signature: [u8; 64],
}

/// Refuses more than [`MAX_TX_BYTES`] before decoding anything.
fn check_size(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > MAX_TX_BYTES {
        return Err(DecodeError::TooLarge { what: "transaction", len: bytes.len() as u64, max: MAX_TX_BYTES as u64 });
    }
    Ok(())
}

/// Chain, sender, nonce, fee, then the kind's tag and fields.
impl Canonical for Tx {
    const WHAT: &'static str = "transaction";

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.chain);
        w.raw(&self.from);
        w.u64(self.nonce);
        w.u64(self.fee);
        match &self.kind {
            TxKind::Transfer { to, amount } => {
                w.u8(1);
                w.raw(to);
                w.u64(*amount);
            }
            TxKind::RegisterNode { node, endpoint, stake, node_signature } => {
                w.u8(2);
                w.raw(node);
                w.str(endpoint);
                w.u64(*stake);
                w.raw(node_signature);
            }
            TxKind::AddStake { node, amount } => {
                w.u8(3);
                w.raw(node);
                w.u64(*amount);
            }
            TxKind::RegisterModel { model, name, commitment, rule } => {
                w.u8(4);
                w.bytes(&model.to_cid_bytes());
                w.str(name);
                w.bytes(commitment);
                rule.encode(w);
            }
            TxKind::SubmitJob { model, input_digest, mode, quorum, fee_per_executor } => {
                w.u8(5);
                w.bytes(&model.to_cid_bytes());
                w.raw(&input_digest.0);
                w.u8(*mode as u8);
                w.u8(*quorum);
                w.u64(*fee_per_executor);
            }
            TxKind::SubmitResult { job, node, body, signature } => {
                w.u8(6);
                w.raw(&job.0);
                w.raw(node);
                w.bytes(body);
                w.raw(signature);
            }
            TxKind::SettleReceipt { receipt } => {
                w.u8(7);
                w.raw(&receipt.0);
            }
            TxKind::Unbond { node, amount } => {
                w.u8(8);
                w.raw(node);
                w.u64(*amount);
            }
            TxKind::SetEngine { node, engine } => {
                w.u8(9);
                w.raw(node);
                w.str(engine);
            }
            TxKind::Attest { node, evidence } => {
                w.u8(10);
                w.raw(node);
                evidence.encode(w);
            }
            TxKind::SettleBatch { root, count } => {
                w.u8(11);
                w.raw(&root.0);
                w.u32(*count);
            }
            TxKind::BondValidator { key, p2p, stake, key_signature } => {
                w.u8(12);
                w.raw(key);
                w.str(p2p);
                w.u64(*stake);
                w.raw(key_signature);
            }
            TxKind::UnbondValidator { key } => {
                w.u8(13);
                w.raw(key);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let chain = r.array("chain")?;
        let from = r.array("from")?;
        let nonce = r.u64("nonce")?;
        let fee = r.u64("fee")?;
        let model = |r: &mut Reader<'_>| {
            ModelId::from_cid_bytes(r.bytes("model id")?)
                .map_err(|e| DecodeError::NonCanonical { what: "model id", reason: e.to_string() })
        };
        let kind = match r.u8("tx kind")? {
            1 => TxKind::Transfer { to: r.array("to")?, amount: r.u64("amount")? },
            2 => TxKind::RegisterNode {
                node: r.array("node")?,
                endpoint: r.str("endpoint")?.to_owned(),
                stake: r.u64("stake")?,
                node_signature: r.array("node signature")?,
            },
            3 => TxKind::AddStake { node: r.array("node")?, amount: r.u64("amount")? },
            4 => TxKind::RegisterModel {
                model: model(r)?,
                name: r.str("model name")?.to_owned(),
                commitment: r.bytes("commitment")?.to_vec(),
                rule: AgreementRule::decode(r)?,
            },
            5 => TxKind::SubmitJob {
                model: model(r)?,
                input_digest: Digest(r.array("input digest")?),
                mode: {
                    let m = r.u8("mode")?;
                    Mode::from_u8(m).ok_or(DecodeError::InvalidValue { what: "mode", value: m.into() })?
                },
                quorum: r.u8("quorum")?,
                fee_per_executor: r.u64("fee per executor")?,
            },
            6 => TxKind::SubmitResult {
                job: Digest(r.array("job")?),
                node: r.array("node")?,
                body: r.bytes("receipt body")?.to_vec(),
                signature: r.array("signature")?,
            },
            7 => TxKind::SettleReceipt { receipt: Digest(r.array("receipt id")?) },
            8 => TxKind::Unbond { node: r.array("node")?, amount: r.u64("amount")? },
            9 => TxKind::SetEngine { node: r.array("node")?, engine: r.str("engine")?.to_owned() },
            10 => TxKind::Attest { node: r.array("node")?, evidence: crate::tee::TeeEvidence::decode(r)? },
            11 => TxKind::SettleBatch { root: Digest(r.array("batch root")?), count: r.u32("batch count")? },
            12 => TxKind::BondValidator {
                key: r.array("validator key")?,
                p2p: r.str("p2p address")?.to_owned(),
                stake: r.u64("stake")?,
                key_signature: r.array("validator key signature")?,
            },
            13 => TxKind::UnbondValidator { key: r.array("validator key")? },
            v => return Err(DecodeError::InvalidValue { what: "tx kind", value: v.into() }),
        };
        Ok(Self { chain, from, nonce, fee, kind })
    }
}

impl Tx {
    /// Canonical body bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_canonical()
    }

    /// Decodes exactly one unsigned transaction (what a node hands a client to sign) of at most [`MAX_TX_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_size(bytes)?;
        Self::from_canonical(bytes)
    }

    /// The transaction id (what the sender signs).
    pub fn id(&self) -> Digest {
        Digest::of(domain::TX_ID, &self.to_bytes())
    }
}

/// The magic, the transaction, its signature.
impl Canonical for SignedTx {
    const WHAT: &'static str = "transaction";

    fn encode(&self, w: &mut Writer) {
        w.raw(TX_MAGIC);
        self.tx.encode(w);
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.take(TX_MAGIC.len(), "tx magic")? != TX_MAGIC {
            return Err(DecodeError::NonCanonical { what: "transaction", reason: "bad magic bytes".into() });
        }
        let tx = Tx::decode(r)?;
        let signature = r.array("tx signature")?;
        Ok(Self { tx, signature })
    }
}

impl SignedTx {
    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_canonical()
    }

    /// Decodes exactly one signed transaction of at most [`MAX_TX_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_size(bytes)?;
        Self::from_canonical(bytes)
    }
}
