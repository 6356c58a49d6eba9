//! Deterministic simulation of a 4-validator Vouch chain on commonware's deterministic runtime and simulated
//! network: a crashed validator, a restarted validator that catches up from its peers, a partition that halts
//! finality and heals, and a byzantine executor whose wrong result is disputed and slashed on the ledger. The same
//! seed must give the same final state.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use commonware_consensus::marshal::{core::Mailbox, standard::Standard};
use commonware_cryptography::{Signer as _, ed25519};
use commonware_p2p::simulated::{self, Link, Oracle};
use commonware_runtime::deterministic::{self, Context};
use commonware_runtime::{Clock as _, Handle, Quota, Runner as _, Spawner as _, Supervisor as _};
use commonware_utils::{NZUsize, ordered::Set, probability};
use futures::channel::{mpsc, oneshot};
use vouch_chain::anchor::{self, AnchorError};
use vouch_chain::app::Scheme;
use vouch_chain::batch::{Batch, PathError};
use vouch_chain::validator::{self, Channels, Config, Timing, channel};
use vouch_chain::{Block, Chain, ChainHandle};
use vouch_codec::tx::{Address, SignedTx, Tx, TxKind};
use vouch_codec::{AgreementRule, Digest, Mode, ModelId, ReceiptBody, domain};
use vouch_crypto::NodeKey;
use vouch_ledger::{Event, Genesis, JobStatus, Params};

const N: usize = 4;
const FUNDS: u64 = 1_000_000;

type Pk = ed25519::PublicKey;

fn link() -> Link {
    Link { latency: Duration::from_millis(10), jitter: Duration::from_millis(3), success_rate: probability!(1.0) }
}

/// A snapshot of one validator's chain decodes to the same bytes, is refused by another chain, and any tampering is
/// caught with its reason.
fn snapshot_checks(chain: &Chain, other_validator: &Chain) {
    use vouch_chain::snapshot::{self, SnapshotError};
    let bytes = snapshot::encode(&chain.state());
    let back = snapshot::decode(&bytes, other_validator).expect("a snapshot of the same chain decodes");
    assert_eq!(snapshot::encode(&back), bytes);
    let mut flipped = bytes.clone();
    flipped[40] ^= 1;
    assert_eq!(snapshot::decode(&flipped, chain).unwrap_err(), SnapshotError::ChecksumMismatch);
    assert_eq!(snapshot::decode(&bytes[..bytes.len() - 1], chain).unwrap_err(), SnapshotError::ChecksumMismatch);
    assert_eq!(snapshot::decode(b"garbage", chain).unwrap_err(), SnapshotError::NotASnapshot);
    // A body with a consistent checksum but a ledger that does not match its recorded root.
    let mut st = chain.state().clone();
    let someone = chain.genesis().accounts[0].0;
    st.ledger.accounts.get_mut(&someone).unwrap().balance += 1;
    assert_eq!(snapshot::decode(&snapshot::encode(&st), chain).unwrap_err(), SnapshotError::RootMismatch);
    // Another chain (other genesis) refuses it.
    let mut g = chain.genesis().clone();
    g.params.min_fee += 1;
    let stranger = Chain::new(g);
    let e = snapshot::decode(&bytes, &stranger).unwrap_err();
    assert!(matches!(&e, SnapshotError::Decode(d) if d.to_string().contains("another chain")), "{e}");
}

fn model() -> ModelId {
    ModelId::of_bytes(b"sim model")
}

/// Signs transactions for test accounts, tracking nonces.
struct Wallet {
    chain: [u8; 32],
    nonces: BTreeMap<Address, u64>,
}

impl Wallet {
    fn sign(&mut self, k: &NodeKey, kind: TxKind) -> Bytes {
        let from = k.public_key();
        let nonce = self.nonces.entry(from).or_default();
        let tx = Tx { chain: self.chain, from, nonce: *nonce, fee: 1, kind };
        *nonce += 1;
        let signature = k.sign(domain::TX_SIGNATURE, &tx.id().0);
        Bytes::from(SignedTx { tx, signature }.to_bytes())
    }
}

fn result_tx(node: &NodeKey, job: Digest, output: u8) -> TxKind {
    let body = receipt_body(node, job, output);
    let signature = node.sign(domain::RECEIPT_SIGNATURE, &body.id().0);
    TxKind::SubmitResult { job, node: node.public_key(), body: body.to_bytes(), signature }
}

fn receipt_body(node: &NodeKey, job: Digest, output: u8) -> ReceiptBody {
    ReceiptBody {
        format: 1,
        model: model(),
        mode: Mode::Quorum,
        engine: "tract-onnx 0.23.9".into(),
        job: job.0,
        issued_at_ms: 1,
        input_digest: Digest([5; 32]),
        output_digest: Digest([output; 32]),
        executors: vec![node.public_key()],
        rule: AgreementRule::Exact,
        extensions: vec![],
    }
}

struct Node {
    chain: ChainHandle,
    gossip: mpsc::UnboundedSender<Bytes>,
    marshal: Mailbox<Scheme, Standard<Block>>,
    handle: Handle<()>,
}

struct Sim {
    ctx: Context,
    oracle: Oracle<Pk, Context>,
    keys: Vec<ed25519::PrivateKey>,
    pks: Vec<Pk>,
    set: Set<Pk>,
    genesis: Genesis,
    nodes: Vec<Option<Node>>,
    restarts: usize,
    /// Where the validators that keep their ledger state on disk (a ledger store and a transaction index) have it.
    disk: tempfile::TempDir,
    on_disk: Vec<usize>,
}

impl Sim {
    async fn new(ctx: Context, accounts: Vec<(Address, u64)>) -> Self {
        Self::with_honest(ctx, accounts, N).await
    }

    /// A network where only the first `honest` validators run the protocol.
    async fn with_honest(ctx: Context, accounts: Vec<(Address, u64)>, honest: usize) -> Self {
        Self::with_params(ctx, accounts, honest, Params::default()).await
    }

    /// A network of chain parameters `params` where only the first `honest` validators run the protocol.
    async fn with_params(ctx: Context, accounts: Vec<(Address, u64)>, honest: usize, params: Params) -> Self {
        Self::with_store(ctx, accounts, honest, params, &[]).await
    }

    /// [`Sim::with_params`] where validators `on_disk` keep their ledger state in a ledger store on disk.
    async fn with_store(
        ctx: Context,
        accounts: Vec<(Address, u64)>,
        honest: usize,
        params: Params,
        on_disk: &[usize],
    ) -> Self {
        let keys: Vec<ed25519::PrivateKey> = (0..N as u64).map(ed25519::PrivateKey::from_seed).collect();
        let pks: Vec<Pk> = keys.iter().map(|k| k.public_key()).collect();
        let set = Set::from_iter_dedup(pks.clone());
        let genesis =
            Genesis { accounts, params, validators: pks.iter().map(|p| p.as_ref().try_into().unwrap()).collect() };
        let (network, oracle) = simulated::Network::new_with_peers(
            ctx.child("network"),
            simulated::Config {
                max_size: 8 << 20,
                max_peers_per_set: NZUsize!(N),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            pks.clone(),
        )
        .await;
        network.start();
        let mut sim = Self {
            ctx,
            oracle,
            keys,
            pks,
            set,
            genesis,
            nodes: (0..N).map(|_| None).collect(),
            restarts: 0,
            disk: tempfile::tempdir().unwrap(),
            on_disk: on_disk.to_vec(),
        };
        sim.link_all(|_, _| true).await;
        for i in 0..honest {
            sim.start(i).await;
        }
        sim
    }

    async fn link_all(&mut self, keep: impl Fn(usize, usize) -> bool) {
        for a in 0..N {
            for b in 0..N {
                if a != b && keep(a, b) {
                    let _ = self.oracle.remove_link(self.pks[a].clone(), self.pks[b].clone()).await;
                    self.oracle.add_link(self.pks[a].clone(), self.pks[b].clone(), link()).await.unwrap();
                }
            }
        }
    }

    async fn unlink(&mut self, cut: impl Fn(usize, usize) -> bool) {
        for a in 0..N {
            for b in 0..N {
                if a != b && cut(a, b) {
                    let _ = self.oracle.remove_link(self.pks[a].clone(), self.pks[b].clone()).await;
                }
            }
        }
    }

    /// Starts (or restarts, from its persisted storage) validator `i`: with an empty in-memory chain, or one on disk
    /// (resuming from its ledger store's checkpoint).
    async fn start(&mut self, i: usize) {
        let control = self.oracle.control(self.pks[i].clone());
        let mut pairs = vec![];
        for c in channel::ALL {
            pairs.push(
                control
                    .register(c, Quota::per_second(std::num::NonZeroU32::new(channel::rate(c)).unwrap()))
                    .await
                    .unwrap(),
            );
        }
        let chain = if self.on_disk.contains(&i) {
            let dir = self.disk.path().join(format!("validator-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let index = vouch_chain::index::TxIndex::open(&dir.join("txindex.redb")).unwrap();
            let store = vouch_chain::store::StateStore::open(&dir.join("state.redb")).unwrap();
            Chain::on_disk(self.genesis.clone(), index, 1 << 20, store)
        } else {
            Chain::new(self.genesis.clone())
        };
        let cfg = Config {
            signer: self.keys[i].clone(),
            validators: self.set.clone(),
            partition: format!("validator-{i}"),
            provider: self.oracle.manager(),
            blocker: control,
            // Snapshots every 3 blocks, so the restarted validator starts from one.
            timing: Timing { snapshot_every: 3, ..Timing::default() },
            state_sync: true,
        };
        let (tx, rx) = oneshot::channel();
        let c = chain.clone();
        self.restarts += 1;
        let handle = self.ctx.child("validator").with_attribute("index", i).with_attribute("run", self.restarts).spawn(
            move |ctx| async move {
                let v = validator::start(ctx, c, cfg, Channels { pairs }).await.expect("validator starts");
                let _ = tx.send((v.gossip.clone(), v.marshal.clone()));
                let _ = v.engine.await;
            },
        );
        let (gossip, marshal) = rx.await.expect("validator reports its gossip channel");
        self.nodes[i] = Some(Node { chain, gossip, marshal, handle });
    }

    async fn crash(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("running");
        node.handle.abort();
        let _ = node.handle.await;
    }

    fn submit(&self, via: usize, tx: Bytes) {
        self.nodes[via].as_ref().expect("running").gossip.unbounded_send(tx).unwrap();
    }

    fn chain(&self, i: usize) -> &ChainHandle {
        &self.nodes[i].as_ref().expect("running").chain
    }

    fn live(&self) -> Vec<usize> {
        (0..N).filter(|i| self.nodes[*i].is_some()).collect()
    }

    /// Waits (in simulated time) until every live validator has executed `tx`; returns its events.
    async fn finalized(&self, tx: &Bytes) -> Vec<Event> {
        let id = SignedTx::from_bytes(tx).unwrap().tx.id();
        for _ in 0..600 {
            let recs: Vec<_> = self.live().iter().map(|i| self.chain(*i).state().txs.get(&id).cloned()).collect();
            if recs.iter().all(Option::is_some) {
                let first = recs[0].clone().unwrap();
                assert!(recs.iter().all(|r| r.as_ref() == Some(&first)), "validators disagree on {id}");
                return first.result.unwrap_or_else(|e| panic!("tx {id} failed: {e}"));
            }
            self.ctx.sleep(Duration::from_millis(100)).await;
        }
        panic!("tx {id} not finalized on every live validator within 60 s");
    }

    fn height(&self, i: usize) -> u64 {
        self.chain(i).state().height
    }

    /// Waits until every live validator reached `height`.
    async fn reach(&self, height: u64) {
        // Up to 600 s of simulated time (a few hundred blocks on an idle chain).
        for _ in 0..6000 {
            if self.live().iter().all(|i| self.height(*i) >= height) {
                return;
            }
            self.ctx.sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "validators did not reach height {height}: {:?}",
            self.live().iter().map(|i| self.height(*i)).collect::<Vec<_>>()
        );
    }

    /// The state root every live validator computed at `height`.
    fn root_at(&self, height: u64) -> Digest {
        let roots: Vec<Digest> = self.live().iter().map(|i| self.chain(*i).state().roots[&height]).collect();
        assert!(roots.iter().all(|r| *r == roots[0]), "state roots differ at height {height}: {roots:?}");
        roots[0]
    }
}

/// What a run ends with: (common height, state root there, slashed amount of the liar, auditor digest).
type Outcome = (u64, Digest, u64, String);

fn scenario(seed: u64) -> Outcome {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|ctx| async move {
        let users: Vec<NodeKey> = (1..=2).map(|i| NodeKey::from_secret([i; 32])).collect();
        let executors: Vec<NodeKey> = (100..105).map(|i| NodeKey::from_secret([i; 32])).collect();
        let accounts = users.iter().chain(&executors).map(|k| (k.public_key(), FUNDS)).collect();
        let mut sim = Sim::new(ctx.child("sim"), accounts).await;
        let mut w = Wallet { chain: sim.genesis.chain_id(), nonces: BTreeMap::new() };

        // Executors register with stake; a model is registered.
        let mut last = Bytes::new();
        for (i, e) in executors.iter().enumerate() {
            let pop = e.sign(domain::NODE_BIND, &e.public_key());
            let kind = TxKind::RegisterNode {
                node: e.public_key(),
                endpoint: format!("http://127.0.0.1:{}", 7000 + i),
                stake: 10_000,
                node_signature: pop,
            };
            last = w.sign(e, kind);
            sim.submit(i % N, last.clone());
        }
        let reg_model = w.sign(
            &users[0],
            TxKind::RegisterModel {
                model: model(),
                name: "m@1".into(),
                commitment: vec![],
                rule: AgreementRule::Exact,
            },
        );
        sim.submit(0, reg_model.clone());
        sim.finalized(&last).await;
        sim.finalized(&reg_model).await;

        // One validator crashes (after its first snapshot): the other three keep finalizing.
        sim.reach(4).await;
        let crashed_at = sim.height(3);
        sim.crash(3).await;
        let before = sim.height(0);
        let transfer = w.sign(&users[0], TxKind::Transfer { to: users[1].public_key(), amount: 500 });
        sim.submit(1, transfer.clone());
        sim.finalized(&transfer).await;

        // A quorum job; one assigned executor lies.
        let job_tx = w.sign(
            &users[1],
            TxKind::SubmitJob {
                model: model(),
                input_digest: Digest([5; 32]),
                mode: Mode::Quorum,
                quorum: 3,
                fee_per_executor: 100,
            },
        );
        sim.submit(2, job_tx.clone());
        let (job, assigned) = match sim.finalized(&job_tx).await.as_slice() {
            [Event::JobAssigned { job, executors }] => (*job, executors.clone()),
            other => panic!("unexpected events {other:?}"),
        };
        let key_of = |a: &Address| executors.iter().find(|k| k.public_key() == *a).unwrap();
        let liar = assigned[0];
        let mut results = vec![];
        for a in &assigned {
            let out = if *a == liar { 66 } else { 9 };
            let tx = w.sign(key_of(a), result_tx(key_of(a), job, out));
            sim.submit(0, tx.clone());
            results.push(tx);
        }
        for r in &results {
            sim.finalized(r).await;
        }
        assert!(sim.height(0) > before, "chain advanced with a validator down");
        let dispute_set = sim.chain(0).state().ledger.jobs[&job].dispute_set.clone();
        assert!(!dispute_set.is_empty(), "a disagreement opens a dispute");

        // The crashed validator restarts from its storage and catches up from its peers.
        sim.start(3).await;
        let target = sim.height(0);
        assert!(target > crashed_at + 2, "the restarted validator missed blocks it must fetch from peers");
        sim.reach(target).await;
        sim.root_at(target);
        // It started from its newest local snapshot (taken before the crash) and replayed only what followed.
        let restored = sim.chain(3).restored_height().expect("restarted from a snapshot");
        assert!(restored >= 3 && restored <= crashed_at, "restored at {restored}, crashed at {crashed_at}");
        snapshot_checks(sim.chain(0), sim.chain(3));

        // Re-execution by the dispute set decides; the liar is slashed.
        let mut dispute_results = vec![];
        for a in &dispute_set {
            let tx = w.sign(key_of(a), result_tx(key_of(a), job, 9));
            sim.submit(3, tx.clone());
            dispute_results.push(tx);
        }
        for r in &dispute_results {
            sim.finalized(r).await;
        }
        let st = sim.chain(3).state().ledger.clone();
        assert_eq!(st.jobs[&job].status, JobStatus::Resolved(Digest([9; 32])));
        let slashed = st.nodes[&liar].slashed;
        assert!(slashed > 0, "the liar is slashed");
        for a in assigned.iter().filter(|a| **a != liar) {
            assert_eq!(st.nodes[a].slashed, 0, "honest executors keep their stake");
        }

        // A 2|2 partition: no quorum on either side, so nothing finalizes; healing resumes finality.
        sim.unlink(|a, b| (a < 2) != (b < 2)).await;
        ctx.sleep(Duration::from_secs(2)).await;
        let frozen: Vec<u64> = sim.live().iter().map(|i| sim.height(*i)).collect();
        let during = w.sign(&users[0], TxKind::Transfer { to: users[1].public_key(), amount: 7 });
        sim.submit(0, during.clone());
        ctx.sleep(Duration::from_secs(10)).await;
        let still: Vec<u64> = sim.live().iter().map(|i| sim.height(*i)).collect();
        assert_eq!(frozen, still, "no block finalizes without a quorum");
        sim.link_all(|a, b| (a < 2) != (b < 2)).await;
        sim.finalized(&during).await;

        // Every validator ends on the same state.
        let end = sim.live().iter().map(|i| sim.height(*i)).min().unwrap();
        sim.reach(end).await;
        let root = sim.root_at(end);
        // An executor settles a signed receipt; its anchor verifies offline against the validator set, and every
        // single change to it is caught with its exact error.
        let issuer = &executors[4];
        let body = receipt_body(issuer, job, 9);
        let settle = w.sign(issuer, TxKind::SettleReceipt { receipt: body.id() });
        sim.submit(2, settle.clone());
        sim.finalized(&settle).await;
        let mut a = None;
        for _ in 0..100 {
            let n = sim.nodes[1].as_ref().unwrap();
            a = anchor::build(&n.chain, &n.marshal, &body.id()).await;
            if a.is_some() {
                break;
            }
            ctx.sleep(Duration::from_millis(100)).await;
        }
        let a = a.expect("a finalized settlement has an anchor");
        let n0 = sim.nodes[0].as_ref().unwrap();
        let a0 = anchor::build(&n0.chain, &n0.marshal, &body.id()).await.expect("anchor on another validator");
        assert_eq!(
            (a0.height, a0.block_hash, a0.tx_index),
            (a.height, a.block_hash, a.tx_index),
            "same anchor everywhere"
        );
        let chain_id = sim.genesis.chain_id();
        let vals = sim.pks.clone();
        anchor::verify(&a, &body, &chain_id, &vals).unwrap();
        let check = |f: &dyn Fn(&mut vouch_codec::Anchor), want: &dyn Fn(&AnchorError) -> bool| {
            let mut t = a.clone();
            f(&mut t);
            let e = anchor::verify(&t, &body, &chain_id, &vals).expect_err("tampered anchor accepted");
            assert!(want(&e), "unexpected error {e}");
        };
        check(&|t| t.chain[0] ^= 1, &|e| matches!(e, AnchorError::WrongChain { .. }));
        check(&|t| t.height += 1, &|e| *e == AnchorError::BlockMismatch);
        check(&|t| t.block_hash[5] ^= 1, &|e| *e == AnchorError::BlockMismatch);
        check(&|t| t.headers.truncate(79), &|e| *e == AnchorError::MalformedHeaders);
        check(&|t| t.tx_index += 1, &|e| matches!(e, AnchorError::NotIncluded(_)));
        check(
            &|t| {
                let l = t.inclusion.len();
                t.inclusion[l - 1] ^= 1
            },
            &|e| matches!(e, AnchorError::NotIncluded(_)),
        );
        check(
            &|t| {
                let l = t.tx.len();
                t.tx[l - 1] ^= 1
            },
            &|e| matches!(e, AnchorError::NotIncluded(_)),
        );
        check(
            &|t| {
                let l = t.certificate.len();
                t.certificate[l - 1] ^= 1
            },
            &|e| *e == AnchorError::BadCertificate,
        );
        check(&|t| t.certificate.truncate(10), &|e| matches!(e, AnchorError::MalformedCertificate(_)));
        // Another receipt, and another validator set, are rejected too.
        let mut other = body.clone();
        other.output_digest = Digest([8; 32]);
        assert!(matches!(anchor::verify(&a, &other, &chain_id, &vals), Err(AnchorError::BadSettlement(_))));
        let strangers: Vec<Pk> = (10..14).map(|s| ed25519::PrivateKey::from_seed(s).public_key()).collect();
        assert_eq!(anchor::verify(&a, &body, &chain_id, &strangers), Err(AnchorError::BadCertificate));

        // Batched settlement: the issuer settles 5 receipts with one transaction, another node settles a batch that
        // names one of them as its own. Each member's anchor carries its path; every change to it is caught.
        let bodies: Vec<ReceiptBody> = (20..25).map(|i| receipt_body(issuer, job, i)).collect();
        let ids: Vec<Digest> = bodies.iter().map(|b| b.id()).collect();
        let b1 = Batch::new(&ids, &issuer.public_key());
        let b2 = Batch::new(&ids[..2], &issuer.public_key());
        let thief = &executors[3];
        let b3 = Batch::new(&ids[..3], &thief.public_key());
        let txs = [
            w.sign(issuer, TxKind::SettleBatch { root: b1.root(), count: b1.count() }),
            w.sign(issuer, TxKind::SettleBatch { root: b2.root(), count: b2.count() }),
            w.sign(thief, TxKind::SettleBatch { root: b3.root(), count: b3.count() }),
        ];
        for t in &txs {
            sim.submit(1, t.clone());
        }
        for t in &txs {
            sim.finalized(t).await;
        }
        assert!(sim.chain(0).state().ledger.settled_receipts() >= 10);
        let batched = |root: Digest, index: u32, path: Vec<u8>| {
            let n = sim.nodes[0].as_ref().unwrap();
            let (chain, marshal) = (n.chain.clone(), n.marshal.clone());
            async move {
                let path = vouch_codec::BatchPath { index, path };
                anchor::build_batched(&chain, &marshal, &root, None, path)
                    .await
                    .expect("a finalized batch has an anchor")
            }
        };
        let mut ba = vec![];
        for (i, body) in bodies.iter().enumerate() {
            let a = batched(b1.root(), i as u32, b1.path(i as u32).unwrap()).await;
            anchor::verify(&a, body, &chain_id, &vals).unwrap();
            ba.push(a);
        }
        let (body2, a2) = (&bodies[2], ba[2].clone());
        let check = |t: &vouch_codec::Anchor, want: &dyn Fn(&AnchorError) -> bool| {
            let e = anchor::verify(t, body2, &chain_id, &vals).expect_err("tampered batch anchor accepted");
            assert!(want(&e), "unexpected error {e}");
        };
        let not_in = |e: &AnchorError| matches!(e, AnchorError::NotInBatch(PathError::NotInBatch(_)));
        // A sibling changed.
        let mut t = a2.clone();
        let p = t.batch.as_mut().unwrap();
        let l = p.path.len();
        p.path[l - 1] ^= 1;
        check(&t, &not_in);
        // The index changed: another leaf's place, or past the end.
        let mut t = a2.clone();
        t.batch.as_mut().unwrap().index = 3;
        check(&t, &not_in);
        t.batch.as_mut().unwrap().index = 5;
        check(&t, &|e| *e == AnchorError::NotInBatch(PathError::IndexOutOfRange { index: 5, count: 5 }));
        // The root changed: the settlement of another batch of the same node (with the path into this one), or the
        // settling transaction's root rewritten (its signature, and its place in the block, no longer hold).
        let other = batched(b2.root(), 0, b2.path(0).unwrap()).await;
        let mut t = other.clone();
        t.batch = a2.batch.clone();
        check(&t, &|e| *e == AnchorError::NotInBatch(PathError::CountMismatch { expected: 2, found: 5 }));
        let mut t = ba[0].clone();
        t.tx = other.tx.clone();
        t.tx_index = other.tx_index;
        check(&t, &|e| matches!(e, AnchorError::NotIncluded(_)));
        let mut t = ba[0].clone();
        let mut stx = vouch_codec::tx::SignedTx::from_bytes(&t.tx).unwrap();
        stx.tx.kind = TxKind::SettleBatch { root: Digest([7; 32]), count: 5 };
        t.tx = stx.to_bytes();
        let e = anchor::verify(&t, &bodies[0], &chain_id, &vals).unwrap_err();
        assert!(matches!(e, AnchorError::NotIncluded(_)), "{e}");
        // The batch of another node that names the receipt: not its executor's settlement.
        let stolen = batched(b3.root(), 2, b3.path(2).unwrap()).await;
        check(&stolen, &|e| *e == AnchorError::BadSettlement("not sent by the receipt's executor".into()));
        // No path for a batch, or a path for a single settlement.
        let mut t = a2.clone();
        t.batch = None;
        check(&t, &|e| *e == AnchorError::MissingBatchPath);
        let mut t = a.clone();
        t.batch = a2.batch.clone();
        let e = anchor::verify(&t, &body, &chain_id, &vals).unwrap_err();
        assert_eq!(e, AnchorError::UnexpectedBatchPath);
        // A malformed path, and another receipt at a member's place.
        let mut t = a2.clone();
        t.batch.as_mut().unwrap().path.truncate(3);
        check(&t, &|e| matches!(e, AnchorError::NotInBatch(PathError::Malformed(_))));
        let e = anchor::verify(&ba[1], body2, &chain_id, &vals).unwrap_err();
        assert!(not_in(&e), "{e}");
        // The anchor survives its canonical and JSON encodings.
        let mut r = vouch_codec::Receipt {
            body: body2.clone(),
            inputs: None,
            outputs: Default::default(),
            evidence: vec![],
            anchor: Some(a2.clone()),
        };
        assert_eq!(vouch_codec::Receipt::from_bytes(&r.to_bytes()).unwrap().anchor, Some(a2.clone()));
        r.anchor = Some(a2.clone());
        let json = serde_json::to_string(&r.to_json()).unwrap();
        assert!(json.contains("\"batch\""), "{json}");

        let supply: u128 = sim.chain(0).state().ledger.total_supply();
        assert_eq!(supply, 7 * u128::from(FUNDS), "tokens are conserved");
        (end, root, slashed, ctx.auditor().state())
    })
}

#[test]
fn four_validators_survive_crash_restart_partition_and_slash_a_liar() {
    let a = scenario(7);
    eprintln!("final height {}, state root {}, liar slashed {}", a.0, a.1.to_hex(), a.2);
    assert!(a.0 > 5);
    // The same seed replays to the same final state, bit for bit.
    let b = scenario(7);
    assert_eq!(a, b);
}

#[test]
fn garbage_from_a_byzantine_peer_is_dropped_and_the_peer_blocked() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(11).with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|ctx| async move {
        let user = NodeKey::from_secret([1; 32]);
        let sim = Sim::with_honest(ctx.child("sim"), vec![(user.public_key(), FUNDS)], 3).await;
        let mut w = Wallet { chain: sim.genesis.chain_id(), nonces: BTreeMap::new() };

        // Validator 3 is byzantine: it speaks garbage on every consensus, block and transaction channel.
        let control = sim.oracle.control(sim.pks[3].clone());
        let mut senders = vec![];
        for c in channel::ALL {
            let (s, _r) = control
                .register(c, Quota::per_second(std::num::NonZeroU32::new(channel::rate(c)).unwrap()))
                .await
                .unwrap();
            senders.push((s, _r));
        }
        let honest: Vec<Pk> = sim.pks[..3].to_vec();
        for round in 0..20u8 {
            for (s, _) in senders.iter_mut() {
                let junk: Vec<u8> = (0..(round as usize * 97 % 4096)).map(|i| (i as u8).wrapping_mul(round)).collect();
                use commonware_p2p::Sender as _;
                let _ = s.send(commonware_p2p::Recipients::Some(honest.clone()), Bytes::from(junk), false);
            }
            ctx.sleep(Duration::from_millis(50)).await;
        }
        // A transaction with a forged signature.
        let mut forged = SignedTx::from_bytes(&w.sign(&user, TxKind::Transfer { to: [9; 32], amount: 1 })).unwrap();
        forged.signature[0] ^= 1;
        use commonware_p2p::Sender as _;
        let _ = senders[channel::TXS as usize].0.send(
            commonware_p2p::Recipients::Some(honest.clone()),
            Bytes::from(forged.to_bytes()),
            false,
        );
        w.nonces.clear();

        // The honest three keep finalizing real transactions and agree.
        let tx = w.sign(&user, TxKind::Transfer { to: [9; 32], amount: 10 });
        sim.submit(1, tx.clone());
        sim.finalized(&tx).await;
        let h = sim.live().iter().map(|i| sim.height(*i)).min().unwrap();
        sim.root_at(h);
        assert_eq!(
            sim.chain(0).state().ledger.accounts.get(&[9; 32]).unwrap().balance,
            10,
            "only the valid transfer applied"
        );
        let blocked = sim.oracle.blocked().await.unwrap();
        assert!(
            blocked.iter().any(|(by, who)| honest.contains(by) && *who == sim.pks[3]),
            "an honest validator blocks the peer that sent a forged transaction: {blocked:?}"
        );
    });
}

/// Millions of receipts settled in batches on four validators: the ledger holds one small entry per batch, so its
/// state (what a snapshot writes, and what a validator keeps in memory) stays a few hundred KB however many receipts
/// it settles; a validator that joined late (through a state sync from its peers) and one restarted from its
/// snapshot reach the same root; a member's anchor verifies after it all. Meanwhile a thousand new accounts are
/// funded: the two validators that keep their ledger state on disk (2, restarted from its store, and 3, synced onto
/// its store) hold them there and keep in memory only what changed since their last checkpoint, with the same roots
/// as the two that keep everything in memory.
#[test]
fn millions_of_batched_receipts_keep_the_state_small_and_every_validator_agrees() {
    const BATCHES: u32 = 1_024;
    const EPOCH: u64 = 32;
    const PER_BATCH: u32 = 4_096;
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(21).with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|ctx| async move {
        let executors: Vec<NodeKey> = (100..104).map(|i| NodeKey::from_secret([i; 32])).collect();
        let payer = NodeKey::from_secret([99; 32]);
        let fresh = |i: u32| -> Address { *blake3::hash(&[b"fresh".as_slice(), &i.to_be_bytes()].concat()).as_bytes() };
        let accounts = executors.iter().chain([&payer]).map(|k| (k.public_key(), FUNDS)).collect();
        // Validator 3 joins later. Settled batches leave the state 256 blocks after their settlement. Epochs of 32
        // blocks (the set stays the genesis one), so every epoch's boundary block commits a state root that a
        // joining validator's state sync is checked against.
        let params = Params {
            retention_blocks: 256,
            validators: vouch_ledger::ValidatorParams { epoch_length: EPOCH, ..Default::default() },
            ..Params::default()
        };
        let mut sim = Sim::with_store(ctx.child("sim"), accounts, 3, params, &[2, 3]).await;
        let mut w = Wallet { chain: sim.genesis.chain_id(), nonces: BTreeMap::new() };
        let chain_id = sim.genesis.chain_id();
        // One real batch whose member's anchor is checked at the end; the other roots stand for batches the
        // validators never see the members of (the ledger records a root and a count, nothing more).
        let issuer = &executors[0];
        let body = receipt_body(issuer, Digest([1; 32]), 1);
        let mut members: Vec<Digest> =
            (0..PER_BATCH).map(|i| Digest(*blake3::hash(&i.to_be_bytes()).as_bytes())).collect();
        members[7] = body.id();
        let real = Batch::new(&members, &issuer.public_key());
        let mut state_bytes = vec![];
        let mut all_txs = vec![];
        let mut last_payment = Bytes::new();
        let mut resident = vec![];
        for i in 0..BATCHES {
            // A new account each round, funded through validator 0.
            last_payment = w.sign(&payer, TxKind::Transfer { to: fresh(i), amount: 1 + u64::from(i) });
            sim.submit(0, last_payment.clone());
            let e = &executors[i as usize % executors.len()];
            let root = if i == 0 { real.root() } else { Digest(*blake3::hash(&i.to_be_bytes()).as_bytes()) };
            let last = w.sign(e, TxKind::SettleBatch { root, count: PER_BATCH });
            all_txs.push(last.clone());
            // Each sender's transactions through one validator (0 or 1, which stay up), in nonce order.
            sim.submit(i as usize % executors.len() % 2, last.clone());
            if i % 64 == 63 {
                sim.finalized(&last).await;
            }
            if i % 64 == 63 {
                for v in [2, 3] {
                    if let Some(n) = &sim.nodes[v] {
                        resident.push(n.chain.state().ledger.resident_entries());
                    }
                }
            }
            if i % 256 == 255 {
                sim.finalized(&last).await;
                let st = sim.chain(0).state();
                state_bytes.push((st.ledger.settled_receipts(), vouch_chain::snapshot::encode(&st).len()));
            }
            if i == BATCHES / 4 {
                // Validator 3 joins a quarter of the way in (at least two epochs in, so a committed sync point
                // exists), through a state sync from its peers.
                sim.reach(2 * EPOCH).await;
                sim.start(3).await;
            }
            if i == BATCHES / 2 {
                // Validator 2 crashes half way and restarts from its snapshot.
                sim.finalized(&last).await;
                sim.crash(2).await;
            }
            if i == BATCHES / 2 + 64 {
                sim.start(2).await;
            }
        }
        // Every sender's last transaction (each sender's are applied in nonce order), not only the very last one.
        for t in all_txs[all_txs.len() - executors.len()..].iter().chain([&last_payment]) {
            sim.finalized(t).await;
        }
        let settled = sim.chain(0).state().ledger.settled_receipts();
        assert_eq!(settled, u64::from(BATCHES) * u64::from(PER_BATCH));
        // The state grows by one entry per batch: its encoding (with every transaction record and the thousand new
        // accounts) stays far below a byte per receipt.
        eprintln!("settled receipts and state bytes: {state_bytes:?}");
        let (_, biggest) = *state_bytes.last().unwrap();
        assert!(biggest < 384 << 10, "state of {biggest} bytes for {settled} receipts");
        // All four agree on the root.
        let end = sim.live().iter().map(|i| sim.height(*i)).max().unwrap();
        sim.reach(end).await;
        sim.root_at(end);
        // Validator 3 started from a sync point (the state after an epoch's last block, checked against the root the
        // chain committed), not from genesis: it never executed nor fetched the blocks before.
        let n = sim.nodes[3].as_ref().unwrap();
        let synced = n.chain.synced_height().expect("validator 3 state-synced");
        assert!(
            synced >= EPOCH - 1 && (synced + 1).is_multiple_of(EPOCH),
            "synced after an epoch's last block: {synced}"
        );
        assert!(n.marshal.get_block(vouch_chain::validator::Height::new(1)).await.is_none());
        assert!(n.chain.tx_record(&SignedTx::from_bytes(&all_txs[0]).unwrap().tx.id()).is_none());
        // The new accounts are on the disk of validators 2 and 3, each as the in-memory validators have it; memory
        // held only the entries changed since the last checkpoint (every 3 blocks) whenever it was looked at.
        eprintln!("spilled entries resident on validators 2 and 3: {resident:?}");
        assert!(sim.nodes[2].as_ref().unwrap().chain.restored_height().is_some(), "validator 2 resumed from its store");
        for v in [2, 3] {
            let c = &sim.nodes[v].as_ref().unwrap().chain;
            assert!(c.checkpoint());
            assert_eq!(c.state().ledger.resident_entries(), 0);
            let on_disk = c.store().unwrap().len("accounts").unwrap();
            assert_eq!(on_disk, u64::from(BATCHES) + 5, "validator {v}: every account on disk");
            for i in [0, BATCHES / 3, BATCHES - 1] {
                assert_eq!(c.account(&fresh(i)), sim.chain(0).account(&fresh(i)));
                assert_eq!(c.account(&fresh(i)).balance, 1 + u64::from(i));
            }
        }
        let most = *resident.iter().max().unwrap();
        assert!(most * 4 < BATCHES as usize, "{most} of {BATCHES} spilled entries resident at once");
        // A member of the first batch still proves its settlement (from a validator that holds the block).
        let n = sim.nodes[0].as_ref().unwrap();
        let path = vouch_codec::BatchPath { index: 7, path: real.path(7).unwrap() };
        let a = anchor::build_batched(&n.chain, &n.marshal, &real.root(), None, path.clone()).await.expect("anchor");
        let sets = n.chain.validator_sets();
        anchor::verify_with_sets(&a, &body, &chain_id, &sets).unwrap();
        // Past the retention every batch leaves the state on every validator, at the same height: the roots agree, the
        // settled count stays, and the member's anchor is still built (from the settling height the issuer kept) and
        // verifies: it never depended on the state.
        let settled_at = sim.chain(0).batch(&real.root()).expect("recorded").1;
        let prune_at = (end + 256).next_multiple_of(vouch_ledger::PRUNE_EVERY);
        sim.reach(prune_at).await;
        sim.root_at(prune_at);
        for i in sim.live() {
            let st = sim.chain(i).state();
            assert!(st.ledger.batches.is_empty(), "validator {i} kept batches past the retention");
            assert_eq!(st.ledger.settled_receipts(), settled);
        }
        let n = sim.nodes[1].as_ref().unwrap();
        assert!(anchor::build_batched(&n.chain, &n.marshal, &real.root(), None, path.clone()).await.is_none());
        let late =
            anchor::build_batched(&n.chain, &n.marshal, &real.root(), Some(settled_at), path).await.expect("anchor");
        anchor::verify_with_sets(&late, &body, &chain_id, &sets).unwrap();
    });
}
