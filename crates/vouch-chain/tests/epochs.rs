//! Validator sets that change by stake at epoch boundaries, on the deterministic runtime and simulated network: a
//! fifth node follows the chain as an observer, bonds, validates from the epoch after next (finality then needs its
//! votes), a genesis validator unbonds and leaves, validators crash and restart across boundaries, and every node
//! ends with the same state root.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use commonware_consensus::marshal::{core::Mailbox, standard::Standard};
use commonware_cryptography::{Signer as _, ed25519};
use commonware_p2p::simulated::{self, Link, Oracle};
use commonware_runtime::deterministic::{self, Context};
use commonware_runtime::{Clock as _, Handle, Quota, Runner as _, Spawner as _, Supervisor as _};
use commonware_utils::{NZUsize, ordered::Set, probability};
use futures::channel::oneshot;
use vouch_chain::anchor::{self, AnchorError};
use vouch_chain::app::Scheme;
use vouch_chain::epoch::{self, EpochLink, LinkError, ValidatorSets};
use vouch_chain::spec::consensus_key;
use vouch_chain::validator::{self, Channels, Config, Timing, channel};
use vouch_chain::{Block, Chain, ChainHandle};
use vouch_codec::tx::{Address, SignedTx, Tx, TxKind};
use vouch_codec::{AgreementRule, Canonical as _, Digest, Mode, ReceiptBody, domain};
use vouch_crypto::NodeKey;
use vouch_ledger::{Event, Genesis, Params, ValidatorParams};

/// Genesis validators; one more node joins.
const GENESIS: usize = 4;
const ALL: usize = GENESIS + 1;
const EPOCH: u64 = 20;

type Pk = ed25519::PublicKey;

struct Node {
    chain: ChainHandle,
    marshal: Mailbox<Scheme, Standard<Block>>,
    gossip: futures::channel::mpsc::UnboundedSender<Bytes>,
    handle: Handle<()>,
}

struct Net {
    ctx: Context,
    oracle: Oracle<Pk, Context>,
    /// Consensus secrets (also usable as account keys through `NodeKey`).
    seeds: Vec<[u8; 32]>,
    pks: Vec<Pk>,
    genesis: Genesis,
    nodes: Vec<Option<Node>>,
    runs: usize,
}

fn addr(k: &Pk) -> Address {
    k.as_ref().try_into().unwrap()
}

impl Net {
    async fn new(ctx: Context, accounts: Vec<(Address, u64)>) -> Self {
        Self::with_nodes(ctx, accounts, |_| true).await
    }

    /// The network with the nodes `run` picks started.
    async fn with_nodes(ctx: Context, accounts: Vec<(Address, u64)>, run: impl Fn(usize) -> bool) -> Self {
        let seeds: Vec<[u8; 32]> = (0..ALL as u8).map(|i| [i + 1; 32]).collect();
        let pks: Vec<Pk> = seeds.iter().map(|s| consensus_key(s).public_key()).collect();
        let params = Params {
            validators: ValidatorParams {
                epoch_length: EPOCH,
                min_stake: 1_000,
                max_validators: 10,
                unbonding_blocks: 5,
            },
            ..Params::default()
        };
        let genesis = Genesis { accounts, params, validators: pks[..GENESIS].iter().map(addr).collect() };
        let (network, oracle) = simulated::Network::new_with_peers(
            ctx.child("network"),
            simulated::Config {
                max_size: 8 << 20,
                max_peers_per_set: NZUsize!(ALL),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            pks.clone(),
        )
        .await;
        network.start();
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            success_rate: probability!(1.0),
        };
        for a in 0..ALL {
            for b in 0..ALL {
                if a != b {
                    oracle.add_link(pks[a].clone(), pks[b].clone(), link.clone()).await.unwrap();
                }
            }
        }
        let mut net = Self { ctx, oracle, seeds, pks, genesis, nodes: (0..ALL).map(|_| None).collect(), runs: 0 };
        for i in (0..ALL).filter(|i| run(*i)) {
            net.start(i).await;
        }
        net
    }

    /// Starts (or restarts from its storage) node `i`.
    async fn start(&mut self, i: usize) {
        let control = self.oracle.control(self.pks[i].clone());
        let mut pairs = vec![];
        for c in channel::ALL {
            let quota = Quota::per_second(std::num::NonZeroU32::new(channel::rate(c)).unwrap());
            pairs.push(control.register(c, quota).await.unwrap());
        }
        let chain = Chain::new(self.genesis.clone());
        let cfg = Config {
            signer: consensus_key(&self.seeds[i]),
            validators: Set::from_iter_dedup(self.pks[..GENESIS].iter().cloned()),
            partition: format!("node-{i}"),
            provider: self.oracle.manager(),
            blocker: control,
            timing: Timing { snapshot_every: 7, ..Timing::default() },
            state_sync: true,
        };
        let (tx, rx) = oneshot::channel();
        let c = chain.clone();
        self.runs += 1;
        let handle = self.ctx.child("node").with_attribute("index", i).with_attribute("run", self.runs).spawn(
            move |ctx| async move {
                let v = validator::start(ctx, c, cfg, Channels { pairs }).await.expect("node starts");
                let _ = tx.send((v.gossip.clone(), v.marshal.clone()));
                let _ = v.engine.await;
            },
        );
        let (gossip, marshal) = rx.await.expect("node reports its gossip channel");
        self.nodes[i] = Some(Node { chain, marshal, gossip, handle });
    }

    async fn crash(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("running");
        node.handle.abort();
        let _ = node.handle.await;
    }

    fn live(&self) -> Vec<usize> {
        (0..ALL).filter(|i| self.nodes[*i].is_some()).collect()
    }

    fn chain(&self, i: usize) -> &ChainHandle {
        &self.nodes[i].as_ref().expect("running").chain
    }

    fn submit(&self, via: usize, tx: Bytes) {
        self.nodes[via].as_ref().expect("running").gossip.unbounded_send(tx).unwrap();
    }

    /// Waits until every live node has executed `tx`; returns its events.
    async fn finalized(&self, tx: &Bytes) -> Vec<Event> {
        let id = SignedTx::from_bytes(tx).unwrap().tx.id();
        for _ in 0..1_200 {
            let recs: Vec<_> = self.live().iter().map(|i| self.chain(*i).tx_record(&id)).collect();
            if recs.iter().all(Option::is_some) {
                return recs[0].clone().unwrap().result.unwrap_or_else(|e| panic!("tx {id} failed: {e}"));
            }
            self.ctx.sleep(Duration::from_millis(100)).await;
        }
        panic!("tx {id} not executed by every live node in 120 s");
    }

    /// Waits until every live node executed `height`.
    async fn reach(&self, height: u64) {
        for _ in 0..6_000 {
            if self.live().iter().all(|i| self.chain(*i).height() >= height) {
                return;
            }
            self.ctx.sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "nodes did not reach height {height}: {:?}",
            self.live().iter().map(|i| self.chain(*i).height()).collect::<Vec<_>>()
        );
    }

    /// The state root every live node computed at `height`.
    fn root_at(&self, height: u64) -> Digest {
        let roots: Vec<Digest> = self.live().iter().map(|i| self.chain(*i).root_at(height).expect("root")).collect();
        assert!(roots.iter().all(|r| *r == roots[0]), "state roots differ at height {height}: {roots:?}");
        roots[0]
    }
}

/// A receipt `executor` issued (only its id and executors matter to an anchor).
fn receipt(executor: &NodeKey, tag: u8) -> ReceiptBody {
    ReceiptBody {
        format: 1,
        model: vouch_codec::ModelId::of_bytes(b"epochs"),
        mode: Mode::Signed,
        engine: "tract-onnx 0.23.9".into(),
        job: [0; 32],
        issued_at_ms: 1,
        input_digest: Digest([tag; 32]),
        output_digest: Digest([tag; 32]),
        executors: vec![executor.public_key()],
        rule: AgreementRule::Exact,
        extensions: vec![],
    }
}

fn sign(chain: [u8; 32], nonces: &mut BTreeMap<Address, u64>, k: &NodeKey, kind: TxKind) -> Bytes {
    let from = k.public_key();
    let nonce = nonces.entry(from).or_default();
    let tx = Tx { chain, from, nonce: *nonce, fee: 1, kind };
    *nonce += 1;
    let signature = k.sign(domain::TX_SIGNATURE, &tx.id().0);
    Bytes::from(SignedTx { tx, signature }.to_bytes())
}

#[test]
fn a_validator_bonds_joins_at_the_epoch_after_next_and_one_leaves_while_consensus_goes_on() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(7).with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|ctx| async move {
        let operator = NodeKey::from_secret([77; 32]);
        // The genesis validators' own accounts pay their transactions' fees (a genesis bond belongs to the key).
        let seeds: Vec<[u8; 32]> = (0..ALL as u8).map(|i| [i + 1; 32]).collect();
        let mut accounts = vec![(operator.public_key(), 1_000_000)];
        accounts.extend(seeds[..GENESIS].iter().map(|s| (NodeKey::from_secret(*s).public_key(), 1_000)));
        let mut net = Net::new(ctx.child("net"), accounts).await;
        let chain_id = net.genesis.chain_id();
        let mut nonces = BTreeMap::new();
        let joiner = NodeKey::from_secret(seeds[GENESIS]);
        assert_eq!(joiner.public_key(), addr(&net.pks[GENESIS]), "a NodeKey and a consensus key of one seed agree");

        // Epoch 0: the fifth node follows as an observer; its operator bonds its key (proof of possession).
        let pop = joiner.sign(domain::VALIDATOR_BIND, &operator.public_key());
        let bond = sign(
            chain_id,
            &mut nonces,
            &operator,
            TxKind::BondValidator {
                key: joiner.public_key(),
                p2p: "10.0.0.5:9000".into(),
                stake: 5_000,
                key_signature: pop,
            },
        );
        net.submit(0, bond.clone());
        let early = receipt(&operator, 1);
        let settle = sign(chain_id, &mut nonces, &operator, TxKind::SettleReceipt { receipt: early.id() });
        net.submit(0, settle.clone());
        net.finalized(&bond).await;
        net.finalized(&settle).await;
        let bonded_at = net.chain(0).height();
        assert!(bonded_at < EPOCH - 1, "bonded in epoch 0 (at {bonded_at})");
        {
            let st = net.chain(4).state();
            assert_eq!(st.ledger.validators.get(&joiner.public_key()).map(|v| v.stake), Some(5_000));
            assert_eq!(st.ledger.validator_set(1).map(Vec::len), Some(GENESIS), "epoch 1's set was fixed at genesis");
        }

        // The end of epoch 0 chose epoch 2's set with it; the boundary block of epoch 1 carries that set.
        net.reach(EPOCH).await;
        let set2 = net.chain(4).state().ledger.validator_set(2).cloned().expect("set of epoch 2");
        assert_eq!(set2.len(), ALL);
        assert!(set2.contains(&joiner.public_key()));

        // In epoch 2 the set has five members, so finality needs four votes: with validator 0 down, the joiner's are
        // required. The chain goes on.
        net.reach(2 * EPOCH + 2).await;
        net.crash(0).await;
        let before = net.chain(1).height();
        net.reach(before + 8).await;
        assert!(net.chain(4).height() >= before + 8, "the joiner executes blocks finalized with its votes");
        net.start(0).await;

        // Validator 0 unbonds in epoch 2: still in epoch 3's set (fixed already), gone from epoch 4's.
        let v0 = NodeKey::from_secret(seeds[0]);
        let unbond = sign(chain_id, &mut nonces, &v0, TxKind::UnbondValidator { key: v0.public_key() });
        net.submit(1, unbond.clone());
        let events = net.finalized(&unbond).await;
        let at = net.chain(1).height();
        assert!(at < 3 * EPOCH - 1, "unbonded in epoch 2 (at {at})");
        let release = match events.as_slice() {
            [Event::Unbonding { node, amount: 1_000, release_height }] if *node == v0.public_key() => *release_height,
            other => panic!("unexpected events {other:?}"),
        };
        assert_eq!(release, 4 * EPOCH + 5, "stake returns once it cannot validate any more, plus the unbonding");

        // Validator 3 crashes in epoch 3 and restarts in epoch 4: it catches up across the boundary from its storage
        // and its peers.
        net.reach(3 * EPOCH + 2).await;
        net.crash(3).await;
        let set4 = net.chain(1).state().ledger.validator_set(4).cloned().expect("set of epoch 4");
        assert_eq!(set4.len(), GENESIS);
        assert!(!set4.contains(&v0.public_key()) && set4.contains(&joiner.public_key()));
        net.reach(4 * EPOCH + 6).await;
        net.start(3).await;

        // Epoch 5: everyone (validator 0 now an observer) agrees; validator 0's stake came back.
        let end = 5 * EPOCH + 3;
        let late = receipt(&operator, 2);
        let settle = sign(chain_id, &mut nonces, &operator, TxKind::SettleReceipt { receipt: late.id() });
        net.submit(1, settle.clone());
        net.finalized(&settle).await;
        net.reach(end).await;
        net.root_at(end);
        anchors_across_epochs(&net, &early, &late).await;
        // Each epoch's engine journals in a partition of its own; those two epochs back are removed.
        use commonware_runtime::Storage as _;
        let epoch = end / EPOCH;
        assert!(!net.ctx.scan(&format!("node-1-simplex-{epoch}")).await.unwrap_or_default().is_empty());
        assert!(net.ctx.scan(&format!("node-1-simplex-{}", epoch - 2)).await.unwrap_or_default().is_empty());
        let st = net.chain(0).state();
        assert_eq!(st.ledger.accounts.get(&v0.public_key()).map(|a| a.balance), Some(1_000 - 1 + 1_000));
        assert!(st.ledger.validators.get(&v0.public_key()).is_none(), "a fully unbonded key is forgotten");
        assert_eq!(st.ledger.validator_set(6).map(Vec::len), Some(GENESIS));
    });
}

/// Anchors verify offline against the set of their epoch: from the genesis set through the epoch links a node
/// serves; each link and anchor changed in one place is refused with its reason.
async fn anchors_across_epochs(net: &Net, early: &ReceiptBody, late: &ReceiptBody) {
    let (chain, marshal) = (net.chain(1), &net.nodes[1].as_ref().unwrap().marshal);
    let chain_id = net.genesis.chain_id();
    let params = &net.genesis.params.validators;
    let a_early = anchor::build(chain, marshal, &early.id()).await.expect("anchor in epoch 0");
    let a_late = anchor::build(chain, marshal, &late.id()).await.expect("anchor in a later epoch");
    let late_epoch = params.epoch_of(a_late.height);
    assert!(late_epoch >= 4, "settled in epoch {late_epoch}");
    let mut links: Vec<EpochLink> = vec![];
    for e in 0..late_epoch {
        links.push(epoch::build_link(params, marshal, e).await.unwrap_or_else(|| panic!("link of epoch {e}")));
    }
    let sets = ValidatorSets::from_links(params, &net.genesis.validators, &links).expect("the links verify");
    assert_eq!(sets.latest(), late_epoch);
    // The finalized chain commits to the state root at the start of every epoch: the links carry what every node
    // computed there.
    assert_eq!(sets.state_roots().len() as u64, late_epoch);
    for (height, root) in sets.state_roots() {
        assert_eq!(Some(Digest(*root)), chain.root_at(*height), "state root at height {height}");
    }
    anchor::verify_with_sets(&a_early, early, &chain_id, &sets).unwrap();
    anchor::verify_with_sets(&a_late, late, &chain_id, &sets).unwrap();
    // The node's own sets agree.
    anchor::verify_with_sets(&a_late, late, &chain_id, &chain.validator_sets()).unwrap();
    // With the genesis set alone, only the epoch-0 anchor verifies.
    let genesis_only = ValidatorSets::from_links(params, &net.genesis.validators, &[]).unwrap();
    anchor::verify_with_sets(&a_early, early, &chain_id, &genesis_only).unwrap();
    assert_eq!(
        anchor::verify_with_sets(&a_late, late, &chain_id, &genesis_only),
        Err(AnchorError::UnknownEpoch(late_epoch))
    );
    // A link's encoding round-trips.
    for l in &links {
        assert_eq!(&EpochLink::from_canonical(&l.to_canonical()).unwrap(), l);
    }
    let check = |links: &[EpochLink]| ValidatorSets::from_links(params, &net.genesis.validators, links).map(|_| ());
    // A set, or a state root, that is not the boundary block's.
    let mut t = links.clone();
    t[1].change.validators.pop();
    assert!(matches!(check(&t), Err(LinkError::NotIncluded(_))), "{:?}", check(&t));
    let mut t = links.clone();
    t[2].change.state_root[0] ^= 1;
    assert!(matches!(check(&t), Err(LinkError::NotIncluded(_))), "{:?}", check(&t));
    // Links out of order, or one skipped.
    assert_eq!(check(&links[1..]), Err(LinkError::WrongEpoch { expected: 1, found: 2 }));
    // A header that is not the boundary.
    let mut t = links.clone();
    t[0].header.height += 1;
    assert_eq!(check(&t), Err(LinkError::NotBoundary { expected: EPOCH - 1, found: EPOCH }));
    // A certificate of another block, and a certificate with a signature changed.
    let mut t = links.clone();
    t[2].certificate = links[3].certificate.clone();
    assert!(matches!(check(&t), Err(LinkError::BadCertificate(_))), "{:?}", check(&t));
    let mut t = links.clone();
    let n = t[2].certificate.len();
    t[2].certificate[n - 5] ^= 1;
    assert!(matches!(check(&t), Err(LinkError::BadCertificate(_))), "{:?}", check(&t));
    // An anchor whose certificate is swapped for the epoch-0 anchor's.
    let mut t = a_late.clone();
    t.certificate = a_early.certificate.clone();
    assert!(anchor::verify_with_sets(&t, late, &chain_id, &sets).is_err());
}

/// What validators vote on: a boundary block must end with exactly the set the ledger fixed, and no other block may
/// carry one. Each wrong block is refused with its reason.
#[test]
fn boundary_blocks_carry_exactly_the_fixed_set() {
    use vouch_chain::chain::{BlockTxError, check_block_txs, check_epoch_change};
    use vouch_chain::epoch::EpochChange;
    let keys: Vec<Address> = (1..=4u8).map(|i| NodeKey::from_secret([i; 32]).public_key()).collect();
    let user = NodeKey::from_secret([9; 32]);
    let params = Params {
        validators: ValidatorParams { epoch_length: 10, min_stake: 1_000, max_validators: 10, unbonding_blocks: 5 },
        ..Params::default()
    };
    let genesis = Genesis { accounts: vec![(user.public_key(), 1_000)], params, validators: keys.clone() };
    let chain = Chain::new(genesis.clone());
    let mut set = keys.clone();
    set.sort_unstable();
    let good = EpochChange { epoch: 1, state_root: chain.root_at(0).unwrap().0, validators: set.clone() };
    let tx = sign(genesis.chain_id(), &mut BTreeMap::new(), &user, TxKind::Transfer { to: [1; 32], amount: 1 });
    let block = |height: u64, items: Vec<Bytes>| vouch_chain::Block::new([0; 32], height, 1, items);
    let item = |c: &EpochChange| Bytes::from(c.to_canonical());
    let check = |b: &vouch_chain::Block| check_block_txs(&chain, b).and_then(|_| check_epoch_change(&chain, b));
    let reason = |b: &vouch_chain::Block| match check(b) {
        Err(BlockTxError::EpochChange(r)) => r,
        other => panic!("expected an epoch change refusal, got {other:?}"),
    };

    // The boundary (height 9 = the last of epoch 0) with transactions, then the set of epoch 1.
    let ok = block(9, vec![tx.clone(), item(&good)]);
    assert_eq!(check_block_txs(&chain, &ok).unwrap().len(), 1, "the change is not a transaction");
    check(&ok).unwrap();
    // Missing, for the wrong epoch, another set, not the last item, garbage.
    assert_eq!(reason(&block(9, vec![])), "the boundary block carries none");
    assert_eq!(reason(&block(9, vec![item(&EpochChange { epoch: 2, ..good.clone() })])), "for epoch 2, expected 1");
    let mut fewer = good.clone();
    fewer.validators.pop();
    assert_eq!(reason(&block(9, vec![item(&fewer)])), "carries the set of epoch 1 that the ledger did not choose");
    let wrong_root = EpochChange { state_root: [0; 32], ..good.clone() };
    assert_eq!(reason(&block(9, vec![item(&wrong_root)])), "carries a state root that is not the ledger's at height 0");
    assert!(reason(&block(9, vec![item(&good), tx.clone()])).contains("bad magic bytes"));
    let garbage = reason(&block(9, vec![Bytes::from_static(b"VOUCH_EPOCH_V1 garbage")]));
    assert!(garbage.contains("unexpected end of input"), "{garbage}");
    let mut unsorted = good.clone();
    unsorted.validators.reverse();
    assert!(reason(&block(9, vec![item(&unsorted)])).contains("not sorted"));
    // Any other block holds transactions only.
    assert!(matches!(check(&block(5, vec![item(&good)])), Err(BlockTxError::Malformed { index: 0, .. })));
    check(&block(5, vec![tx])).unwrap();
}

/// A node that starts with empty storage after four epochs takes the ledger from its peers at the start of the newest
/// epoch whose root the chain committed (checked from the genesis through the epoch links), never executes the
/// blocks before, follows the chain to the same roots, restarts from its own disk, and serves the links it learned.
#[test]
fn a_node_starting_late_syncs_the_state_from_its_peers_and_follows_the_chain() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new().with_seed(11).with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|ctx| async move {
        let operator = NodeKey::from_secret([77; 32]);
        // One genesis validator lies to syncing nodes instead of validating: the one with the lowest key, so that the
        // joiner (which tries equal offers in key order) asks it first. The other three finalize without it.
        let pks: Vec<Pk> = (0..GENESIS as u8).map(|i| consensus_key(&[i + 1; 32]).public_key()).collect();
        let liar = (0..GENESIS).min_by_key(|i| pks[*i].clone()).unwrap();
        let joiner = GENESIS;
        let accounts = vec![(operator.public_key(), 1_000_000)];
        let mut net = Net::with_nodes(ctx.child("net"), accounts, |i| i != liar && i != joiner).await;
        let chain_id = net.genesis.chain_id();
        let params = net.genesis.params.validators.clone();
        let honest = (0..GENESIS).find(|i| *i != liar).unwrap();
        let mut nonces = BTreeMap::new();
        // Traffic over four epochs.
        let mut settled = vec![];
        for i in 0..32u8 {
            let tx =
                sign(chain_id, &mut nonces, &operator, TxKind::SettleReceipt { receipt: receipt(&operator, i).id() });
            net.submit(0, tx.clone());
            settled.push(tx);
            if i % 8 == 7 {
                net.finalized(settled.last().unwrap()).await;
                net.ctx.sleep(Duration::from_secs(5)).await;
            }
        }
        net.reach(4 * EPOCH + 3).await;

        // The liar offers the same sync point as the others, with the real links, and a snapshot whose ledger is two
        // blocks older (consistent in itself).
        let h = params.last_height(2);
        let marshal = &net.nodes[honest].as_ref().unwrap().marshal;
        let mut links = vec![];
        for e in 0..=params.epoch_of(h) + 1 {
            links.push(epoch::build_link(&params, marshal, e).await.expect("link"));
        }
        let at = states_at(marshal, &net.genesis, &[h - 2, h]).await;
        let mut forged = at[&h].clone();
        forged.ledger = at[&(h - 2)].ledger.clone();
        forged.roots.insert(h, forged.ledger.root());
        spawn_liar(&net, liar, h, links, vouch_chain::snapshot::encode_sync(&forged)).await;

        // The fifth node starts from nothing and syncs: the newest sync point whose root is committed is the start
        // of epoch 3 (epoch 3's boundary block, committing it, is final; epoch 4's is not yet).
        net.start(joiner).await;
        let synced = loop {
            if let Some(h) = net.chain(joiner).synced_height() {
                break h;
            }
            net.ctx.sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(synced, h, "synced at the start of epoch 3");
        let blocked = net.oracle.blocked().await.unwrap();
        assert!(
            blocked.contains(&(net.pks[joiner].clone(), net.pks[liar].clone())),
            "the joiner blocked the peer whose snapshot did not match the committed root: {blocked:?}"
        );
        let first = SignedTx::from_bytes(&settled[0]).unwrap().tx.id();
        assert!(net.chain(joiner).tx_record(&first).is_none(), "the blocks before the sync point were not executed");
        let marshal = &net.nodes[joiner].as_ref().unwrap().marshal;
        assert!(marshal.get_block(validator::Height::new(1)).await.is_none(), "nor fetched");
        assert_eq!(net.chain(joiner).root_at(h), net.chain(0).root_at(h), "the root it synced is the chain's");

        // It follows the chain: a transaction through it, and the same roots as everyone.
        let tx = sign(chain_id, &mut nonces, &operator, TxKind::SettleReceipt { receipt: receipt(&operator, 99).id() });
        net.submit(joiner, tx.clone());
        net.finalized(&tx).await;
        let end = net.chain(0).height() + 2;
        net.reach(end).await;
        net.root_at(end);

        // It restarts from its own disk (its floor is recorded; nothing is fetched again) and keeps following.
        net.crash(joiner).await;
        net.start(joiner).await;
        let end = net.chain(0).height() + 2 * EPOCH;
        net.reach(end).await;
        net.root_at(end);
        assert!(net.chain(joiner).restored_height().is_some_and(|r| r >= h), "restarted from a local snapshot");
        assert_eq!(net.chain(joiner).synced_height(), None, "not synced again");

        // It keeps the links it learned and serves them (and checks anchors of those epochs with their sets).
        let marshal = &net.nodes[joiner].as_ref().unwrap().marshal;
        let mut links: Vec<EpochLink> = vec![];
        for e in 0..4 {
            links.push(epoch::link_for(net.chain(joiner), marshal, e).await.expect("a learned link"));
        }
        let sets = ValidatorSets::from_links(&params, &net.genesis.validators, &links).expect("they verify");
        assert_eq!(sets.latest(), 4);
        assert!(net.chain(joiner).validator_sets().get(1).is_some());

        sync_point_verification(&net, honest, h).await;
    });
}

/// The sync-point verifier on real data (the links and the state after `h` rebuilt from a validator's archive):
/// the valid point verifies, each one changed in one place is refused with its reason.
async fn sync_point_verification(net: &Net, honest: usize, h: u64) {
    use vouch_chain::snapshot::{SnapshotError, encode_sync};
    use vouch_chain::statesync::{SyncError, verify};
    let params = &net.genesis.params.validators;
    let marshal = &net.nodes[honest].as_ref().unwrap().marshal;
    let mut links = vec![];
    for e in 0..=params.epoch_of(h) + 1 {
        links.push(epoch::build_link(params, marshal, e).await.expect("link"));
    }
    let at = states_at(marshal, &net.genesis, &[h - EPOCH, h - 2, h]).await;
    let fresh = || Chain::new(net.genesis.clone());
    let good = encode_sync(&at[&h]);
    let synced = verify(&fresh(), &links, h, good.clone()).expect("the sync point verifies");
    assert_eq!(synced.state.ledger.root(), at[&h].ledger.root());
    assert_eq!(synced.state.roots.keys().copied().collect::<Vec<_>>(), vec![h], "only the committed root stays");
    assert_eq!(synced.sets.latest(), params.epoch_of(h) + 2);

    let err = |links: &[EpochLink], height: u64, bytes: Vec<u8>| verify(&fresh(), links, height, bytes).err().unwrap();
    // Another height than an epoch's last.
    assert_eq!(err(&links, h + 1, good.clone()), SyncError::NotAnEpochEnd(h + 1));
    // The link committing the root missing.
    let e = params.epoch_of(h) + 1;
    assert_eq!(err(&links[..e as usize], h, good.clone()), SyncError::MissingLinks { need: e + 1, have: e });
    // A link whose set was changed.
    let mut bad = links.clone();
    bad[1].change.validators.pop();
    assert!(matches!(err(&bad, h, good.clone()), SyncError::Link(LinkError::NotIncluded(_))));
    // A flipped byte.
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    assert_eq!(err(&links, h, flipped), SyncError::Snapshot(SnapshotError::ChecksumMismatch));
    // The point of the epoch before, offered as this one.
    assert_eq!(
        err(&links, h, encode_sync(&at[&(h - EPOCH)])),
        SyncError::WrongHeight { expected: h, found: h - EPOCH }
    );
    // An older ledger under this height (consistent in itself: its own root recorded).
    let mut older = at[&h].clone();
    older.ledger = at[&(h - 2)].ledger.clone();
    older.roots.insert(h, older.ledger.root());
    assert_eq!(err(&links, h, encode_sync(&older)), SyncError::RootMismatch(h));
    // Another tip header.
    let mut tip = at[&h].clone();
    tip.headers.get_mut(&h).unwrap().timestamp_ms += 1;
    assert_eq!(err(&links, h, encode_sync(&tip)), SyncError::HeaderMismatch(h));
    // A header in the middle changed: the next one no longer chains to it.
    let mut middle = at[&h].clone();
    middle.headers.get_mut(&(h - 5)).unwrap().timestamp_ms += 1;
    assert_eq!(err(&links, h, encode_sync(&middle)), SyncError::BrokenHeaders(h - 4));
}

/// The chain states after `heights`, executed afresh from a node's archive.
async fn states_at(
    marshal: &Mailbox<Scheme, Standard<Block>>,
    genesis: &Genesis,
    heights: &[u64],
) -> BTreeMap<u64, vouch_chain::ChainState> {
    let replay = Chain::new(genesis.clone());
    let mut at = BTreeMap::new();
    for height in 1..=heights.iter().copied().max().unwrap_or(0) {
        let b = marshal.get_block(validator::Height::new(height)).await.expect("archived");
        assert!(replay.execute(b.inner()));
        if heights.contains(&height) {
            at.insert(height, replay.state().clone());
        }
    }
    at
}

/// Node `i` answers state-sync requests with an offer of the point after `height`, the real `links`, and `snapshot`
/// (and nothing else).
async fn spawn_liar(net: &Net, i: usize, height: u64, links: Vec<EpochLink>, snapshot: Vec<u8>) {
    use commonware_p2p::{Receiver as _, Recipients, Sender as _};
    use vouch_chain::statesync::{CHUNK, Message};
    let control = net.oracle.control(net.pks[i].clone());
    let quota = Quota::per_second(std::num::NonZeroU32::new(channel::rate(channel::STATE_SYNC)).unwrap());
    let (mut sender, mut receiver) = control.register(channel::STATE_SYNC, quota).await.unwrap();
    net.ctx.child("liar").spawn(move |_| async move {
        while let Ok((peer, msg)) = receiver.recv().await {
            let answer = match Message::from_canonical(msg.as_ref()) {
                Ok(Message::OfferRequest) => Message::Offer { height, len: snapshot.len() as u64 },
                Ok(Message::LinksRequest { from, to }) => {
                    Message::Links { from, links: links[from as usize..=(to as usize).min(links.len() - 1)].to_vec() }
                }
                Ok(Message::ChunkRequest { height, index }) => {
                    let start = (index as usize * CHUNK).min(snapshot.len());
                    let end = (start + CHUNK).min(snapshot.len());
                    Message::Chunk { height, index, bytes: snapshot[start..end].to_vec() }
                }
                _ => continue,
            };
            let _ = sender.send(Recipients::One(peer), answer.to_canonical(), false);
        }
    });
}
