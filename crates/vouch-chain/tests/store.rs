//! A chain with its ledger state on disk: the accounts and models tables live in the ledger store, memory holds only
//! the entries changed since the last checkpoint, the roots and the sync-point bytes equal those of a chain that
//! keeps everything in memory, a restart resumes from the store's checkpoint, and a checkpoint that does not hash
//! to its recorded root is refused (and the store emptied).

use std::sync::Arc;

use bytes::Bytes;
use vouch_chain::index::TxIndex;
use vouch_chain::snapshot::{self, SnapshotError};
use vouch_chain::store::StateStore;
use vouch_chain::{Block, Chain, ChainHandle};
use vouch_codec::tx::{Address, SignedTx, Tx, TxKind};
use vouch_codec::{AgreementRule, DecodeError, ModelId, Writer, domain};
use vouch_crypto::NodeKey;
use vouch_ledger::{Backing, Genesis, Params};

const BLOCKS: u64 = 40;
const PER_BLOCK: u64 = 50;
const CHECKPOINT_EVERY: u64 = 10;

fn fresh(h: u64, i: u64) -> Address {
    *blake3::hash(&[h.to_be_bytes(), i.to_be_bytes()].concat()).as_bytes()
}

fn open(dir: &std::path::Path, genesis: &Genesis) -> ChainHandle {
    let index = TxIndex::open(&dir.join("txindex.redb")).unwrap();
    let store = StateStore::open(&dir.join("state.redb")).unwrap();
    Chain::on_disk(genesis.clone(), index, 2, store)
}

/// Blocks of transfers to fresh addresses (one new account per transfer), a model registered in the first.
fn blocks(alice: &NodeKey, chain: [u8; 32], genesis_block: &Block) -> Vec<Block> {
    let mut nonce = 0;
    let mut sign = |kind| {
        let tx = Tx { chain, from: alice.public_key(), nonce, fee: 1, kind };
        nonce += 1;
        let signature = alice.sign(domain::TX_SIGNATURE, &tx.id().0);
        Bytes::from(SignedTx { tx, signature }.to_bytes())
    };
    let mut parent = genesis_block.header().digest();
    let mut out = vec![];
    for h in 1..=BLOCKS {
        let mut txs: Vec<Bytes> =
            (0..PER_BLOCK).map(|i| sign(TxKind::Transfer { to: fresh(h, i), amount: 1 + i })).collect();
        if h == 1 {
            txs.push(sign(TxKind::RegisterModel {
                model: ModelId::of_bytes(b"store model"),
                name: "m@1".into(),
                commitment: vec![],
                rule: AgreementRule::Exact,
            }));
        }
        let block = Block::new(parent, h, h, txs);
        parent = block.header().digest();
        out.push(block);
    }
    out
}

#[test]
fn accounts_live_on_disk_and_memory_holds_only_what_changed_since_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let alice = NodeKey::from_secret([1; 32]);
    let genesis =
        Genesis { accounts: vec![(alice.public_key(), 10_000_000)], params: Params::default(), validators: vec![] };
    let disk = open(dir.path(), &genesis);
    let memory = Chain::new(genesis.clone());
    let blocks = blocks(&alice, disk.chain_id(), &disk.genesis_block());
    let mut checkpoint_bytes = vec![];
    for b in &blocks {
        let h = b.header().height;
        assert!(disk.execute(b) && memory.execute(b));
        assert_eq!(disk.root_at(h), memory.root_at(h), "same root at {h} on disk and in memory");
        let resident = disk.state().ledger.resident_entries();
        assert!(resident as u64 <= CHECKPOINT_EVERY * PER_BLOCK + 2, "{resident} entries resident at {h}");
        if h % CHECKPOINT_EVERY == 0 {
            assert!(disk.checkpoint());
            assert_eq!(disk.state().ledger.resident_entries(), 0, "a checkpoint leaves nothing in memory");
            let store = disk.store().unwrap();
            assert_eq!(store.len("accounts").unwrap(), 1 + h * PER_BLOCK);
            assert_eq!(store.len("models").unwrap(), 1);
            let status = disk.store_status().unwrap();
            assert_eq!(
                (status.accounts_on_disk, status.resident_entries, status.checkpoint_height),
                (1 + h * PER_BLOCK, 0, Some(h))
            );
            checkpoint_bytes = store.checkpoint().unwrap().unwrap().1;
        }
    }
    // Reads go through to the disk: every account and the model, as the in-memory chain has them.
    for (h, i) in [(1, 0), (17, 3), (BLOCKS, PER_BLOCK - 1)] {
        assert_eq!(disk.account(&fresh(h, i)), memory.account(&fresh(h, i)));
        assert_eq!(disk.account(&fresh(h, i)).balance, 1 + i);
    }
    assert_eq!(disk.account(&[7; 32]).balance, 0);
    let model = ModelId::of_bytes(b"store model");
    assert_eq!(disk.model(&model), memory.model(&model));
    assert!(disk.model(&model).is_some());
    // What a peer state-syncs from is the whole ledger, merged from disk and memory: the same bytes either way.
    let ledger_bytes = |c: &Chain| {
        let mut w = Writer::new();
        c.state().ledger.encode(&mut w);
        w.finish()
    };
    assert_eq!(ledger_bytes(&disk), ledger_bytes(&memory));
    assert_eq!(disk.state().ledger, memory.state().ledger, "equal entries wherever they live");
    assert_eq!(disk.state().ledger.root_from_scratch(), memory.state().ledger.root());
    // A checkpoint marks the tables that are on this node's disk: a peer never accepts that marker.
    let e = snapshot::decode(&checkpoint_bytes, &memory).unwrap_err();
    assert!(
        matches!(&e, SnapshotError::Decode(DecodeError::NonCanonical { what: "accounts", reason })
            if reason == "the entries are on another node's disk"),
        "{e}"
    );
    let root = disk.root_at(BLOCKS).unwrap();
    drop(disk);

    // Restarted: the checkpoint at the last multiple of the interval, nothing resident; the later blocks replay to
    // the same root.
    let again = open(dir.path(), &genesis);
    assert_eq!(again.restored_height(), Some(BLOCKS));
    assert_eq!(again.state().ledger.resident_entries(), 0);
    assert_eq!(again.state().ledger.root(), root);
    assert_eq!(again.account(&fresh(3, 4)).balance, 5);
    drop(again);
}

#[test]
fn a_restart_replays_the_blocks_after_the_checkpoint_and_a_tampered_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let alice = NodeKey::from_secret([2; 32]);
    let genesis =
        Genesis { accounts: vec![(alice.public_key(), 10_000_000)], params: Params::default(), validators: vec![] };
    let disk = open(dir.path(), &genesis);
    let memory = Chain::new(genesis.clone());
    let blocks = blocks(&alice, disk.chain_id(), &disk.genesis_block());
    for b in &blocks[..25] {
        assert!(disk.execute(b) && memory.execute(b));
        if b.header().height == 20 {
            assert!(disk.checkpoint());
        }
    }
    drop(disk);
    let again = open(dir.path(), &genesis);
    assert_eq!(again.restored_height(), Some(20));
    for b in &blocks[20..] {
        assert!(again.execute(b));
    }
    for b in &blocks[25..] {
        assert!(memory.execute(b));
    }
    assert_eq!(again.state().ledger.root(), memory.state().ledger.root());
    assert!(again.checkpoint());
    let (height, bytes) = again.store().unwrap().checkpoint().unwrap().unwrap();
    drop(again);

    // One stored balance changed by one unit (a corrupted or tampered disk): the checkpoint no longer hashes to the
    // root recorded for its height.
    let store = Arc::new(StateStore::open(&dir.path().join("state.redb")).unwrap());
    let key = fresh(4, 2);
    let entry = store.get("accounts", &key).unwrap().expect("on disk");
    let mut tampered = entry.clone();
    let last = tampered.len() - 9; // tag ‖ address ‖ balance ‖ nonce: the balance's low byte
    tampered[last] ^= 1;
    store.put(height, &[("accounts", vec![(key.to_vec(), Some(tampered))])], &bytes).unwrap();
    let probe = Chain::new(genesis.clone());
    let as_backing: Arc<dyn Backing> = store.clone();
    assert_eq!(snapshot::decode_local(&bytes, &probe, &as_backing).unwrap_err(), SnapshotError::RootMismatch);
    drop((as_backing, store));
    // The node refuses it at start: it starts from genesis over an emptied store (its blocks are in the archive).
    let refused = open(dir.path(), &genesis);
    assert_eq!(refused.restored_height(), None);
    assert_eq!(refused.state().height, 0);
    let store = refused.store().unwrap();
    assert!(store.is_empty().unwrap() && store.checkpoint().unwrap().is_none());
    assert_eq!(refused.account(&alice.public_key()).balance, 10_000_000);
    assert!(refused.execute(&blocks[0]));
    assert_eq!(refused.root_at(1), memory.root_at(1));
}
