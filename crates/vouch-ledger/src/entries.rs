//! The state root: every table entry's canonical bytes (a table tag, the key, the value), folded into an
//! [`LtHash`] incrementally after each transaction and block, and digested with the chain id and the treasury.
//! (Entries are encoded from borrowed `(key, value)` pairs by one function per table, with the canonical
//! [`Writer`], rather than through [`Canonical`] on an owned entry type: the fold runs for every changed entry of
//! every transaction, and must not clone jobs to hash them. `State::decode` in `snapshot.rs` reads them back.)

use vouch_codec::tx::Address;
use vouch_codec::{Canonical, Digest, ModelId, Writer, domain};

use crate::spill::Codec;
use crate::state::State;
use crate::table::{LtHash, Table};
use crate::types::{Account, Job, JobStatus, ModelRecord, NodeRecord, ValidatorRecord};

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
    w.str(&n.engine);
    w.u64(n.stake);
    w.u64(n.slashed);
    w.len(n.unbonding.len());
    for (h, a) in &n.unbonding {
        w.u64(*h);
        w.u64(*a);
    }
    match &n.attestation {
        None => w.u8(0),
        Some(a) => {
            w.u8(1);
            w.str(&a.platform);
            w.bytes(&a.measurement);
            w.str(&a.tcb_status);
            w.u64(a.expires_at_ms);
            w.raw(&a.evidence);
            w.u64(a.height);
        }
    }
}

/// A recent finalized block (what TEE attestations name for freshness): height, hash, time.
pub(crate) fn block_entry(w: &mut Writer, height: &u64, b: &([u8; 32], u64)) {
    w.u8(6);
    w.u64(*height);
    w.raw(&b.0);
    w.u64(b.1);
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

pub(crate) fn batch_entry(w: &mut Writer, root: &Digest, b: &(Address, u64, u32)) {
    w.u8(7);
    w.raw(&root.0);
    w.raw(&b.0);
    w.u64(b.1);
    w.u32(b.2);
}

pub(crate) fn validator_entry(w: &mut Writer, key: &Address, v: &ValidatorRecord) {
    w.u8(8);
    w.raw(key);
    w.raw(&v.operator);
    w.str(&v.p2p);
    w.u64(v.stake);
    w.len(v.unbonding.len());
    for (h, a) in &v.unbonding {
        w.u64(*h);
        w.u64(*a);
    }
}

// `&Vec`: every entry encoder has the table's `fn(&mut Writer, &K, &V)` shape.
#[allow(clippy::ptr_arg)]
pub(crate) fn validator_set_entry(w: &mut Writer, epoch: &u64, set: &Vec<Address>) {
    w.u8(9);
    w.u64(*epoch);
    w.len(set.len());
    set.iter().for_each(|k| w.raw(k));
}

/// The accounts table on disk: keyed by address.
pub(crate) static ACCOUNTS: Codec<Address, Account> =
    Codec { name: "accounts", key: |a| a.to_vec(), encode: account_entry, decode: crate::snapshot::read_account };

/// The models table on disk: keyed by the model id's CID bytes.
pub(crate) static MODELS: Codec<ModelId, ModelRecord> =
    Codec { name: "models", key: |id| id.to_cid_bytes(), encode: model_entry, decode: crate::snapshot::read_model };

fn entry_hash<K, V>(encode: fn(&mut Writer, &K, &V), k: &K, v: &V) -> LtHash {
    let mut w = Writer::new();
    encode(&mut w, k, v);
    LtHash::of(&w.finish())
}

/// Folds a table's changes into `acc`: the old entry out, the new one in.
fn fold<K, V>(acc: &mut LtHash, changes: Vec<(K, Option<V>, Option<V>)>, encode: fn(&mut Writer, &K, &V)) {
    for (k, old, new) in changes {
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

impl State {
    /// Folds every table's pending changes into the entry hash (after each transaction and block).
    pub(crate) fn commit(&mut self) {
        let mut acc = std::mem::take(&mut self.entries);
        fold(&mut acc, self.accounts.take_changes(), account_entry);
        fold(&mut acc, self.nodes.take_changes(), node_entry);
        fold(&mut acc, self.models.take_changes(), model_entry);
        fold(&mut acc, self.jobs.take_changes(), job_entry);
        fold(&mut acc, self.receipts.take_changes(), receipt_entry);
        fold(&mut acc, self.batches.take_changes(), batch_entry);
        fold(&mut acc, self.blocks.take_changes(), block_entry);
        fold(&mut acc, self.validators.take_changes(), validator_entry);
        fold(&mut acc, self.validator_sets.take_changes(), validator_set_entry);
        self.entries = acc;
    }

    pub(crate) fn entries_from_scratch(&self) -> LtHash {
        let mut acc = LtHash::default();
        self.accounts.for_each(|k, v| acc.add(&entry_hash(account_entry, k, v)));
        sum(&mut acc, &self.nodes, node_entry);
        self.models.for_each(|k, v| acc.add(&entry_hash(model_entry, k, v)));
        sum(&mut acc, &self.jobs, job_entry);
        sum(&mut acc, &self.receipts, receipt_entry);
        sum(&mut acc, &self.batches, batch_entry);
        sum(&mut acc, &self.blocks, block_entry);
        sum(&mut acc, &self.validators, validator_entry);
        sum(&mut acc, &self.validator_sets, validator_set_entry);
        acc
    }

    fn root_of(&self, entries: &LtHash) -> Digest {
        let mut w = Writer::new();
        w.raw(&self.chain);
        w.u64(self.treasury);
        w.raw(&entries.to_bytes());
        // Only once something was pruned, so states that never pruned keep their roots (every field before it has a
        // fixed length, so the encoding stays unambiguous).
        if self.pruned_settled > 0 {
            w.u64(self.pruned_settled);
        }
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
            || self.receipts.is_dirty()
            || self.batches.is_dirty()
            || self.blocks.is_dirty()
            || self.validators.is_dirty()
            || self.validator_sets.is_dirty();
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
}
