//! The canonical encoding of a whole [`State`] and of [`Event`]s, for a node's local snapshots (so a restart does
//! not replay the chain from genesis). Tables are written entry by entry in the same bytes their state-root hashes
//! cover; decoding rebuilds the tables and recomputes the entry hash from scratch, so a snapshot cannot smuggle in a
//! root that does not match its entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use vouch_codec::tx::Address;
use vouch_codec::{AgreementRule, Canonical, DecodeError, Digest, Mode, ModelId, Reader, Writer};

use crate::entries::{
    ACCOUNTS, MODELS, account_entry, batch_entry, block_entry, job_entry, model_entry, node_entry, receipt_entry,
    validator_entry, validator_set_entry,
};
use crate::spill::{Backing, Codec, Spill};
use crate::state::{State, Tables};
use crate::table::Table;
use crate::types::{Account, AttestationRecord, Event, Job, JobStatus, ModelRecord, NodeRecord, ValidatorRecord};

fn bad(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::NonCanonical { what, reason: reason.into() }
}

fn tag(r: &mut Reader<'_>, want: u8, what: &'static str) -> Result<(), DecodeError> {
    let t = r.u8(what)?;
    if t != want {
        return Err(bad(what, format!("entry tag {t}, expected {want}")));
    }
    Ok(())
}

fn model_id(r: &mut Reader<'_>) -> Result<ModelId, DecodeError> {
    ModelId::from_cid_bytes(r.bytes("model id")?).map_err(|e| bad("model id", e.to_string()))
}

fn addresses(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<Address>, DecodeError> {
    let n = r.count(what)?;
    (0..n).map(|_| r.array(what)).collect()
}

fn table<K: Ord + Clone, V: Clone>(
    r: &mut Reader<'_>,
    what: &'static str,
    mut entry: impl FnMut(&mut Reader<'_>) -> Result<(K, V), DecodeError>,
) -> Result<Table<K, V>, DecodeError> {
    let n = r.count(what)?;
    let mut map = BTreeMap::new();
    for _ in 0..n {
        let (k, v) = entry(r)?;
        if map.insert(k, v).is_some() {
            return Err(bad(what, "duplicate key"));
        }
    }
    Ok(Table::from(map))
}

/// An account entry's canonical bytes, read back.
pub(crate) fn read_account(r: &mut Reader<'_>) -> Result<(Address, Account), DecodeError> {
    tag(r, 1, "account")?;
    Ok((r.array("address")?, Account { balance: r.u64("balance")?, nonce: r.u64("nonce")? }))
}

/// A model entry's canonical bytes, read back.
pub(crate) fn read_model(r: &mut Reader<'_>) -> Result<(ModelId, ModelRecord), DecodeError> {
    tag(r, 3, "model")?;
    let id = model_id(r)?;
    let owner = r.array("owner")?;
    let name = r.str("model name")?.to_owned();
    let commitment = r.bytes("commitment")?.to_vec();
    let rule = AgreementRule::decode(r)?;
    Ok((id, ModelRecord { owner, name, commitment, rule }))
}

/// A spilled table's entries follow.
const INLINE: u8 = 0;
/// A spilled table is on the node's own disk (a local checkpoint's marker).
const ON_DISK: u8 = 1;

/// A spilled table: inline, or (`local`) a marker that its entries are on the node's disk.
fn write_spilled<K: Ord + Clone, V: Clone>(
    w: &mut Writer,
    t: &Spill<K, V>,
    encode: fn(&mut Writer, &K, &V),
    local: bool,
) {
    if local && t.is_backed() {
        w.u8(ON_DISK);
        return;
    }
    w.u8(INLINE);
    let mut entries = Writer::new();
    let mut n = 0usize;
    t.for_each(|k, v| {
        encode(&mut entries, k, v);
        n += 1;
    });
    w.len(n);
    w.raw(&entries.finish());
}

/// Reads [`write_spilled`]'s bytes. With `disk` (a local checkpoint's store), inline entries move onto it and the
/// on-disk marker is accepted; without, the marker is refused.
fn spilled<K: Ord + Clone, V: Clone>(
    r: &mut Reader<'_>,
    codec: &'static Codec<K, V>,
    disk: Option<&Arc<dyn Backing>>,
) -> Result<Spill<K, V>, DecodeError> {
    match r.u8(codec.name)? {
        INLINE => {
            let n = r.count(codec.name)?;
            let mut map = BTreeMap::new();
            for _ in 0..n {
                let (k, v) = (codec.decode)(r)?;
                if map.insert(k, v).is_some() {
                    return Err(bad(codec.name, "duplicate key"));
                }
            }
            let mut t = Spill::new(codec, map);
            if let Some(d) = disk {
                t.attach(d.clone());
            }
            Ok(t)
        }
        ON_DISK => {
            let Some(d) = disk else {
                return Err(bad(codec.name, "the entries are on another node's disk"));
            };
            let mut t = Spill::new(codec, BTreeMap::new());
            t.attach(d.clone());
            Ok(t)
        }
        v => Err(DecodeError::InvalidValue { what: "table marker", value: v.into() }),
    }
}

fn write_table<K: Ord + Clone, V: Clone>(w: &mut Writer, t: &Table<K, V>, encode: fn(&mut Writer, &K, &V)) {
    w.len(t.len());
    t.iter().for_each(|(k, v)| encode(w, k, v));
}

impl State {
    /// Appends the whole state (not its parameters, which come from the genesis).
    pub fn encode(&self, w: &mut Writer) {
        self.encode_parts(w, false);
    }

    /// [`State::encode`] for a local checkpoint: the tables that live on the node's disk are only marked as such.
    pub fn encode_local(&self, w: &mut Writer) {
        self.encode_parts(w, true);
    }

    fn encode_parts(&self, w: &mut Writer, local: bool) {
        w.raw(&self.chain);
        w.u64(self.treasury);
        write_spilled(w, &self.accounts, account_entry, local);
        write_table(w, &self.nodes, node_entry);
        write_spilled(w, &self.models, model_entry, local);
        write_table(w, &self.jobs, job_entry);
        write_table(w, &self.receipts, receipt_entry);
        write_table(w, &self.batches, batch_entry);
        write_table(w, &self.blocks, block_entry);
        w.u64(self.pruned_settled);
        write_table(w, &self.validators, validator_entry);
        write_table(w, &self.validator_sets, validator_set_entry);
    }

    /// Decodes [`State::encode`]'s bytes for the chain of `base` (a state of the same genesis, whose chain id and
    /// parameters are kept): every table inline, in memory.
    pub fn decode(r: &mut Reader<'_>, base: &State) -> Result<State, DecodeError> {
        Self::decode_with(r, base, None)
    }

    /// Decodes [`State::encode_local`]'s (or [`State::encode`]'s) bytes with the node's store `disk`: tables marked as
    /// on disk are read from it, inline ones move onto it (so `disk` must then hold none of their entries).
    pub fn decode_local(r: &mut Reader<'_>, base: &State, disk: &Arc<dyn Backing>) -> Result<State, DecodeError> {
        Self::decode_with(r, base, Some(disk))
    }

    fn decode_with(r: &mut Reader<'_>, base: &State, disk: Option<&Arc<dyn Backing>>) -> Result<State, DecodeError> {
        let chain: [u8; 32] = r.array("chain id")?;
        if chain != base.chain {
            return Err(bad("chain id", "the snapshot is of another chain"));
        }
        let treasury = r.u64("treasury")?;
        let accounts = spilled(r, &ACCOUNTS, disk)?;
        let nodes = table(r, "nodes", |r| {
            tag(r, 2, "node")?;
            let k: Address = r.array("node")?;
            let operator = r.array("operator")?;
            let endpoint = r.str("endpoint")?.to_owned();
            let engine = r.str("engine")?.to_owned();
            let stake = r.u64("stake")?;
            let slashed = r.u64("slashed")?;
            let n = r.count("unbonding")?;
            let unbonding =
                (0..n).map(|_| Ok((r.u64("release height")?, r.u64("amount")?))).collect::<Result<_, DecodeError>>()?;
            let attestation = match r.u8("attestation marker")? {
                0 => None,
                1 => Some(AttestationRecord {
                    platform: r.str("tee platform")?.to_owned(),
                    measurement: r.bytes("measurement")?.to_vec(),
                    tcb_status: r.str("tcb status")?.to_owned(),
                    expires_at_ms: r.u64("attestation expiry")?,
                    evidence: r.array("evidence digest")?,
                    height: r.u64("attestation height")?,
                }),
                v => return Err(DecodeError::InvalidValue { what: "attestation marker", value: v.into() }),
            };
            Ok((k, NodeRecord { operator, endpoint, engine, stake, slashed, unbonding, attestation }))
        })?;
        let models = spilled(r, &MODELS, disk)?;
        let jobs = table(r, "jobs", |r| {
            tag(r, 4, "job")?;
            let id = Digest(r.array("job id")?);
            let requester = r.array("requester")?;
            let model = model_id(r)?;
            let input_digest = Digest(r.array("input digest")?);
            let m = r.u8("mode")?;
            let mode = Mode::from_u8(m).ok_or(DecodeError::InvalidValue { what: "mode", value: m.into() })?;
            let fee_per_executor = r.u64("fee")?;
            let escrow = r.u64("escrow")?;
            let height = r.u64("height")?;
            let deadline = r.u64("deadline")?;
            let executors = addresses(r, "executors")?;
            let dispute_set = addresses(r, "dispute set")?;
            let n = r.count("results")?;
            let mut results = BTreeMap::new();
            for _ in 0..n {
                let node: Address = r.array("result node")?;
                results.insert(node, (Digest(r.array("receipt id")?), Digest(r.array("output digest")?)));
            }
            let status = match r.u8("job status")? {
                0 => JobStatus::Pending,
                1 => JobStatus::Settled(Digest(r.array("output digest")?)),
                2 => JobStatus::Disputed,
                3 => JobStatus::Resolved(Digest(r.array("output digest")?)),
                4 => JobStatus::Expired,
                v => return Err(DecodeError::InvalidValue { what: "job status", value: v.into() }),
            };
            let job = Job {
                requester,
                model,
                input_digest,
                mode,
                fee_per_executor,
                escrow,
                executors,
                dispute_set,
                results,
                status,
                height,
                deadline,
            };
            Ok((id, job))
        })?;
        let receipts = table(r, "receipts", |r| {
            tag(r, 5, "receipt")?;
            Ok((Digest(r.array("receipt id")?), (r.array("issuer")?, r.u64("height")?)))
        })?;
        let batches = table(r, "batches", |r| {
            tag(r, 7, "batch")?;
            Ok((Digest(r.array("batch root")?), (r.array("issuer")?, r.u64("height")?, r.u32("count")?)))
        })?;
        let blocks = table(r, "recent blocks", |r| {
            tag(r, 6, "recent block")?;
            Ok((r.u64("height")?, (r.array("block hash")?, r.u64("block time")?)))
        })?;
        let pruned_settled = r.u64("pruned settled receipts")?;
        let validators = table(r, "validators", |r| {
            tag(r, 8, "validator")?;
            let key: Address = r.array("validator key")?;
            let operator = r.array("operator")?;
            let p2p = r.str("p2p address")?.to_owned();
            let stake = r.u64("stake")?;
            let n = r.count("unbonding")?;
            let unbonding =
                (0..n).map(|_| Ok((r.u64("release height")?, r.u64("amount")?))).collect::<Result<_, DecodeError>>()?;
            Ok((key, ValidatorRecord { operator, p2p, stake, unbonding }))
        })?;
        let validator_sets = table(r, "validator sets", |r| {
            tag(r, 9, "validator set")?;
            Ok((r.u64("epoch")?, addresses(r, "validator set")?))
        })?;
        Ok(State::restore(
            base,
            Tables { accounts, nodes, models, jobs, receipts, batches, blocks, validators, validator_sets },
            treasury,
            pruned_settled,
        ))
    }
}

/// The event's tag, then its fields.
impl Canonical for Event {
    const WHAT: &'static str = "event";

    fn encode(&self, w: &mut Writer) {
        match self {
            Event::JobAssigned { job, executors } => {
                w.u8(1);
                w.raw(&job.0);
                w.len(executors.len());
                executors.iter().for_each(|e| w.raw(e));
            }
            Event::JobSettled { job, output_digest } => {
                w.u8(2);
                w.raw(&job.0);
                w.raw(&output_digest.0);
            }
            Event::DisputeOpened { job, dispute_set } => {
                w.u8(3);
                w.raw(&job.0);
                w.len(dispute_set.len());
                dispute_set.iter().for_each(|e| w.raw(e));
            }
            Event::DisputeResolved { job, output_digest } => {
                w.u8(4);
                w.raw(&job.0);
                w.raw(&output_digest.0);
            }
            Event::JobExpired { job, silent } => {
                w.u8(5);
                w.raw(&job.0);
                w.len(silent.len());
                silent.iter().for_each(|e| w.raw(e));
            }
            Event::ReceiptSettled { receipt } => {
                w.u8(6);
                w.raw(&receipt.0);
            }
            Event::Slashed { node, amount } => {
                w.u8(7);
                w.raw(node);
                w.u64(*amount);
            }
            Event::Unbonding { node, amount, release_height } => {
                w.u8(8);
                w.raw(node);
                w.u64(*amount);
                w.u64(*release_height);
            }
            Event::Unbonded { node, amount } => {
                w.u8(9);
                w.raw(node);
                w.u64(*amount);
            }
            Event::BatchSettled { root, count } => {
                w.u8(10);
                w.raw(&root.0);
                w.u32(*count);
            }
            Event::Pruned { jobs, receipts, batches } => {
                w.u8(11);
                w.u64(*jobs);
                w.u64(*receipts);
                w.u64(*batches);
            }
            Event::ValidatorSetChosen { epoch, validators } => {
                w.u8(12);
                w.u64(*epoch);
                w.len(validators.len());
                validators.iter().for_each(|k| w.raw(k));
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
        let job = |r: &mut Reader<'_>| r.array("job id").map(Digest);
        Ok(match r.u8("event")? {
            1 => Event::JobAssigned { job: job(r)?, executors: addresses(r, "executors")? },
            2 => Event::JobSettled { job: job(r)?, output_digest: Digest(r.array("output digest")?) },
            3 => Event::DisputeOpened { job: job(r)?, dispute_set: addresses(r, "dispute set")? },
            4 => Event::DisputeResolved { job: job(r)?, output_digest: Digest(r.array("output digest")?) },
            5 => Event::JobExpired { job: job(r)?, silent: addresses(r, "silent")? },
            6 => Event::ReceiptSettled { receipt: Digest(r.array("receipt id")?) },
            7 => Event::Slashed { node: r.array("node")?, amount: r.u64("amount")? },
            8 => Event::Unbonding {
                node: r.array("node")?,
                amount: r.u64("amount")?,
                release_height: r.u64("release height")?,
            },
            9 => Event::Unbonded { node: r.array("node")?, amount: r.u64("amount")? },
            10 => Event::BatchSettled { root: Digest(r.array("batch root")?), count: r.u32("batch count")? },
            11 => Event::Pruned {
                jobs: r.u64("pruned jobs")?,
                receipts: r.u64("pruned receipts")?,
                batches: r.u64("pruned batches")?,
            },
            12 => Event::ValidatorSetChosen { epoch: r.u64("epoch")?, validators: addresses(r, "validator set")? },
            v => return Err(DecodeError::InvalidValue { what: "event", value: v.into() }),
        })
    }
}

impl Event {
    /// A counted list of events.
    pub fn encode_list(w: &mut Writer, events: &[Event]) {
        w.len(events.len());
        events.iter().for_each(|e| e.encode(w));
    }

    /// Decodes [`Event::encode_list`]'s bytes.
    pub fn decode_list(r: &mut Reader<'_>) -> Result<Vec<Event>, DecodeError> {
        let n = r.count("events")?;
        (0..n).map(|_| Event::decode(r)).collect()
    }
}
