//! Validators join and leave by stake on a real network: `vouch devnet --nodes 4 --epoch-length N`, and a fifth node
//! process that is not in the genesis. It bonds (`vouch tx bond-validator`), syncs from its peers, validates from the
//! epoch after next (with a genesis validator killed, finality then needs its votes), unbonds and leaves; consensus
//! goes on throughout, and receipts anchored in each epoch verify offline against the genesis plus the epoch links.
//! A genesis validator that loses its chain storage comes back through a state sync from its peers.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, bench_models, try_http, vouch_bin, wait_for};
use serde_json::Value;

const EPOCH: u64 = 24;

fn get(addr: SocketAddr, path: &str) -> Option<Value> {
    let (code, v) = try_http(addr, "GET", path, "application/json", b"")?;
    (code == 200).then_some(v)
}

fn height(addr: SocketAddr) -> u64 {
    get(addr, "/v1/ledger/status").and_then(|s| s["height"].as_u64()).unwrap_or(0)
}

fn run(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(vouch_bin()).args(args).env("VOUCH_NODE", url).output().unwrap()
}

fn vouch(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(
        out.status.success(),
        "vouch {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Infers through `url`, waits for the anchor, saves the anchored receipt as `{tag}.json`; returns its path.
fn infer_settled(url: &str, dir: &Path, input: &Path, tag: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{tag}-raw.json"));
    vouch(url, &["infer", "mlp", "--input", input.to_str().unwrap(), "-o", path.to_str().unwrap()]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let anchored = vouch(url, &["receipt", "show", r["id"].as_str().unwrap(), "--wait", "--timeout", "90"]);
    let out = dir.join(format!("{tag}.json"));
    std::fs::write(&out, anchored).unwrap();
    out
}

/// The height a finalized transaction landed at (the output of `vouch tx ... --wait`).
fn tx_height(out: &str) -> u64 {
    let v: Value = serde_json::from_str(out).unwrap();
    assert_eq!(v["result"]["ok"], Value::Bool(true), "{v}");
    v["height"].as_u64().unwrap()
}

/// The validator sets the node holds, by epoch.
fn sets(addr: SocketAddr) -> Vec<(u64, Vec<String>)> {
    let v = get(addr, "/v1/ledger/validators").unwrap_or(Value::Null);
    v["sets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let keys = s["validators"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
            (s["epoch"].as_u64().unwrap(), keys)
        })
        .collect()
}

fn kill_hard(home: &Path) {
    let pids = Command::new("pgrep").arg("-f").arg(format!("node run --home {}", home.display())).output().unwrap();
    let pids = String::from_utf8(pids.stdout).unwrap();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert!(!pids.is_empty(), "{} is running", home.display());
    for pid in &pids {
        assert!(Command::new("kill").args(["-KILL", pid]).status().unwrap().success());
    }
    wait_for("the killed node to exit", 30, || {
        pids.iter().all(|pid| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            !state.contains("State:\tR") && !state.contains("State:\tS") && !state.contains("State:\tD")
        })
    });
}

fn start_node(home: &Path, extra: &[&str]) -> Proc {
    Proc(
        Command::new(vouch_bin())
            .args(["node", "run", "--home"])
            .arg(home)
            .args(extra)
            .env("VOUCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join(format!("run-{}.log", std::process::id()))).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn a_fifth_node_bonds_validates_then_unbonds_and_leaves_while_receipts_of_each_epoch_verify_offline() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("net");
    // Below the ephemeral range (32768+), so no outgoing connection holds one of these ports.
    let base: u16 = 10_000 + (std::process::id() % 1_000) as u16 * 8;
    let devnet = Command::new(vouch_bin())
        .args(["devnet", "--nodes", "4", "--epoch-length", &EPOCH.to_string(), "--base-port", &base.to_string()])
        .arg("--home")
        .arg(&home)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _devnet = Proc(devnet);
    let addrs: Vec<SocketAddr> = (0..5).map(|i| SocketAddr::from(([127, 0, 0, 1], base + i))).collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    wait_for("the four genesis nodes to finalize blocks", 180, || addrs[..4].iter().all(|a| height(*a) >= 2));

    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        serde_json::json!({"x": {"dtype": "f32", "shape": [1, 16], "data": vec![0.25; 16]}}).to_string(),
    )
    .unwrap();
    let dev = home.join("dev-account.key");
    let dev = dev.to_str().unwrap();
    let model = bench_models().join("mlp_small.onnx");
    // Pushed to node 2, which stays up: the others fetch it from there by id.
    vouch(&urls[2], &["model", "push", model.to_str().unwrap(), "--name", "mlp", "--account", dev]);
    let mut receipts = vec![infer_settled(&urls[0], dir.path(), &input, "genesis-set")];

    // The fifth node: the chain spec, its own key, a p2p address of its own; it is in no set yet.
    let joiner_home = home.join("joiner");
    std::fs::create_dir_all(&joiner_home).unwrap();
    std::fs::copy(home.join("genesis.json"), joiner_home.join("genesis.json")).unwrap();
    let joiner_key = vouch_crypto::NodeKey::load_or_create(&joiner_home.join("node.key")).unwrap();
    let consensus =
        vouch_chain::spec::consensus_public_hex(&joiner_key.derive_seed(vouch_chain::spec::CONSENSUS_KEY_CONTEXT));
    let p2p = format!("127.0.0.1:{}", base + 104);
    let _joiner = start_node(&joiner_home, &["--listen", &addrs[4].to_string(), "--p2p", &p2p]);
    let t = Instant::now();
    while get(addrs[4], "/v1/node").is_none() {
        let log = std::fs::read_dir(&joiner_home)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        assert!(t.elapsed() < Duration::from_secs(240), "the joiner's API is not up after 240 s; its log:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Bond it from the dev account (the node key proves the consensus key).
    let key_path = joiner_home.join("node.key");
    let bond = [
        "tx",
        "bond-validator",
        "--node-key",
        key_path.to_str().unwrap(),
        "--p2p",
        &p2p,
        "--stake",
        "20000",
        "--account",
        dev,
        "--wait",
    ];
    let bond_height = tx_height(&vouch(&urls[1], &bond));
    let joins = bond_height / EPOCH + 2;
    // The joiner syncs (its peers accept it once it is bonded) and follows consensus as an observer.
    wait_for("the joiner to catch up", 180, || height(addrs[4]) + 2 >= height(addrs[0]) && height(addrs[4]) > 0);
    wait_for("the epoch the joiner validates", 180, || height(addrs[0]) >= joins * EPOCH + 2);
    let set: Vec<String> = sets(addrs[0]).into_iter().find(|(e, _)| *e == joins).expect("the joiner's epoch").1;
    assert_eq!(set.len(), 5);
    assert!(set.contains(&consensus), "{set:?} lacks {consensus}");
    let out = vouch(&urls[4], &["ledger", "validators"]);
    assert!(out.contains(&consensus[..16]), "{out}");

    // Genesis validator 0 goes down: of five, four must vote, so blocks now need the joiner's votes.
    kill_hard(&home.join("node0"));
    let h = height(addrs[1]);
    wait_for("finality without node 0", 120, || [1, 2, 3, 4].iter().all(|i| height(addrs[*i]) >= h + 6));
    receipts.push(infer_settled(&urls[1], dir.path(), &input, "with-joiner"));
    let _node0 = start_node(&home.join("node0"), &[]);

    // It unbonds (`--stake` is not needed): still in the next epoch's set, gone from the one after.
    let unbond = ["tx", "unbond-validator", "--node-key", key_path.to_str().unwrap(), "--account", dev, "--wait"];
    let unbond_height = tx_height(&vouch(&urls[2], &unbond));
    let leaves = unbond_height / EPOCH + 2;
    wait_for("the epoch without the joiner", 240, || height(addrs[1]) >= leaves * EPOCH + 2);
    let set: Vec<String> = sets(addrs[1]).into_iter().find(|(e, _)| *e == leaves).expect("the epoch after").1;
    assert_eq!(set.len(), 4);
    assert!(!set.contains(&consensus));
    receipts.push(infer_settled(&urls[2], dir.path(), &input, "after-joiner"));
    // It is just an observer now: stopping it changes nothing.
    kill_hard(&joiner_home);
    let h = height(addrs[1]);
    wait_for("finality without the joiner", 120, || (0..4).all(|i| height(addrs[i]) >= h + 4));

    // Offline: the genesis plus the epoch links a node serves prove every epoch's set; each receipt verifies.
    let epochs = dir.path().join("epochs.json");
    std::fs::write(&epochs, vouch(&urls[3], &["ledger", "epochs"])).unwrap();
    let genesis = home.join("genesis.json");
    let (g, e) = (genesis.to_str().unwrap(), epochs.to_str().unwrap());
    let mut anchored_epochs = vec![];
    for r in &receipts {
        let out = vouch(&urls[0], &["verify", "--json", "--genesis", g, "--epochs", e, r.to_str().unwrap()]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["valid"], Value::Bool(true), "{v}");
        anchored_epochs.push(v["anchor_epoch"].as_u64().unwrap());
    }
    assert!(
        anchored_epochs[0] < joins && anchored_epochs[1] >= joins && anchored_epochs[2] >= leaves,
        "{anchored_epochs:?}"
    );
    let text = vouch(&urls[0], &["verify", "--genesis", g, "--epochs", e, receipts[2].to_str().unwrap()]);
    assert!(text.contains(&format!("verified against the validators of epoch {}", anchored_epochs[2])), "{text}");
    // Without the links the later anchors cannot be checked; with a link removed the chain of sets breaks.
    let out = run(&urls[0], &["verify", "--genesis", g, receipts[2].to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("whose validator set is not known here"), "{out:?}");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&epochs).unwrap()).unwrap();
    doc["links"].as_array_mut().unwrap().remove(0);
    let broken = dir.path().join("broken-epochs.json");
    std::fs::write(&broken, doc.to_string()).unwrap();
    let out =
        run(&urls[0], &["verify", "--genesis", g, "--epochs", broken.to_str().unwrap(), receipts[1].to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("epoch links: epoch link is for epoch 2, expected 1"),
        "{out:?}"
    );

    // Genesis validator 3 loses its chain storage: restarted with nothing, it takes the state from its peers at the
    // start of a recent epoch (checked against the root the chain committed) instead of replaying the chain.
    kill_hard(&home.join("node3"));
    std::fs::remove_dir_all(home.join("node3").join("chain")).unwrap();
    let _node3 = start_node(&home.join("node3"), &[]);
    let synced = Instant::now();
    let mut at = None;
    wait_for("node 3 to state-sync", 120, || {
        at = get(addrs[3], "/v1/ledger/status").and_then(|s| s["state_synced_at"].as_u64());
        at.is_some()
    });
    let at = at.unwrap();
    assert_eq!((at + 1) % EPOCH, 0, "a sync point follows an epoch's last block: {at}");
    wait_for("node 3 to follow the chain", 120, || {
        height(addrs[3]) > at + EPOCH && height(addrs[3]) + 2 >= height(addrs[1])
    });
    eprintln!("node 3 synced at height {at} and caught up in {:?}", synced.elapsed());
    let h = height(addrs[3]) - 1;
    let root = |a: SocketAddr| get(a, &format!("/v1/ledger/blocks/{h}")).map(|b| b["state_root"].clone());
    assert!(root(addrs[3]).is_some_and(|r| r.is_string()), "node 3 has block {h}");
    assert_eq!(root(addrs[3]), root(addrs[1]), "the same state root at height {h}");
    // The blocks before the sync point were never fetched; the epoch links it learned are served.
    assert_eq!(try_http(addrs[3], "GET", "/v1/ledger/blocks/1", "application/json", b"").map(|r| r.0), Some(404));
    let links: Value = serde_json::from_str(&vouch(&urls[3], &["ledger", "epochs"])).unwrap();
    assert!(links["links"].as_array().is_some_and(|l| l.len() as u64 > at / EPOCH), "{links}");
    // The synced state went straight onto its ledger store: the accounts are on disk, checkpointed at the sync point
    // or later.
    let status = get(addrs[3], "/v1/ledger/status").unwrap();
    let store = &status["state_store"];
    assert!(store["accounts_on_disk"].as_u64().is_some_and(|n| n >= 1), "{status}");
    assert!(store["checkpoint_height"].as_u64().is_some_and(|h| h >= at), "{status}");
}
