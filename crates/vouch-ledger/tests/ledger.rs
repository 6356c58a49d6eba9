//! The ledger state machine: every rejection leaves the state (root) unchanged with the exact error; honest
//! quorums settle and pay; a lying executor is out-voted on re-execution and slashed; replays are
//! deterministic; tokens are conserved.

use proptest::prelude::*;
use vouch_codec::tx::{Address, SignedTx, Tx, TxKind};
use vouch_codec::{AgreementRule, Canonical, Digest, Mode, ModelId, ReceiptBody, domain};
use vouch_crypto::NodeKey;
use vouch_ledger::{BlockCtx, Event, Genesis, JobStatus, Params, State, TxError, ValidatorParams};

struct World {
    state: State,
    users: Vec<NodeKey>,
    nodes: Vec<NodeKey>,
    nonces: std::collections::BTreeMap<Address, u64>,
    height: u64,
}

const FUNDS: u64 = 1_000_000;

fn key(i: u8) -> NodeKey {
    NodeKey::from_secret([i; 32])
}

impl World {
    fn new(n_nodes: u8) -> Self {
        let users: Vec<NodeKey> = (1..=3).map(key).collect();
        let nodes: Vec<NodeKey> = (100..100 + n_nodes).map(key).collect();
        let accounts = users.iter().chain(&nodes).map(|k| (k.public_key(), FUNDS)).collect();
        let state = State::genesis(&Genesis { accounts, params: Params::default(), validators: vec![] });
        let mut w = Self { state, users, nodes, nonces: Default::default(), height: 1 };
        for i in 0..w.nodes.len() {
            let node = w.nodes[i].public_key();
            let pop = w.nodes[i].sign(domain::NODE_BIND, &node);
            let kind = TxKind::RegisterNode {
                node,
                endpoint: format!("http://127.0.0.1:{}", 7070 + i),
                stake: 10_000,
                node_signature: pop,
            };
            let tx = w.sign(&w.nodes[i], kind);
            w.apply(&tx).unwrap();
        }
        let tx = w.sign(
            &w.users[0],
            TxKind::RegisterModel {
                model: model(),
                name: "m@1.0".into(),
                commitment: vec![],
                rule: AgreementRule::Exact,
            },
        );
        w.apply(&tx).unwrap();
        w
    }

    fn sign(&self, k: &NodeKey, kind: TxKind) -> SignedTx {
        let from = k.public_key();
        let nonce = *self.nonces.get(&from).unwrap_or(&0);
        let tx = Tx { chain: self.state.chain, from, nonce, fee: 1, kind };
        let signature = k.sign(domain::TX_SIGNATURE, &tx.id().0);
        SignedTx { tx, signature }
    }

    fn ctx(&self) -> BlockCtx {
        BlockCtx {
            height: self.height,
            seed: *blake3::hash(&self.height.to_le_bytes()).as_bytes(),
            time_ms: 1_700_000_000_000 + self.height * 1_000,
        }
    }

    fn apply(&mut self, tx: &SignedTx) -> Result<Vec<Event>, TxError> {
        let ctx = self.ctx();
        let r = self.state.apply(&ctx, tx);
        assert_eq!(self.state.root(), self.state.root_from_scratch(), "incremental state root after {r:?}");
        if r.is_ok() {
            *self.nonces.entry(tx.tx.from).or_default() += 1;
        }
        self.height += 1;
        r
    }

    /// Applies a transaction that must fail, asserting the state did not change.
    fn reject(&mut self, tx: &SignedTx) -> TxError {
        let before = (self.state.root(), self.state.clone());
        let err = self.apply(tx).expect_err("transaction should be rejected");
        assert_eq!(self.state.root(), before.0, "state root changed by a rejected tx ({err})");
        assert_eq!(self.state, before.1);
        err
    }

    fn node_key(&self, addr: &Address) -> &NodeKey {
        self.nodes.iter().find(|k| k.public_key() == *addr).unwrap()
    }

    fn submit_job(&mut self, quorum: u8) -> (Digest, Vec<Address>) {
        let mode = if quorum == 1 { Mode::Signed } else { Mode::Quorum };
        let kind =
            TxKind::SubmitJob { model: model(), input_digest: Digest([5; 32]), mode, quorum, fee_per_executor: 100 };
        let tx = self.sign(&self.users[1].clone_key(), kind);
        match self.apply(&tx).unwrap().as_slice() {
            [Event::JobAssigned { job, executors }] => (*job, executors.clone()),
            other => panic!("{other:?}"),
        }
    }

    /// The node's receipt body and signature for a job, with the given output digest.
    fn result(&self, job: Digest, node: &Address, output: u8) -> TxKind {
        let body = ReceiptBody {
            format: 1,
            model: model(),
            mode: Mode::Quorum,
            engine: "tract-onnx 0.23.9".into(),
            job: job.0,
            issued_at_ms: 1,
            input_digest: Digest([5; 32]),
            output_digest: Digest([output; 32]),
            executors: vec![*node],
            rule: AgreementRule::Exact,
            extensions: vec![],
        };
        let signature = self.node_key(node).sign(domain::RECEIPT_SIGNATURE, &body.id().0);
        TxKind::SubmitResult { job, node: *node, body: body.to_bytes(), signature }
    }
}

trait CloneKey {
    fn clone_key(&self) -> NodeKey;
}
impl CloneKey for NodeKey {
    fn clone_key(&self) -> NodeKey {
        // Test keys are derived from a byte; recover it from the public key.
        (0..=255u8).map(key).find(|k| k.public_key() == self.public_key()).unwrap()
    }
}

/// A state survives its snapshot encoding: equal state, equal root; every truncation is refused without a panic.
fn assert_snapshot_round_trip(state: &State) {
    let mut w = vouch_codec::Writer::new();
    state.encode(&mut w);
    let bytes = w.finish();
    let mut r = vouch_codec::Reader::new(&bytes);
    let back = State::decode(&mut r, state).unwrap();
    r.finish("state").unwrap();
    assert_eq!(&back, state);
    assert_eq!(back.root(), state.root());
    for n in (0..bytes.len()).step_by(7) {
        assert!(State::decode(&mut vouch_codec::Reader::new(&bytes[..n]), state).is_err(), "prefix {n}");
    }
    for ev in [
        Event::JobAssigned { job: Digest([1; 32]), executors: vec![[2; 32], [3; 32]] },
        Event::Unbonding { node: [4; 32], amount: 5, release_height: 6 },
        Event::JobExpired { job: Digest([7; 32]), silent: vec![] },
        Event::BatchSettled { root: Digest([8; 32]), count: 9 },
        Event::Pruned { jobs: 1, receipts: 2, batches: 3 },
        Event::ValidatorSetChosen { epoch: 4, validators: vec![[1; 32], [2; 32]] },
    ] {
        let mut w = vouch_codec::Writer::new();
        ev.encode(&mut w);
        assert_eq!(Event::decode(&mut vouch_codec::Reader::new(&w.finish())).unwrap(), ev);
    }
}

fn model() -> ModelId {
    ModelId::of_bytes(b"model")
}

#[test]
fn honest_quorum_settles_pays_executors_and_conserves_tokens() {
    let mut w = World::new(5);
    let supply = w.state.total_supply();
    let (job, executors) = w.submit_job(3);
    assert_eq!(executors.len(), 3);
    let payer = w.users[2].clone_key(); // anyone may relay results
    for (i, e) in executors.iter().enumerate() {
        let tx = w.sign(&payer, w.result(job, e, 9));
        let events = w.apply(&tx).unwrap();
        if i == 2 {
            assert_eq!(events, vec![Event::JobSettled { job, output_digest: Digest([9; 32]) }]);
        }
    }
    assert_eq!(w.state.jobs[&job].status, JobStatus::Settled(Digest([9; 32])));
    for e in &executors {
        // Funds - stake - registration fee + job fee.
        assert_eq!(w.state.accounts.get(e).unwrap().balance, FUNDS - 10_000 - 1 + 100);
    }
    assert_eq!(w.state.total_supply(), supply);
    // A late duplicate or extra result is refused.
    let tx = w.sign(&payer, w.result(job, &executors[0], 9));
    assert!(matches!(w.reject(&tx), TxError::JobClosed(_)));
}

#[test]
fn a_lying_executor_is_outvoted_on_re_execution_and_slashed() {
    let mut w = World::new(9);
    let supply = w.state.total_supply();
    let (job, executors) = w.submit_job(3);
    let relay = w.users[2].clone_key();
    let liar = executors[1];
    for e in &executors {
        let tx = w.sign(&relay, w.result(job, e, if *e == liar { 66 } else { 9 }));
        w.apply(&tx).unwrap();
    }
    let dispute = match &w.state.jobs[&job].status {
        JobStatus::Disputed => w.state.jobs[&job].dispute_set.clone(),
        other => panic!("{other:?}"),
    };
    // 2k+1 = 7 re-executors wanted, capped by the 6 eligible nodes outside the original set.
    assert_eq!(dispute.len(), 6);
    assert!(dispute.iter().all(|d| !executors.contains(d)));
    // Re-executors: a majority (4 of 6) agrees with the honest result.
    let mut resolved = vec![];
    for (i, d) in dispute.iter().enumerate() {
        let tx = w.sign(&relay, w.result(job, d, if i == 0 { 66 } else { 9 }));
        resolved.extend(w.apply(&tx).unwrap());
        if matches!(w.state.jobs[&job].status, JobStatus::Resolved(_)) {
            break;
        }
    }
    assert_eq!(w.state.jobs[&job].status, JobStatus::Resolved(Digest([9; 32])));
    let slashed: Vec<Address> =
        resolved.iter().filter_map(|e| if let Event::Slashed { node, .. } = e { Some(*node) } else { None }).collect();
    assert!(slashed.contains(&liar));
    assert!(slashed.contains(&dispute[0]), "a re-executor that lied is slashed too");
    assert_eq!(w.state.nodes[&liar].stake, 5_000);
    assert_eq!(w.state.nodes[&liar].slashed, 5_000);
    // The liar earns nothing; honest executors earn their fee.
    assert_eq!(w.state.accounts.get(&liar).unwrap().balance, FUNDS - 10_000 - 1);
    assert_eq!(w.state.accounts.get(&executors[0]).unwrap().balance, FUNDS - 10_000 - 1 + 100);
    assert_eq!(w.state.total_supply(), supply);
    assert_snapshot_round_trip(&w.state);
}

#[test]
fn every_rejection_leaves_the_state_unchanged() {
    let mut w = World::new(3);
    let alice = w.users[0].clone_key();
    let bob = w.users[1].public_key();

    // Bad signature.
    let mut tx = w.sign(&alice, TxKind::Transfer { to: bob, amount: 5 });
    tx.signature[0] ^= 1;
    assert_eq!(w.reject(&tx), TxError::BadSignature);
    // Signed by someone else than `from`.
    let mut tx = w.sign(&alice, TxKind::Transfer { to: bob, amount: 5 });
    tx.signature = w.users[1].sign(domain::TX_SIGNATURE, &tx.tx.id().0);
    assert_eq!(w.reject(&tx), TxError::BadSignature);
    // Another chain.
    let mut t = w.sign(&alice, TxKind::Transfer { to: bob, amount: 5 }).tx;
    t.chain = [9; 32];
    let tx = SignedTx { signature: alice.sign(domain::TX_SIGNATURE, &t.id().0), tx: t };
    assert!(matches!(w.reject(&tx), TxError::WrongChain { .. }));
    // Replayed nonce.
    let tx = w.sign(&alice, TxKind::Transfer { to: bob, amount: 5 });
    w.apply(&tx).unwrap();
    assert_eq!(w.reject(&tx), TxError::BadNonce { expected: 2, found: 1 });
    // Future nonce.
    let mut t = w.sign(&alice, TxKind::Transfer { to: bob, amount: 5 }).tx;
    t.nonce += 5;
    let tx = SignedTx { signature: alice.sign(domain::TX_SIGNATURE, &t.id().0), tx: t };
    assert_eq!(w.reject(&tx), TxError::BadNonce { expected: 2, found: 7 });
    // Transfer beyond balance, zero transfer, fee too low.
    let tx = w.sign(&alice, TxKind::Transfer { to: bob, amount: FUNDS });
    assert!(matches!(w.reject(&tx), TxError::InsufficientBalance { .. }));
    let tx = w.sign(&alice, TxKind::Transfer { to: bob, amount: 0 });
    assert_eq!(w.reject(&tx), TxError::InvalidAmount);
    let mut t = w.sign(&alice, TxKind::Transfer { to: bob, amount: 5 }).tx;
    t.fee = 0;
    let tx = SignedTx { signature: alice.sign(domain::TX_SIGNATURE, &t.id().0), tx: t };
    assert_eq!(w.reject(&tx), TxError::FeeTooLow { fee: 0, min: 1 });
    // A node key registered by someone who does not hold it; a duplicate node; too little stake.
    let stranger = key(200).public_key();
    let tx = w.sign(
        &alice,
        TxKind::RegisterNode { node: stranger, endpoint: "x".into(), stake: 10_000, node_signature: [0; 64] },
    );
    assert_eq!(w.reject(&tx), TxError::BadNodeSignature);
    let existing = w.nodes[0].public_key();
    let pop = w.nodes[0].sign(domain::NODE_BIND, &alice.public_key());
    let tx = w.sign(
        &alice,
        TxKind::RegisterNode { node: existing, endpoint: "x".into(), stake: 10_000, node_signature: pop },
    );
    assert!(matches!(w.reject(&tx), TxError::NodeExists(_)));
    let pop = key(200).sign(domain::NODE_BIND, &alice.public_key());
    let tx =
        w.sign(&alice, TxKind::RegisterNode { node: stranger, endpoint: "x".into(), stake: 10, node_signature: pop });
    assert_eq!(w.reject(&tx), TxError::StakeTooLow { stake: 10, min: 1_000 });
    // Stake on someone else's node; a model registered twice; a job for an unknown model or too big a quorum.
    let tx = w.sign(&alice, TxKind::AddStake { node: existing, amount: 5 });
    assert!(matches!(w.reject(&tx), TxError::NotOperator(_)));
    let tx = w.sign(
        &alice,
        TxKind::RegisterModel { model: model(), name: "again".into(), commitment: vec![], rule: AgreementRule::Exact },
    );
    assert!(matches!(w.reject(&tx), TxError::ModelExists(_)));
    // A float model's tolerance must be a finite, non-negative number: NaN, infinity and negatives are refused.
    for (abs, rel) in [(f64::NAN, 0.0), (1e-3, f64::INFINITY), (-1e-3, 0.0), (0.0, -0.0)] {
        let other = ModelId::of_bytes(b"float model");
        let rule = AgreementRule::Tolerance { abs, rel };
        let tx = w.sign(&alice, TxKind::RegisterModel { model: other, name: "f@1".into(), commitment: vec![], rule });
        assert!(matches!(w.reject(&tx), TxError::InvalidRule(_)), "abs {abs} rel {rel}");
    }
    let float = ModelId::of_bytes(b"float model");
    let rule = AgreementRule::Tolerance { abs: 1e-4, rel: 1e-3 };
    let tx = w.sign(&alice, TxKind::RegisterModel { model: float, name: "f@1".into(), commitment: vec![], rule });
    w.apply(&tx).unwrap();
    assert_eq!(w.state.models.get(&float).unwrap().rule, rule);
    let job = |model, mode, quorum| TxKind::SubmitJob {
        model,
        input_digest: Digest([5; 32]),
        mode,
        quorum,
        fee_per_executor: 10,
    };
    let tx = w.sign(&alice, job(ModelId::of_bytes(b"nope"), Mode::Signed, 1));
    assert!(matches!(w.reject(&tx), TxError::UnknownModel(_)));
    let tx = w.sign(&alice, job(model(), Mode::Quorum, 4));
    assert_eq!(w.reject(&tx), TxError::NotEnoughExecutors { available: 3, quorum: 4 });
    let tx = w.sign(&alice, job(model(), Mode::Signed, 2));
    assert_eq!(w.reject(&tx), TxError::InvalidQuorum { mode: "signed", quorum: 2 });
    let tx = w.sign(&alice, job(model(), Mode::Quorum, 1));
    assert_eq!(w.reject(&tx), TxError::InvalidQuorum { mode: "quorum", quorum: 1 });

    // Results: unknown job, unassigned node, bad signature, wrong job/model/input in the body, garbage body,
    // duplicate.
    let (job_id, executors) = w.submit_job(2);
    let assigned = executors[0];
    let outsider = w.nodes.iter().map(NodeKey::public_key).find(|n| !executors.contains(n)).unwrap();
    let tx = w.sign(&alice, w.result(Digest([1; 32]), &assigned, 9));
    assert!(matches!(w.reject(&tx), TxError::UnknownJob(_)));
    let tx = w.sign(&alice, w.result(job_id, &outsider, 9));
    assert!(matches!(w.reject(&tx), TxError::NotAssigned(_)));
    let mut kind = w.result(job_id, &assigned, 9);
    if let TxKind::SubmitResult { signature, .. } = &mut kind {
        signature[3] ^= 1;
    }
    let tx = w.sign(&alice, kind);
    assert!(matches!(w.reject(&tx), TxError::BadResultSignature(_)));
    let mut kind = w.result(job_id, &assigned, 9);
    if let TxKind::SubmitResult { body, .. } = &mut kind {
        body.truncate(10);
    }
    let tx = w.sign(&alice, kind);
    assert!(matches!(w.reject(&tx), TxError::MalformedReceipt(_)));
    // A receipt for another job, presented as this one's.
    let TxKind::SubmitResult { body, signature, .. } = w.result(Digest([1; 32]), &assigned, 9) else { unreachable!() };
    let tx = w.sign(&alice, TxKind::SubmitResult { job: job_id, node: assigned, body, signature });
    assert_eq!(w.reject(&tx), TxError::ReceiptMismatch("job"));
    let tx = w.sign(&alice, w.result(job_id, &assigned, 9));
    w.apply(&tx).unwrap();
    let tx = w.sign(&alice, w.result(job_id, &assigned, 9));
    assert!(matches!(w.reject(&tx), TxError::DuplicateResult(_)));
}

#[test]
fn transactions_round_trip_their_encoding_and_garbage_is_refused() {
    let w = World::new(1);
    let tx = w.sign(&w.users[0].clone_key(), TxKind::Transfer { to: [3; 32], amount: 7 });
    assert_eq!(SignedTx::from_bytes(&tx.to_bytes()).unwrap(), tx);
    let bytes = tx.to_bytes();
    for n in 0..bytes.len() {
        assert!(SignedTx::from_bytes(&bytes[..n]).is_err());
    }
    assert!(SignedTx::from_bytes(&vec![0; vouch_codec::tx::MAX_TX_BYTES + 1]).is_err());
}

#[test]
fn the_same_transactions_give_the_same_state_and_assignment_follows_the_seed() {
    let a = World::new(6);
    let b = World::new(6);
    assert_eq!(a.state.root(), b.state.root());
    let cands = a.state.eligible();
    let job = Digest([4; 32]);
    let x = vouch_ledger::select_executors(&cands, &[1; 32], &job, 3);
    assert_eq!(x, vouch_ledger::select_executors(&cands, &[1; 32], &job, 3));
    let distinct: std::collections::BTreeSet<_> = x.iter().collect();
    assert_eq!(distinct.len(), 3);
    // Different seeds spread the work: over 64 seeds every node is picked at least once.
    let mut seen = std::collections::BTreeSet::new();
    for s in 0..64u8 {
        seen.extend(vouch_ledger::select_executors(&cands, &[s; 32], &job, 3));
    }
    assert_eq!(seen.len(), 6);
}

proptest! {
    #[test]
    fn random_transfers_conserve_tokens_and_failures_change_nothing(ops in prop::collection::vec((0usize..3, 0usize..3, 0u64..2_000_000), 1..40)) {
        let mut w = World::new(1);
        let supply = w.state.total_supply();
        for (from, to, amount) in ops {
            let k = w.users[from].clone_key();
            let tx = w.sign(&k, TxKind::Transfer { to: w.users[to].public_key(), amount });
            let before = w.state.root();
            if w.apply(&tx).is_err() {
                prop_assert_eq!(w.state.root(), before);
            }
            prop_assert_eq!(w.state.total_supply(), supply);
        }
    }
}

#[test]
fn execute_charges_fee_and_consumes_nonce_for_failed_actions_only_when_admissible() {
    let mut w = World::new(3);
    let user = w.users[0].clone_key();
    let from = user.public_key();
    let ctx = w.ctx();
    // A transfer beyond the balance: the action fails, but the fee is paid and the nonce used.
    let before = w.state.accounts.get(&from).unwrap();
    let treasury = w.state.treasury;
    let supply = w.state.total_supply();
    let tx = w.sign(&user, TxKind::Transfer { to: [7; 32], amount: FUNDS * 10 });
    assert!(matches!(w.state.execute(&ctx, &tx), Err(TxError::InsufficientBalance { .. })));
    assert_eq!(w.state.accounts.get(&from).unwrap().nonce, before.nonce + 1);
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    assert_eq!(w.state.accounts.get(&from).unwrap().balance, before.balance - 1);
    assert_eq!(w.state.treasury, treasury + 1);
    assert_eq!(w.state.total_supply(), supply);
    *w.nonces.entry(from).or_default() += 1;
    // The sender's next transaction applies.
    let ok = w.sign(&user, TxKind::Transfer { to: [7; 32], amount: 5 });
    w.state.execute(&ctx, &ok).unwrap();
    *w.nonces.entry(from).or_default() += 1;
    // A replayed nonce, a bad signature or another chain change nothing.
    let root = w.state.root();
    assert!(matches!(w.state.execute(&ctx, &ok), Err(TxError::BadNonce { .. })));
    let mut forged = w.sign(&user, TxKind::Transfer { to: [7; 32], amount: 5 });
    forged.signature[3] ^= 1;
    assert_eq!(w.state.execute(&ctx, &forged), Err(TxError::BadSignature));
    assert_eq!(w.state.root(), root);
}

#[test]
fn a_silent_executor_is_slashed_when_the_round_times_out_and_the_job_expires() {
    let mut w = World::new(4);
    let supply = w.state.total_supply();
    let (job, executors) = w.submit_job(3);
    let relayer = w.users[2].clone_key();
    for e in &executors[..2] {
        let tx = w.sign(&relayer, w.result(job, e, 9));
        w.apply(&tx).unwrap();
    }
    let deadline = w.state.jobs[&job].deadline;
    let requester = w.users[1].public_key();
    let before = w.state.accounts.get(&requester).unwrap().balance;
    // Not yet due: nothing happens.
    assert!(w.state.end_block(deadline).is_empty());
    let events = w.state.end_block(deadline + 1);
    let silent = executors[2];
    assert_eq!(events.last(), Some(&Event::JobExpired { job, silent: vec![silent] }));
    assert!(matches!(events[0], Event::Slashed { node, amount } if node == silent && amount == 5_000));
    assert_eq!(w.state.jobs[&job].status, JobStatus::Expired);
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    assert_eq!(w.state.nodes[&silent].slashed, 5_000);
    for e in &executors[..2] {
        assert_eq!(w.state.nodes[e].slashed, 0);
    }
    // The silent executor's share of the escrow goes back to the requester.
    assert_eq!(w.state.accounts.get(&requester).unwrap().balance, before + 100);
    assert_eq!(w.state.total_supply(), supply);
    // A late answer is refused, and expiry does not repeat.
    let late = w.sign(&relayer, w.result(job, &silent, 9));
    assert_eq!(w.reject(&late), TxError::JobClosed(job.to_hex()));
    assert!(w.state.end_block(deadline + 2).is_empty());
}

#[test]
fn unbonded_stake_leaves_at_once_stays_slashable_and_returns_after_the_delay() {
    let mut w = World::new(3);
    let supply = w.state.total_supply();
    // All three nodes are drawn for a job before one of them unbonds.
    let (job, executors) = w.submit_job(3);
    let node = w.node_key(&executors[0]).clone_key();
    let id = node.public_key();
    // Only the operator, only a positive amount up to the stake, only a known node.
    let stranger = w.users[0].clone_key();
    let tx = w.sign(&stranger, TxKind::Unbond { node: id, amount: 1 });
    assert_eq!(w.reject(&tx), TxError::NotOperator(hex::encode(&id[..8])));
    for amount in [0, 10_001] {
        let tx = w.sign(&node, TxKind::Unbond { node: id, amount });
        assert_eq!(w.reject(&tx), TxError::InvalidAmount, "amount {amount}");
    }
    let tx = w.sign(&node, TxKind::Unbond { node: [9; 32], amount: 1 });
    assert!(matches!(w.reject(&tx), TxError::UnknownNode(_)));

    // Unbonding 9,500 of 10,000 takes it below the minimum stake (1,000) at once: no new work.
    let release = w.height + Params::default().unbonding_blocks;
    let tx = w.sign(&node, TxKind::Unbond { node: id, amount: 9_500 });
    assert_eq!(w.apply(&tx).unwrap(), vec![Event::Unbonding { node: id, amount: 9_500, release_height: release }]);
    assert_eq!((w.state.nodes[&id].stake, w.state.nodes[&id].unbonding.clone()), (500, vec![(release, 9_500)]));
    assert!(w.state.eligible().iter().all(|(a, _)| *a != id));
    assert_eq!(w.state.total_supply(), supply);

    // It stays slashable: silent in the job it was drawn for, it loses half of stake plus unbonding (5,000), the
    // stake first (500), then 4,500 of the unbonding amount.
    let relayer = w.users[2].clone_key();
    for e in &executors[1..] {
        let tx = w.sign(&relayer, w.result(job, e, 9));
        w.apply(&tx).unwrap();
    }
    let deadline = w.state.jobs[&job].deadline;
    let events = w.state.end_block(deadline + 1);
    assert!(events.contains(&Event::Slashed { node: id, amount: 5_000 }), "{events:?}");
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    assert_snapshot_round_trip(&w.state);
    assert_eq!((w.state.nodes[&id].stake, w.state.nodes[&id].unbonding.clone()), (0, vec![(release, 5_000)]));
    assert_eq!(w.state.total_supply(), supply);

    // Nothing returns before the release height; the rest at the release height.
    let balance = w.state.accounts.get(&id).unwrap().balance;
    assert!(w.state.end_block(release - 1).iter().all(|e| !matches!(e, Event::Unbonded { .. })));
    assert_eq!(w.state.end_block(release), vec![Event::Unbonded { node: id, amount: 5_000 }]);
    assert!(w.state.nodes[&id].unbonding.is_empty());
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    assert_eq!(w.state.accounts.get(&id).unwrap().balance, balance + 5_000);
    assert_eq!(w.state.total_supply(), supply);
}

#[test]
fn the_incremental_state_root_equals_the_root_from_scratch_and_sees_every_change() {
    let mut w = World::new(3);
    let root = w.state.root();
    assert_eq!(root, w.state.root_from_scratch());
    // A change made directly through a table (not by a transaction) is seen before it is folded in.
    let someone = w.users[0].public_key();
    w.state.accounts.get_mut(&someone).unwrap().balance += 1;
    assert_ne!(w.state.root(), root);
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    w.state.accounts.get_mut(&someone).unwrap().balance -= 1;
    assert_eq!(w.state.root(), root, "the same state, the same root");
    // The same entries reached in another order give the same root.
    let a = World::new(3);
    let mut b = World::new(3);
    let (u0, u1) = (b.users[0].clone_key(), b.users[1].clone_key());
    let t1 = b.sign(&u0, TxKind::Transfer { to: u1.public_key(), amount: 5 });
    b.apply(&t1).unwrap();
    let t2 = b.sign(&u1, TxKind::Transfer { to: u0.public_key(), amount: 5 });
    b.apply(&t2).unwrap();
    assert_ne!(a.state.root(), b.state.root(), "nonces and fees changed");
    assert_eq!(b.state.root(), b.state.root_from_scratch());
}

/// `Signature::Verified` skips only the signature check: the chain id, nonce and balance are still checked, and
/// without the hint a forged signature is refused.
#[test]
fn a_verified_hint_skips_only_the_signature_check() {
    use vouch_ledger::Signature;
    let mut w = World::new(1);
    let alice = w.users[0].clone_key();
    let mut forged = w.sign(&alice, TxKind::Transfer { to: [3; 32], amount: 7 });
    forged.signature[0] ^= 1;
    let ctx = w.ctx();
    let before = w.state.clone();
    assert_eq!(w.state.apply_with(&ctx, &forged, Signature::Unchecked), Err(TxError::BadSignature));
    assert_eq!(w.state, before);
    let mut other_chain = w.sign(&alice, TxKind::Transfer { to: [3; 32], amount: 7 });
    other_chain.tx.chain = [9; 32];
    assert!(matches!(w.state.apply_with(&ctx, &other_chain, Signature::Verified), Err(TxError::WrongChain { .. })));
    let too_much = w.sign(&alice, TxKind::Transfer { to: [3; 32], amount: FUNDS * 2 });
    assert!(matches!(
        w.state.apply_with(&ctx, &too_much, Signature::Verified),
        Err(TxError::InsufficientBalance { .. })
    ));
    assert_eq!(w.state, before);
}

#[test]
fn executors_of_a_job_and_its_dispute_set_declare_one_engine() {
    let mut w = World::new(9);
    // Nodes 0-5 declare engine "a", 6-7 declare "b" (each signed by its own key, which is also its operator here),
    // node 8 never declares.
    for i in 0..8 {
        let engine = if i < 6 { "a" } else { "b" };
        let node = w.nodes[i].public_key();
        let tx = w.sign(&w.nodes[i].clone_key(), TxKind::SetEngine { node, engine: engine.into() });
        assert_eq!(w.apply(&tx).unwrap(), vec![]);
        assert_eq!(w.state.nodes[&node].engine, engine);
    }
    assert_snapshot_round_trip(&w.state);
    let engine = |w: &World, a: &Address| w.state.nodes[a].engine.clone();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (_, executors) = w.submit_job(2);
        let first = engine(&w, &executors[0]);
        assert!(executors.iter().all(|e| engine(&w, e) == first), "mixed engines: {executors:?}");
        seen.insert(first);
    }
    // Every group that can field a quorum of 2 is drawn at some point ("" has one member, so never).
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["a".to_string(), "b".to_string()]);
    // A quorum of 3 only fits group "a".
    for _ in 0..10 {
        let (_, executors) = w.submit_job(3);
        assert!(executors.iter().all(|e| engine(&w, e) == "a"), "{executors:?}");
    }
    // A quorum no group can field is refused with the largest group's size.
    let kind = TxKind::SubmitJob {
        model: model(),
        input_digest: Digest([5; 32]),
        mode: Mode::Quorum,
        quorum: 7,
        fee_per_executor: 1,
    };
    let tx = w.sign(&w.users[1].clone_key(), kind);
    assert_eq!(w.reject(&tx), TxError::NotEnoughExecutors { available: 6, quorum: 7 });
    // A disagreement is re-executed only by nodes of the same engine outside the original set.
    let (job, executors) = w.submit_job(3);
    let relay = w.users[2].clone_key();
    for (i, e) in executors.iter().enumerate() {
        let tx = w.sign(&relay, w.result(job, e, if i == 1 { 66 } else { 9 }));
        w.apply(&tx).unwrap();
    }
    let dispute = w.state.jobs[&job].dispute_set.clone();
    assert_eq!(w.state.jobs[&job].status, JobStatus::Disputed);
    assert_eq!(dispute.len(), 3, "the three other 'a' nodes, not the 'b' or undeclared ones");
    assert!(dispute.iter().all(|d| engine(&w, d) == "a" && !executors.contains(d)));
}

#[test]
fn set_engine_rejections() {
    let mut w = World::new(2);
    let node = w.nodes[0].public_key();
    let stranger = w.users[0].clone_key();
    let tx = w.sign(&stranger, TxKind::SetEngine { node, engine: "x".into() });
    assert!(matches!(w.reject(&tx), TxError::NotOperator(_)));
    let tx = w.sign(&w.nodes[1].clone_key(), TxKind::SetEngine { node, engine: "x".into() });
    assert!(matches!(w.reject(&tx), TxError::NotOperator(_)), "another node's key");
    let tx = w.sign(&stranger, TxKind::SetEngine { node: [9; 32], engine: "x".into() });
    assert!(matches!(w.reject(&tx), TxError::UnknownNode(_)));
    let long = "e".repeat(vouch_codec::tx::MAX_ENGINE_LEN + 1);
    let tx = w.sign(&w.nodes[0].clone_key(), TxKind::SetEngine { node, engine: long });
    assert_eq!(
        w.reject(&tx),
        TxError::TooLong {
            what: "engine",
            len: vouch_codec::tx::MAX_ENGINE_LEN + 1,
            max: vouch_codec::tx::MAX_ENGINE_LEN
        }
    );
    // The encoding round-trips.
    let tx = w.sign(&w.nodes[0].clone_key(), TxKind::SetEngine { node, engine: "tract; llama.cpp".into() });
    assert_eq!(SignedTx::from_bytes(&tx.to_bytes()).unwrap(), tx);
    w.apply(&tx).unwrap();
    assert_eq!(w.state.nodes[&node].engine, "tract; llama.cpp");
}

/// A chain that accepts one simulated TEE root, with one registered node and one recorded block.
struct TeeWorld {
    state: State,
    node: NodeKey,
    root: vouch_tee::simulated::SimulatedRoot,
    _dir: tempfile::TempDir,
}

const T0_MS: u64 = 1_764_000_000_000;
const FRESH: [u8; 32] = [7; 32];

impl TeeWorld {
    fn new(accept_root: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = vouch_tee::simulated::SimulatedRoot::load_or_create(&dir.path().join("root.key")).unwrap();
        let node = key(100);
        let mut params = Params::default();
        params.tee.attestation_ttl_s = 3_600;
        if accept_root {
            params.tee.simulated_roots = vec![hex::encode(root.public_key())];
        }
        let genesis = Genesis {
            accounts: vec![(node.public_key(), FUNDS), (key(1).public_key(), FUNDS)],
            params,
            validators: vec![],
        };
        let mut state = State::genesis(&genesis);
        let pop = node.sign(domain::NODE_BIND, &node.public_key());
        let kind = TxKind::RegisterNode {
            node: node.public_key(),
            endpoint: "http://n".into(),
            stake: 10_000,
            node_signature: pop,
        };
        let ctx = BlockCtx { height: 1, seed: [0; 32], time_ms: T0_MS };
        state.apply(&ctx, &signed(&state, &node, 0, kind)).unwrap();
        state.finish_block(1, FRESH, T0_MS);
        Self { state, node, root, _dir: dir }
    }

    /// Evidence for `key` on `chain`, freshness `fresh`, at `at_ms`, its report data as given (or the binding).
    fn evidence(&self, key: [u8; 32], chain: [u8; 32], fresh: [u8; 32], at_ms: u64) -> vouch_codec::TeeEvidence {
        let mut ev = vouch_codec::TeeEvidence { key, chain, freshness: fresh, attested_at_ms: at_ms, reports: vec![] };
        let report = self.root.report(&[3; 48], &ev.report_data(), at_ms / 1000);
        ev.reports.push(vouch_codec::PlatformReport { platform: "simulated".into(), report, collateral: vec![] });
        ev
    }

    fn attest(&mut self, from: &NodeKey, ev: vouch_codec::TeeEvidence, at_ms: u64) -> Result<Vec<Event>, TxError> {
        let nonce = self.state.accounts.get(&from.public_key()).map_or(0, |a| a.nonce);
        let tx = signed(&self.state, from, nonce, TxKind::Attest { node: self.node.public_key(), evidence: ev });
        let before = self.state.clone();
        let r = self.state.apply(&BlockCtx { height: 2, seed: FRESH, time_ms: at_ms }, &tx);
        if r.is_err() {
            assert_eq!(self.state, before, "a rejected attestation changed the state");
        }
        assert_eq!(self.state.root(), self.state.root_from_scratch());
        r
    }
}

fn signed(state: &State, k: &NodeKey, nonce: u64, kind: TxKind) -> SignedTx {
    let tx = Tx { chain: state.chain, from: k.public_key(), nonce, fee: 1, kind };
    let signature = k.sign(domain::TX_SIGNATURE, &tx.id().0);
    SignedTx { tx, signature }
}

fn refused(r: Result<Vec<Event>, TxError>) -> String {
    match r {
        Err(TxError::Attestation(why)) => why,
        other => panic!("expected an attestation refusal, got {other:?}"),
    }
}

#[test]
fn attest_records_the_node_attestation_and_survives_a_snapshot() {
    let mut w = TeeWorld::new(true);
    let me = w.node.public_key();
    let ev = w.evidence(me, w.state.chain, FRESH, T0_MS);
    w.attest(&w.node.clone_key(), ev.clone(), T0_MS + 2_000).unwrap();
    let a = w.state.nodes.get(&me).unwrap().attestation.clone().unwrap();
    assert_eq!(
        (a.platform.as_str(), a.measurement.as_slice(), a.tcb_status.as_str()),
        ("simulated", &[3u8; 48][..], "NotReported")
    );
    // Valid for the chain's attestation lifetime after the attestation time.
    assert_eq!(a.expires_at_ms, T0_MS + 3_600_000);
    assert_eq!(a.evidence, ev.digest());
    assert!(a.valid_at(T0_MS + 3_599_000) && !a.valid_at(T0_MS + 3_600_000));
    assert_snapshot_round_trip(&w.state);
}

#[test]
fn attest_rejections() {
    let mut w = TeeWorld::new(true);
    let me = w.node.public_key();
    let chain = w.state.chain;
    let node = w.node.clone_key();
    let t = T0_MS + 2_000;
    let why = refused(w.attest(&node, w.evidence(me, chain, [8; 32], T0_MS), t));
    assert!(why.starts_with("freshness 0808080808080808 is not one of the last 256 finalized blocks"), "{why}");
    let why = refused(w.attest(&node, w.evidence(key(5).public_key(), chain, FRESH, T0_MS), t));
    assert!(why.starts_with("the TEE evidence binds key"), "{why}");
    let why = refused(w.attest(&node, w.evidence(me, [9; 32], FRESH, T0_MS), t));
    assert!(why.starts_with("the TEE evidence is for chain 0909"), "{why}");
    // The report binds other data than the evidence states (a report produced for another key, replayed).
    let mut replayed = w.evidence(me, chain, FRESH, T0_MS);
    replayed.attested_at_ms += 1;
    let why = refused(w.attest(&node, replayed, t));
    assert!(why.starts_with("report data mismatch: the simulated report binds"), "{why}");
    // Older than the chain's attestation lifetime at this block's time.
    let why = refused(w.attest(&node, w.evidence(me, chain, FRESH, T0_MS), T0_MS + 3_700_000));
    assert_eq!(why, "TEE evidence age 3700 s exceeds the policy's maximum of 3600 s");
    // A time before the freshness block (beyond the clock skew).
    let why = refused(w.attest(&node, w.evidence(me, chain, FRESH, T0_MS - 600_000), t));
    assert!(why.contains("is outside [freshness block"), "{why}");
    // Someone else than the node or its operator.
    let stranger = key(1);
    assert!(matches!(w.attest(&stranger, w.evidence(me, chain, FRESH, T0_MS), t), Err(TxError::NotOperator(_))));
    // A root the genesis does not list; a chain whose genesis lists none refuses simulated evidence outright.
    let other = tempfile::tempdir().unwrap();
    w.root = vouch_tee::simulated::SimulatedRoot::load_or_create(&other.path().join("other.key")).unwrap();
    let why = refused(w.attest(&node, w.evidence(me, chain, FRESH, T0_MS), t));
    assert!(why.starts_with("simulated TEE evidence signed by root"), "{why}");
    let mut plain = TeeWorld::new(false);
    let ev = plain.evidence(me, plain.state.chain, FRESH, T0_MS);
    let why = refused(plain.attest(&node, ev, t));
    assert!(why.starts_with("simulated TEE evidence: produced without confidential hardware"), "{why}");
    assert!(w.state.nodes.get(&me).unwrap().attestation.is_none());
}

#[test]
fn recent_blocks_are_bounded_by_the_freshness_window() {
    let mut w = TeeWorld::new(true);
    let n = w.state.params.tee.freshness_blocks;
    for h in 2..=n + 10 {
        w.state.finish_block(h, [(h % 251) as u8; 32], T0_MS + h * 1_000);
    }
    assert_eq!(w.state.blocks.len() as u64, n);
    assert!(w.state.blocks.get(&1).is_none() && w.state.blocks.get(&(n + 10)).is_some());
    assert_eq!(w.state.root(), w.state.root_from_scratch());
}

#[test]
fn a_batch_settles_its_count_once_and_malformed_batches_are_refused() {
    let mut w = World::new(1);
    let node = w.nodes[0].clone_key();
    let root = Digest([42; 32]);
    let tx = w.sign(&node, TxKind::SettleBatch { root, count: 1000 });
    let height = w.height;
    assert_eq!(w.apply(&tx).unwrap(), vec![Event::BatchSettled { root, count: 1000 }]);
    assert_eq!(w.state.batches.get(&root), Some(&(node.public_key(), height, 1000)));
    assert_eq!(w.state.settled_receipts(), 1000);
    // The same root again, an empty batch and one above the limit: refused, nothing changes.
    let again = w.sign(&node, TxKind::SettleBatch { root, count: 1000 });
    assert_eq!(w.reject(&again), TxError::BatchSettled(root.to_hex()));
    let empty = w.sign(&node, TxKind::SettleBatch { root: Digest([43; 32]), count: 0 });
    assert!(matches!(w.reject(&empty), TxError::BadBatch(_)));
    let huge =
        w.sign(&node, TxKind::SettleBatch { root: Digest([43; 32]), count: vouch_codec::tx::MAX_BATCH_RECEIPTS + 1 });
    assert!(matches!(w.reject(&huge), TxError::BadBatch(_)));
    // One settled receipt next to the batch; the root sees the batch table, and snapshots carry it.
    let single = w.sign(&node, TxKind::SettleReceipt { receipt: Digest([1; 32]) });
    w.apply(&single).unwrap();
    assert_eq!(w.state.settled_receipts(), 1001);
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    assert_snapshot_round_trip(&w.state);
    let mut other = w.state.clone();
    other.batches.insert(root, (node.public_key(), height, 999));
    assert_ne!(other.root(), w.state.root(), "the state root covers each batch's count");
}

#[test]
fn finished_records_leave_the_state_after_the_retention_and_the_count_stays() {
    use vouch_ledger::{DEFAULT_RETENTION_BLOCKS, PRUNE_EVERY};
    let mut w = World::new(4);
    let (done, executors) = w.submit_job(3);
    let payer = w.users[2].clone_key();
    for e in &executors {
        let tx = w.sign(&payer, w.result(done, e, 9));
        w.apply(&tx).unwrap();
    }
    // A second job whose round never answers: open until its deadline, then expired.
    let (open, _) = w.submit_job(3);
    let node = w.nodes[0].clone_key();
    let batch = w.sign(&node, TxKind::SettleBatch { root: Digest([42; 32]), count: 50 });
    w.apply(&batch).unwrap();
    let single = w.sign(&node, TxKind::SettleReceipt { receipt: Digest([1; 32]) });
    w.apply(&single).unwrap();
    let settled = w.state.settled_receipts();
    assert_eq!(settled, 51);
    let supply = w.state.total_supply();
    let done_deadline = w.state.jobs[&done].deadline;
    let open_deadline = w.state.jobs[&open].deadline;
    let settled_at = w.height - 1;
    // Nothing is pruned before the retention has passed, nor off the pruning heights.
    let first = (settled_at + DEFAULT_RETENTION_BLOCKS).next_multiple_of(PRUNE_EVERY);
    let pruned = |events: Vec<Event>| -> Option<(u64, u64, u64)> {
        events.into_iter().find_map(|e| match e {
            Event::Pruned { jobs, receipts, batches } => Some((jobs, receipts, batches)),
            _ => None,
        })
    };
    assert_eq!(pruned(w.state.end_block(first - PRUNE_EVERY)), None);
    assert_eq!(pruned(w.state.end_block(first + 1)), None);
    // The settlements go first (the jobs' deadlines are later), then the jobs, the open one once its round expired.
    assert_eq!(pruned(w.state.end_block(first)), Some((0, 1, 1)));
    assert!(w.state.jobs.contains_key(&done) && w.state.jobs.contains_key(&open));
    let last = (done_deadline.max(open_deadline) + DEFAULT_RETENTION_BLOCKS).next_multiple_of(PRUNE_EVERY);
    let mut jobs = 0;
    for h in (first + PRUNE_EVERY..=last).step_by(PRUNE_EVERY as usize) {
        jobs += pruned(w.state.end_block(h)).map_or(0, |p| p.0);
    }
    assert_eq!(jobs, 2);
    assert!(w.state.jobs.is_empty() && w.state.batches.is_empty() && w.state.receipts.is_empty());
    // The settled count and the supply stay; the root covers the count and is the one from scratch.
    assert_eq!(w.state.settled_receipts(), settled);
    assert_eq!(w.state.pruned_settled, 51);
    assert_eq!(w.state.total_supply(), supply);
    assert_eq!(w.state.root(), w.state.root_from_scratch());
    let mut other = w.state.clone();
    other.pruned_settled -= 1;
    assert_ne!(other.root(), w.state.root());
    assert_snapshot_round_trip(&w.state);
    // A chain with retention 0 keeps everything.
    let mut g =
        Genesis { accounts: vec![], params: Params { retention_blocks: 0, ..Params::default() }, validators: vec![] };
    let mut keep = State::genesis(&g);
    keep.batches.insert(Digest([1; 32]), ([2; 32], 1, 5));
    assert!(keep.end_block(10 * PRUNE_EVERY + DEFAULT_RETENTION_BLOCKS).is_empty());
    assert_eq!(keep.settled_receipts(), 5);
    // The retention is part of the chain id only when it is not the default.
    let id0 = g.chain_id();
    g.params.retention_blocks = DEFAULT_RETENTION_BLOCKS;
    assert_ne!(g.chain_id(), id0);
    assert_eq!(g.chain_id(), Genesis { accounts: vec![], params: Params::default(), validators: vec![] }.chain_id());
    assert_eq!(
        Genesis::from_canonical(
            &Genesis { params: Params { retention_blocks: 0, ..Params::default() }, ..g.clone() }.to_canonical()
        )
        .unwrap()
        .params
        .retention_blocks,
        0
    );
}

/// Expiry finds timed-out rounds through a deadline index instead of scanning every job: at every height it expires
/// exactly the jobs a scan would (open, deadline passed), disputes that move a deadline are followed, and a state
/// restored from a snapshot (which rebuilds the index) expires the same jobs with the same events.
#[test]
fn expiry_through_the_deadline_index_matches_a_scan_of_every_job() {
    let mut w = World::new(9);
    let relayer = w.users[2].clone_key();
    let mut jobs = vec![];
    for round in 0..6u64 {
        let (job, executors) = w.submit_job(3);
        match round % 3 {
            // Everyone answers alike: settled, never expires.
            0 => {
                for e in &executors {
                    let tx = w.sign(&relayer, w.result(job, e, 9));
                    w.apply(&tx).unwrap();
                }
            }
            // Disagreement: disputed, with a later deadline; nobody of the dispute set answers.
            1 => {
                for (i, e) in executors.iter().enumerate() {
                    let tx = w.sign(&relayer, w.result(job, e, if i == 0 { 8 } else { 9 }));
                    w.apply(&tx).unwrap();
                }
                assert_eq!(w.state.jobs[&job].status, JobStatus::Disputed);
            }
            // Silent round.
            _ => {}
        }
        jobs.push(job);
        // Spread the deadlines over several heights.
        w.height += 37;
    }
    let mut restored: Option<State> = None;
    let last = w.state.jobs.values().map(|j| j.deadline).max().unwrap() + 2;
    for h in w.height..=last {
        let expected: Vec<Digest> = w
            .state
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j.status, JobStatus::Pending | JobStatus::Disputed) && j.deadline < h)
            .map(|(id, _)| *id)
            .collect();
        let events = w.state.end_block(h);
        let expired: Vec<Digest> = events
            .iter()
            .filter_map(|e| if let Event::JobExpired { job, .. } = e { Some(*job) } else { None })
            .collect();
        assert_eq!(expired, expected, "height {h}");
        if let Some(r) = restored.as_mut() {
            assert_eq!(r.end_block(h), events, "the restored state, height {h}");
            assert_eq!(r.root(), w.state.root());
        } else if !expected.is_empty() {
            // After the first expiry: continue on a copy restored from the snapshot encoding too.
            let mut wr = vouch_codec::Writer::new();
            w.state.encode(&mut wr);
            let bytes = wr.finish();
            restored = Some(State::decode(&mut vouch_codec::Reader::new(&bytes), &w.state).unwrap());
        }
    }
    assert!(restored.is_some());
    for job in &jobs {
        assert!(!matches!(w.state.jobs[job].status, JobStatus::Pending | JobStatus::Disputed), "{job} still open");
    }
    assert_eq!(w.state.root(), w.state.root_from_scratch());
}

/// The genesis's optional sections (1: TEE policy, 2: retention) decode only in canonical form: in order, each once,
/// never with its default value, no unknown marker.
#[test]
fn genesis_sections_are_canonical() {
    use vouch_codec::{DecodeError, Writer};
    use vouch_ledger::DEFAULT_RETENTION_BLOCKS;
    let base = Genesis { accounts: vec![], params: Params::default(), validators: vec![] };
    let plain = base.to_canonical();
    let with = |sections: &[(u8, u64)]| {
        let mut w = Writer::new();
        w.raw(&plain);
        for (marker, value) in sections {
            w.u8(*marker);
            w.u64(*value);
        }
        Genesis::from_canonical(&w.finish())
    };
    let reason = |r: Result<Genesis, DecodeError>| match r {
        Err(DecodeError::NonCanonical { reason, .. }) => reason,
        other => panic!("expected a non-canonical genesis, got {other:?}"),
    };
    assert_eq!(with(&[(2, 5)]).unwrap().params.retention_blocks, 5);
    assert_eq!(reason(with(&[(2, DEFAULT_RETENTION_BLOCKS)])), "a default retention section is omitted");
    assert_eq!(reason(with(&[(2, 5), (2, 6)])), "genesis sections out of order");
    assert_eq!(reason(with(&[(9, 5)])), "unknown genesis section");
    assert_eq!(reason(with(&[(0, 5)])), "genesis sections out of order");
    let g = Genesis { params: Params { retention_blocks: 5, ..Params::default() }, ..base.clone() };
    assert_eq!(Genesis::from_canonical(&g.to_canonical()).unwrap(), g);
    // Section 3, the validator parameters: a default one is refused, a set one round-trips (and changes the id).
    let mut w = Writer::new();
    w.raw(&plain);
    w.u8(3);
    let d = ValidatorParams::default();
    w.u64(d.epoch_length);
    w.u64(d.min_stake);
    w.u32(d.max_validators);
    w.u64(d.unbonding_blocks);
    assert_eq!(reason(Genesis::from_canonical(&w.finish())), "a default validators section is omitted");
    let v = ValidatorParams { epoch_length: 100, ..ValidatorParams::default() };
    let g = Genesis { params: Params { validators: v, ..Params::default() }, ..base.clone() };
    assert_eq!(Genesis::from_canonical(&g.to_canonical()).unwrap(), g);
    assert_ne!(g.chain_id(), base.chain_id());
}

/// A chain with epochs of 10 blocks: validators `[1; 32]`, `[2; 32]` from genesis, funded accounts 1..=3.
fn epoch_chain() -> (State, Vec<NodeKey>) {
    let users: Vec<NodeKey> = (1..=3).map(key).collect();
    let genesis_keys: Vec<NodeKey> = (200..202).map(key).collect();
    let params = Params {
        validators: ValidatorParams { epoch_length: 10, min_stake: 1_000, max_validators: 3, unbonding_blocks: 4 },
        ..Params::default()
    };
    let accounts = users.iter().chain(&genesis_keys).map(|k| (k.public_key(), FUNDS)).collect();
    let validators = genesis_keys.iter().map(|k| k.public_key()).collect();
    (State::genesis(&Genesis { accounts, params, validators }), users)
}

fn ctx_at(height: u64) -> BlockCtx {
    BlockCtx { height, seed: [0; 32], time_ms: 1_700_000_000_000 + height }
}

fn bond(state: &State, from: &NodeKey, nonce: u64, validator: &NodeKey, p2p: &str, stake: u64) -> SignedTx {
    let pop = validator.sign(domain::VALIDATOR_BIND, &from.public_key());
    let kind = TxKind::BondValidator { key: validator.public_key(), p2p: p2p.into(), stake, key_signature: pop };
    signed(state, from, nonce, kind)
}

#[test]
fn validator_bonds_choose_the_set_of_the_epoch_after_next_by_stake() {
    let (mut s, users) = epoch_chain();
    let genesis_set = s.validator_set(0).unwrap().clone();
    assert_eq!(s.validator_set(1), Some(&genesis_set), "the genesis set validates epochs 0 and 1");
    assert_eq!(genesis_set.len(), 2);
    let supply = s.total_supply();
    // Two candidates with more stake than the genesis validators' minimum, one with less than the minimum total.
    let (a, b) = (key(50), key(51));
    s.apply(&ctx_at(1), &bond(&s, &users[0], 0, &a, "10.0.0.1:9000", 5_000)).unwrap();
    s.apply(&ctx_at(1), &bond(&s, &users[1], 0, &b, "10.0.0.2:9000", 3_000)).unwrap();
    // More stake on an own key (the address may be omitted).
    s.apply(&ctx_at(2), &bond(&s, &users[1], 1, &b, "", 500)).unwrap();
    assert_eq!(s.validators.get(&b.public_key()).unwrap().stake, 3_500);
    assert_eq!(s.validators.get(&b.public_key()).unwrap().p2p, "10.0.0.2:9000");
    assert_eq!(s.total_supply(), supply, "bonds move tokens, never create them");
    // Nothing changes before the boundary; the last block of epoch 0 chooses epoch 2's set: the three largest stakes
    // (max_validators 3), sorted by key; epoch 1 keeps the genesis set.
    for h in 1..9 {
        assert!(s.end_block(h).iter().all(|e| !matches!(e, Event::ValidatorSetChosen { .. })));
    }
    let events = s.end_block(9);
    let mut want = vec![a.public_key(), b.public_key(), genesis_set[0]];
    // Genesis validators tie at the minimum; the smaller key wins.
    want.sort_unstable();
    assert!(events.contains(&Event::ValidatorSetChosen { epoch: 2, validators: want.clone() }), "{events:?}");
    assert_eq!(s.validator_set(0), None, "a past epoch's set leaves the state");
    assert_eq!(s.validator_set(1), Some(&genesis_set));
    assert_eq!(s.validator_set(2), Some(&want));
    assert_eq!(s.root(), s.root_from_scratch());
    assert_snapshot_round_trip(&s);

    // Unbonding in epoch 1: the key may be in epoch 2's set already, so it stays there; epoch 3's is chosen without
    // it, and its stake returns after the end of epoch 2 plus the unbonding delay.
    let events =
        s.apply(&ctx_at(12), &signed(&s, &users[0], 1, TxKind::UnbondValidator { key: a.public_key() })).unwrap();
    assert_eq!(events, vec![Event::Unbonding { node: a.public_key(), amount: 5_000, release_height: 30 + 4 }]);
    s.end_block(19);
    assert!(!s.validator_set(3).unwrap().contains(&a.public_key()));
    assert!(s.validator_set(2).unwrap().contains(&a.public_key()));
    let before = s.accounts.get(&users[0].public_key()).unwrap().balance;
    assert!(s.end_block(33).iter().all(|e| !matches!(e, Event::Unbonded { .. })));
    assert_eq!(s.end_block(34), vec![Event::Unbonded { node: a.public_key(), amount: 5_000 }]);
    assert_eq!(s.accounts.get(&users[0].public_key()).unwrap().balance, before + 5_000);
    assert!(s.validators.get(&a.public_key()).is_none(), "a fully unbonded key is forgotten");
    assert_eq!(s.total_supply(), supply);
    assert_eq!(s.root(), s.root_from_scratch());
}

#[test]
fn an_empty_candidate_list_keeps_the_set() {
    let (mut s, _) = epoch_chain();
    let genesis: Vec<NodeKey> = (200..202).map(key).collect();
    for (i, g) in genesis.iter().enumerate() {
        let tx = signed(&s, g, 0, TxKind::UnbondValidator { key: g.public_key() });
        s.apply(&ctx_at(1 + i as u64), &tx).unwrap();
    }
    s.end_block(9);
    assert_eq!(s.validator_set(2), s.validator_set(1), "a chain never goes without validators");
}

#[test]
fn validator_transaction_rejections() {
    let (mut s, users) = epoch_chain();
    let (a, b) = (key(50), key(51));
    s.apply(&ctx_at(1), &bond(&s, &users[0], 0, &a, "10.0.0.1:9000", 5_000)).unwrap();
    let root = s.root();
    let cases: Vec<(SignedTx, TxError)> = vec![
        // The proof of possession is by another key.
        (
            {
                let pop = a.sign(domain::VALIDATOR_BIND, &users[1].public_key());
                let kind = TxKind::BondValidator {
                    key: b.public_key(),
                    p2p: "10.0.0.2:1".into(),
                    stake: 5_000,
                    key_signature: pop,
                };
                signed(&s, &users[1], 0, kind)
            },
            TxError::BadValidatorSignature,
        ),
        // ... or for another account.
        (
            {
                let pop = b.sign(domain::VALIDATOR_BIND, &users[2].public_key());
                let kind = TxKind::BondValidator {
                    key: b.public_key(),
                    p2p: "10.0.0.2:1".into(),
                    stake: 5_000,
                    key_signature: pop,
                };
                signed(&s, &users[1], 0, kind)
            },
            TxError::BadValidatorSignature,
        ),
        (bond(&s, &users[1], 0, &b, "not an address", 5_000), TxError::BadP2pAddress("not an address".into())),
        (bond(&s, &users[1], 0, &b, "10.0.0.1:9000", 5_000), TxError::P2pAddressInUse("10.0.0.1:9000".into())),
        (bond(&s, &users[1], 0, &b, "10.0.0.2:1", 999), TxError::StakeTooLow { stake: 999, min: 1_000 }),
        (bond(&s, &users[1], 0, &b, "10.0.0.2:1", 0), TxError::InvalidAmount),
        (
            bond(&s, &users[1], 0, &b, "10.0.0.2:1", FUNDS),
            TxError::InsufficientBalance { needed: FUNDS + 1, available: FUNDS },
        ),
        // Someone else's key: neither more stake nor an unbond.
        (bond(&s, &users[1], 0, &a, "", 5_000), TxError::NotOperator(hex::encode(&a.public_key()[..8]))),
        (
            signed(&s, &users[1], 0, TxKind::UnbondValidator { key: a.public_key() }),
            TxError::NotOperator(hex::encode(&a.public_key()[..8])),
        ),
        (
            signed(&s, &users[1], 0, TxKind::UnbondValidator { key: b.public_key() }),
            TxError::UnknownValidator(hex::encode(&b.public_key()[..8])),
        ),
    ];
    for (tx, want) in cases {
        assert_eq!(s.apply(&ctx_at(2), &tx).unwrap_err(), want);
        assert_eq!(s.root(), root, "a refused {want:?} changed the state");
    }
    // A second unbond has nothing left.
    s.apply(&ctx_at(2), &signed(&s, &users[0], 1, TxKind::UnbondValidator { key: a.public_key() })).unwrap();
    let again = signed(&s, &users[0], 2, TxKind::UnbondValidator { key: a.public_key() });
    assert_eq!(s.apply(&ctx_at(3), &again).unwrap_err(), TxError::InvalidAmount);

    // A chain without epochs refuses both.
    let fixed = State::genesis(&Genesis {
        accounts: vec![(users[0].public_key(), FUNDS)],
        params: Params::default(),
        validators: vec![[9; 32]],
    });
    let mut fixed2 = fixed.clone();
    assert_eq!(
        fixed2.apply(&ctx_at(1), &bond(&fixed, &users[0], 0, &b, "10.0.0.2:1", 5_000)).unwrap_err(),
        TxError::FixedValidatorSet
    );
    let unbond = signed(&fixed, &users[0], 0, TxKind::UnbondValidator { key: [9; 32] });
    assert_eq!(fixed2.apply(&ctx_at(1), &unbond).unwrap_err(), TxError::FixedValidatorSet);
    assert_eq!(fixed2.validators.len(), 0);
    assert_eq!(fixed2.validator_set(0), None, "a fixed set lives in the genesis, not the state");
}
