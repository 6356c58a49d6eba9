//! A chain with an on-disk index keeps only its recent blocks' records, headers and roots in memory; older records
//! and roots are served from the index, a resubmitted old transaction is still refused as finalized, a block that includes it again does
//! not overwrite its record, and the index survives reopening.

use bytes::Bytes;
use vouch_chain::index::TxIndex;
use vouch_chain::{Block, Chain, SubmitError};
use vouch_codec::domain;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_crypto::NodeKey;
use vouch_ledger::{Genesis, Params};

#[test]
fn old_records_move_to_the_index_and_stay_authoritative() {
    let dir = tempfile::tempdir().unwrap();
    let alice = NodeKey::from_secret([1; 32]);
    let genesis =
        Genesis { accounts: vec![(alice.public_key(), 1_000)], params: Params::default(), validators: vec![] };
    let path = dir.path().join("txindex.redb");
    let chain = Chain::with_index(genesis.clone(), TxIndex::open(&path).unwrap(), 2);
    let tx = |nonce: u64| {
        let tx = Tx {
            chain: chain.chain_id(),
            from: alice.public_key(),
            nonce,
            fee: 1,
            kind: TxKind::Transfer { to: [9; 32], amount: 1 },
        };
        let signature = alice.sign(domain::TX_SIGNATURE, &tx.id().0);
        SignedTx { tx, signature }
    };
    let mut parent = chain.genesis_block().header().digest();
    let mut ids = vec![];
    let mut blocks = vec![];
    let mut roots = vec![];
    for h in 1..=6u64 {
        let stx = tx(h - 1);
        ids.push(stx.tx.id());
        let block = Block::new(parent, h, h, vec![Bytes::from(stx.to_bytes())]);
        assert!(chain.execute(&block));
        roots.push(chain.root_at(h).unwrap());
        parent = block.header().digest();
        blocks.push(block);
    }
    // Memory keeps the genesis header and the recent ones; every height's root is still served (older from the index).
    let headers: Vec<u64> = chain.state().headers.keys().copied().collect();
    assert_eq!(headers, vec![0, 5, 6]);
    for h in 1..=6u64 {
        assert_eq!(chain.root_at(h), Some(roots[h as usize - 1]), "root at {h}");
    }
    let root = chain.state().ledger.root();
    // Memory holds the last two blocks' records (evicted every 2 blocks), the index all six.
    let in_memory: Vec<u64> = chain.state().txs.values().map(|r| r.height).collect();
    assert!(in_memory.iter().all(|h| *h > 4), "{in_memory:?}");
    assert_eq!(chain.finalized_count(), 6);
    let first = chain.tx_record(&ids[0]).expect("served from the index");
    assert_eq!((first.height, first.index), (1, 0));
    assert!(first.result.is_ok());
    assert!(chain.is_finalized(&ids[0]));

    // The old transaction again: refused at submission, skipped inside a block (its record is not overwritten).
    let old = Bytes::from(tx(0).to_bytes());
    assert!(matches!(chain.submit(old.clone()), Err(SubmitError::AlreadyFinalized(_))));
    let block = Block::new(parent, 7, 7, vec![old]);
    assert!(chain.execute(&block));
    assert_eq!(chain.tx_record(&ids[0]).unwrap(), first);
    // A snapshot of a chain with an index leaves the transaction records out (the index has them).
    let snap = vouch_chain::snapshot::encode_with(&chain.state(), false);
    let root7 = chain.state().ledger.root();
    drop(chain);

    // A restart replays the same blocks over the index that already records them: they execute again (they are not
    // mistaken for duplicates), reaching the same state.
    let again = Chain::with_index(genesis.clone(), TxIndex::open(&path).unwrap(), 2);
    for b in &blocks {
        assert!(again.execute(b));
    }
    assert_eq!(again.state().ledger.root(), root);
    assert_eq!(again.state().ledger.accounts.get(&alice.public_key()).unwrap().nonce, 6);
    assert_eq!(again.tx_record(&ids[0]).unwrap(), first);
    drop(again);

    // Restored from that snapshot over the index: the same state, and the records are still served.
    let restored = Chain::with_index(genesis.clone(), TxIndex::open(&path).unwrap(), 2);
    let st = vouch_chain::snapshot::decode(&snap, &restored).unwrap();
    assert!(st.txs.is_empty());
    assert!(restored.restore(st));
    assert_eq!((restored.state().height, restored.state().ledger.root()), (7, root7));
    assert_eq!(restored.tx_record(&ids[0]).unwrap(), first);
    assert!(restored.is_finalized(&ids[5]));
    drop(restored);

    // Reopened: the records are there.
    let reopened = TxIndex::open(&path).unwrap();
    assert_eq!(reopened.len().unwrap(), 6);
    assert_eq!(reopened.get(&ids[0]).unwrap(), Some(first));
}
