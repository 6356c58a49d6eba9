//! The mempool's view of an account's next nonce: the executed nonce, past the contiguous run of that account's
//! pending transactions (so two signers of one key do not reuse a nonce), and back in step once a block executes.

use bytes::Bytes;
use vouch_chain::{Block, Chain};
use vouch_codec::domain;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_crypto::NodeKey;
use vouch_ledger::{Genesis, Params};

#[test]
fn next_nonce_counts_the_contiguous_pending_run_and_follows_execution() {
    let alice = NodeKey::from_secret([1; 32]);
    let bob = NodeKey::from_secret([2; 32]);
    let genesis = Genesis {
        accounts: vec![(alice.public_key(), 1_000), (bob.public_key(), 1_000)],
        params: Params::default(),
        validators: vec![],
    };
    let chain = Chain::new(genesis);
    let tx = |k: &NodeKey, nonce: u64| {
        let tx = Tx {
            chain: chain.chain_id(),
            from: k.public_key(),
            nonce,
            fee: 1,
            kind: TxKind::Transfer { to: [9; 32], amount: 1 },
        };
        let signature = k.sign(domain::TX_SIGNATURE, &tx.id().0);
        Bytes::from(SignedTx { tx, signature }.to_bytes())
    };
    let a = alice.public_key();
    assert_eq!(chain.next_nonce(&a), 0);
    let t0 = tx(&alice, 0);
    let t1 = tx(&alice, 1);
    chain.submit(t0.clone()).unwrap();
    chain.submit(t1.clone()).unwrap();
    chain.submit(tx(&alice, 3)).unwrap(); // a gap: 2 is still free
    chain.submit(tx(&bob, 0)).unwrap();
    assert_eq!(chain.next_nonce(&a), 2);
    assert_eq!(chain.next_nonce(&bob.public_key()), 1);
    // A signer's own next nonce as the start: taken as is when the nonce before it is pending, walked from the
    // executed nonce when it would leave a gap.
    assert_eq!(chain.next_free_nonce(&a, 2), 2);
    assert_eq!(chain.next_free_nonce(&a, 4), 4, "3 is pending, so 4 leaves no gap");
    assert_eq!(chain.next_free_nonce(&a, 6), 2, "nothing pending at 5: a gap");
    // Resubmitting a pending transaction changes nothing.
    chain.submit(t1.clone()).unwrap();
    assert_eq!(chain.next_nonce(&a), 2);

    // A block with nonces 0 and 1 executes: the account is at 2 and only nonce 3 is pending.
    let parent = chain.genesis_block().header().digest();
    let block = Block::new(parent, 1, 1, vec![t0, t1]);
    assert!(chain.execute(&block));
    assert_eq!(chain.state().ledger.accounts.get(&a).unwrap().nonce, 2);
    assert_eq!(chain.next_nonce(&a), 2);
    chain.submit(tx(&alice, 2)).unwrap();
    assert_eq!(chain.next_nonce(&a), 4, "2 and 3 pending now");
    assert_eq!(chain.mempool_len(), 3);
}

/// The verified-signature cache is keyed by the signature too: once a transaction's valid signature is cached, the
/// same transaction with a forged signature is still verified (and refused), at submission and in a block.
#[test]
fn a_cached_signature_does_not_vouch_for_a_forged_one() {
    let alice = NodeKey::from_secret([1; 32]);
    let genesis =
        Genesis { accounts: vec![(alice.public_key(), 1_000)], params: Params::default(), validators: vec![] };
    let chain = Chain::new(genesis);
    let tx = Tx {
        chain: chain.chain_id(),
        from: alice.public_key(),
        nonce: 0,
        fee: 1,
        kind: TxKind::Transfer { to: [9; 32], amount: 1 },
    };
    let signature = alice.sign(domain::TX_SIGNATURE, &tx.id().0);
    let good = SignedTx { tx: tx.clone(), signature };
    let mut forged = good.clone();
    forged.signature[0] ^= 1;
    let id = tx.id();
    assert!(chain.check_tx(&good, &id).is_ok());
    assert!(chain.check_tx(&good, &id).is_ok(), "cached");
    assert_eq!(chain.check_tx(&forged, &id), Err(vouch_ledger::TxError::BadSignature));
    // In a block, the forged copy does not execute: the nonce stays unused and its record says why.
    let parent = chain.genesis_block().header().digest();
    let block = vouch_chain::Block::new(parent, 1, 1, vec![Bytes::from(forged.to_bytes())]);
    assert!(chain.execute(&block));
    assert_eq!(chain.state().ledger.accounts.get(&alice.public_key()).unwrap().nonce, 0);
    assert_eq!(chain.tx_record(&id).unwrap().result, Err("bad transaction signature".to_owned()));
}
