//! `vouch devnet --nodes 4` with real processes on loopback: a model pushed to one node, inference in signed mode;
//! receipts settle on every node with the same anchor, which verifies offline against the genesis; one node killed:
//! inference and settlement continue; restarted: it catches up to the same state root.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, bench_models, http, try_http, vouch_bin, wait_for};
use serde_json::Value;

fn status(addr: SocketAddr) -> Option<Value> {
    let (code, v) = try_http(addr, "GET", "/v1/ledger/status", "application/json", b"")?;
    (code == 200).then_some(v)
}

fn spec_node_id(home: &Path, i: usize) -> Value {
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(home.join("genesis.json")).unwrap()).unwrap();
    spec["validators"][i]["node_id"].clone()
}

fn vouch(url: &str, args: &[&str]) -> String {
    let out = Command::new(vouch_bin()).args(args).env("VOUCH_NODE", url).output().unwrap();
    assert!(
        out.status.success(),
        "vouch {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Infers through `url` and waits for the receipt's anchor; returns the anchored receipt.
fn infer_settled(url: &str, dir: &Path, input: &Path, tag: &str) -> Value {
    let path = dir.join(format!("{tag}.json"));
    vouch(url, &["infer", "mlp", "--input", input.to_str().unwrap(), "-o", path.to_str().unwrap()]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let id = r["id"].as_str().unwrap().to_owned();
    let anchored = vouch(url, &["receipt", "show", &id, "--wait", "--timeout", "60"]);
    let anchored_path = dir.join(format!("{tag}-anchored.json"));
    std::fs::write(&anchored_path, &anchored).unwrap();
    serde_json::from_str(&anchored).unwrap()
}

#[test]
fn four_node_devnet_settles_receipts_survives_a_crash_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("net");
    let base: u16 = 21_000 + (std::process::id() % 2_000) as u16 * 4;
    let devnet = Command::new(vouch_bin())
        .args(["devnet", "--nodes", "4", "--snapshot-every", "4", "--base-port", &base.to_string(), "--home"])
        .arg(&home)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Proc(devnet);
    let addrs: Vec<SocketAddr> = (0..4).map(|i| SocketAddr::from(([127, 0, 0, 1], base + i))).collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    wait_for("all four nodes to finalize blocks", 90, || {
        addrs.iter().all(|a| status(*a).is_some_and(|s| s["height"].as_u64().unwrap_or(0) >= 2))
    });

    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        serde_json::json!({"x": {"dtype": "f32", "shape": [1, 16], "data": vec![0.25; 16]}}).to_string(),
    )
    .unwrap();
    let model = bench_models().join("mlp_small.onnx");
    let dev_key = home.join("dev-account.key");
    vouch(
        &urls[2],
        &["model", "push", model.to_str().unwrap(), "--name", "mlp", "--account", dev_key.to_str().unwrap()],
    );

    // Signed inference through node 0, which does not have the model: it fetches it from a peer by id (checking the
    // hash), runs it, and the receipt settles; every node has the anchoring block with the same hash.
    let r1 = infer_settled(&urls[0], dir.path(), &input, "r1");
    assert_eq!(r1["executors"][0], spec_node_id(&home, 0));
    let a = &r1["anchor"];
    let h = a["height"].as_u64().unwrap();
    for addr in &addrs {
        wait_for("the anchoring block on every node", 30, || {
            status(*addr).is_some_and(|s| s["height"].as_u64() >= Some(h))
        });
        let (code, b) = http(*addr, "GET", &format!("/v1/ledger/blocks/{h}"), "application/json", b"");
        assert_eq!(code, 200);
        assert_eq!(b["hash"], a["block_hash"], "same anchor on {addr}");
    }
    let genesis = home.join("genesis.json");
    let out = vouch(
        &urls[0],
        &["verify", "--genesis", genesis.to_str().unwrap(), dir.path().join("r1-anchored.json").to_str().unwrap()],
    );
    assert!(out.contains("anchor  settled at height"), "{out}");
    // Online: against the spec and the block that node 3 serves.
    let r1_path = dir.path().join("r1-anchored.json");
    let out = vouch(&urls[3], &["verify", "--online", r1_path.to_str().unwrap()]);
    assert!(out.contains("anchor  settled at height"), "{out}");

    // Quorum mode through node 1, which does not have the model (it replicates it from a peer by id): three
    // executors drawn by the ledger each run and sign; one receipt carries three signatures over one output digest.
    wait_for("all four nodes registered as executors, with one engine string", 60, || {
        let (_, nodes) = http(addrs[0], "GET", "/v1/ledger/nodes", "application/json", b"");
        nodes.as_array().is_some_and(|n| {
            n.len() == 4
                && n.iter().all(|x| x["engine"].as_str().is_some_and(|e| !e.is_empty() && *e == n[0]["engine"]))
        })
    });
    // The requester's account (the devnet's funded dev account) signs the job and pays: the transaction fee plus
    // the three executors' fees, escrowed when the job is finalized.
    let account = home.join("dev-account.key");
    let account = account.to_str().unwrap();
    let dev_address = vouch_crypto::NodeKey::load(Path::new(account)).unwrap().public_key();
    let balance = |a: SocketAddr| {
        let path = format!("/v1/ledger/accounts/{}", hex::encode(dev_address));
        http(a, "GET", &path, "application/json", b"").1["balance"].as_u64().unwrap()
    };
    let before = balance(addrs[1]);
    let q = dir.path().join("q.json");
    let q_args = ["infer", "mlp", "--mode", "quorum", "--quorum", "3", "--account", account, "--input"];
    vouch(&urls[1], &[&q_args[..], &[input.to_str().unwrap(), "-o", q.to_str().unwrap()]].concat());
    let qr: Value = serde_json::from_str(&std::fs::read_to_string(&q).unwrap()).unwrap();
    assert_eq!(qr["mode"], "quorum");
    assert_eq!(qr["executors"].as_array().unwrap().len(), 3);
    assert_eq!(qr["evidence"].as_array().unwrap().len(), 3);
    assert_eq!(qr["rule"]["kind"], "exact", "{qr}");
    assert_eq!(balance(addrs[1]), before - 1 - 3 * 10, "the requester pays the tx fee and 3 executor fees");

    // The executor endpoint: a node the ledger did not assign refuses, an assigned one refuses other inputs.
    let job = qr["job"].as_str().unwrap();
    let assigned: Vec<&str> = qr["executors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    let outsider = (0..4).find(|i| !assigned.contains(&spec_node_id(&home, *i).as_str().unwrap())).unwrap();
    let insider = (0..4).find(|i| assigned.contains(&spec_node_id(&home, *i).as_str().unwrap())).unwrap();
    let inputs = serde_json::json!({"inputs": {"x": {"dtype": "f32", "shape": [1, 16], "data": vec![0.25; 16]}}});
    let (code, body) = http(
        addrs[outsider],
        "POST",
        &format!("/v1/jobs/{job}/execute"),
        "application/json",
        inputs.to_string().as_bytes(),
    );
    assert_eq!((code, body["error"]["code"].as_str()), (403, Some("not_assigned")), "{body}");
    let other = serde_json::json!({"inputs": {"x": {"dtype": "f32", "shape": [1, 16], "data": vec![0.5; 16]}}});
    let (code, body) = http(
        addrs[insider],
        "POST",
        &format!("/v1/jobs/{job}/execute"),
        "application/json",
        other.to_string().as_bytes(),
    );
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("input_mismatch")), "{body}");
    let out = vouch(&urls[0], &["verify", q.to_str().unwrap()]);
    assert_eq!(out.matches("signer").count(), 3, "{out}");
    // The first assigned executor settles the quorum receipt; its anchor verifies against the genesis.
    let qa = vouch(&urls[1], &["receipt", "show", qr["id"].as_str().unwrap(), "--wait", "--timeout", "60"]);
    let qa_path = dir.path().join("q-anchored.json");
    std::fs::write(&qa_path, &qa).unwrap();
    let gen_path = home.join("genesis.json");
    let out = vouch(&urls[2], &["verify", "--genesis", gen_path.to_str().unwrap(), qa_path.to_str().unwrap()]);
    assert!(out.contains("anchor  settled at height"), "{out}");
    // A quorum receipt whose settling executor is not the entry node (more jobs until the draw gives one): the entry
    // node gets the member's place in that executor's batch (`GET /v1/settlements/{id}`), builds the anchor from
    // its own chain and verifies it before attaching it.
    let entry = spec_node_id(&home, 1);
    let mut other = qr.clone();
    for attempt in 0..12 {
        if other["executors"][0] != entry {
            break;
        }
        let path = dir.path().join(format!("q-more-{attempt}.json"));
        vouch(&urls[1], &[&q_args[..], &[input.to_str().unwrap(), "-o", path.to_str().unwrap()]].concat());
        other = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    }
    assert_ne!(other["executors"][0], entry, "the entry node settled 13 quorum receipts in a row");
    let settler = (0..4).find(|i| spec_node_id(&home, *i) == other["executors"][0]).unwrap();
    let other_id = other["id"].as_str().unwrap();
    let anchored = vouch(&urls[1], &["receipt", "show", other_id, "--wait", "--timeout", "60"]);
    let anchored_json: Value = serde_json::from_str(&anchored).unwrap();
    let (code, place) = http(addrs[settler], "GET", &format!("/v1/settlements/{other_id}"), "application/json", b"");
    assert_eq!(code, 200, "{place}");
    assert_eq!(place["index"], anchored_json["anchor"]["batch"]["index"], "{place} {anchored}");
    assert_eq!(place["path"], anchored_json["anchor"]["batch"]["path"], "{place} {anchored}");
    let (code, body) = http(addrs[1], "GET", &format!("/v1/settlements/{other_id}"), "application/json", b"");
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("settlement_not_found")), "{body}");
    let other_path = dir.path().join("q-other-anchored.json");
    std::fs::write(&other_path, &anchored).unwrap();
    let out = vouch(&urls[0], &["verify", "--genesis", gen_path.to_str().unwrap(), other_path.to_str().unwrap()]);
    assert!(out.contains("anchor  settled at height") && out.contains(" in a batch of "), "{out}");
    let ls = vouch(&urls[3], &["node", "ls"]);
    assert_eq!(ls.lines().count(), 4, "{ls}");

    // Kill node 3 hard (after its first local snapshots): inference and settlement continue on the other three.
    wait_for("node 3 past its first snapshots", 60, || {
        status(addrs[3]).is_some_and(|s| s["height"].as_u64().unwrap_or(0) >= 9)
    });
    let pid = Command::new("pgrep")
        .arg("-f")
        .arg(format!("node run --home {}", home.join("node3").display()))
        .output()
        .unwrap();
    let pids = String::from_utf8(pid.stdout).unwrap();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert!(!pids.is_empty(), "node 3 is running");
    for pid in &pids {
        assert!(Command::new("kill").args(["-KILL", pid]).status().unwrap().success());
    }
    // SIGKILL is asynchronous: wait until every such process has exited (a zombie holds no files) and the listener
    // is gone, so the restart below finds the storage unlocked.
    wait_for("node 3 to exit", 30, || {
        std::net::TcpStream::connect(addrs[3]).is_err()
            && pids.iter().all(|pid| {
                let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                !state.contains("State:\tR") && !state.contains("State:\tS") && !state.contains("State:\tD")
            })
    });
    let r2 = infer_settled(&urls[2], dir.path(), &input, "r2");
    assert!(r2["anchor"]["height"].as_u64().unwrap() > h);

    // Restart node 3 as a liar (fault injection): it catches up to the same state root as the others.
    let cfg = home.join("node3").join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}fault_flip_outputs = true\n")).unwrap();
    let _node3 = Proc(
        Command::new(vouch_bin())
            .args(["node", "run", "--home"])
            .arg(home.join("node3"))
            .env("VOUCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.join("node3").join("restart.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let target = status(addrs[0]).unwrap()["height"].as_u64().unwrap();
    let restart_log = home.join("node3").join("restart.log");
    let t = Instant::now();
    while status(addrs[3]).is_none_or(|s| s["height"].as_u64().unwrap_or(0) < target) {
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "node 3 did not catch up in 180 s; status {:?}; its log:\n{}",
            status(addrs[3]),
            std::fs::read_to_string(&restart_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Compare state roots at one height every node has executed.
    let roots: Vec<Value> = addrs
        .iter()
        .map(|a| {
            http(*a, "GET", &format!("/v1/ledger/blocks/{target}"), "application/json", b"").1["state_root"].clone()
        })
        .collect();
    assert!(roots[0].is_string(), "{roots:?}");
    assert!(roots.iter().all(|r| *r == roots[0]), "state roots differ at height {target}: {roots:?}");
    let st = status(addrs[3]).unwrap();
    assert!(st["settled_receipts"].as_u64().unwrap() >= 2, "{st}");
    // It started from its newest local snapshot (every 4 blocks) and replayed only the blocks after it.
    assert!(st["restored_from_snapshot"].as_u64().is_some_and(|h| h >= 8), "{st}");

    // A float model pushed with a declared tolerance: the liar's flipped low bit is within it, so all four executors
    // (the liar among them) sign one output digest and the receipt states the rule; nobody is slashed for it.
    let mnist = bench_models().join("mlp_mnist.onnx");
    vouch(
        &urls[2],
        &[
            "model",
            "push",
            mnist.to_str().unwrap(),
            "--name",
            "mnist",
            "--tolerance",
            "1e-4",
            "--account",
            dev_key.to_str().unwrap(),
        ],
    );
    let mnist_input = dir.path().join("mnist-in.json");
    let pixels: Vec<f32> = (0..784).map(|i| (i % 17) as f32 / 17.0).collect();
    std::fs::write(
        &mnist_input,
        serde_json::json!({"x": {"dtype": "f32", "shape": [1, 784], "data": pixels}}).to_string(),
    )
    .unwrap();
    let t = dir.path().join("t.json");
    let t_args = ["infer", "mnist", "--mode", "quorum", "--quorum", "4", "--account", account, "--input"];
    vouch(&urls[0], &[&t_args[..], &[mnist_input.to_str().unwrap(), "-o", t.to_str().unwrap()]].concat());
    let tr: Value = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    assert_eq!(tr["rule"], serde_json::json!({"kind": "tolerance", "abs": 1e-4, "rel": 0.0}), "{tr}");
    assert_eq!(tr["evidence"].as_array().unwrap().len(), 4);
    let out = vouch(&urls[1], &["verify", t.to_str().unwrap()]);
    assert_eq!(out.matches("signer").count(), 4, "{out}");

    // Quorum jobs until the ledger assigns the liar: the executors disagree, the dispute set re-executes, and the
    // liar (only the liar) is slashed on every node's ledger.
    let liar = std::fs::read_to_string(home.join("genesis.json")).unwrap();
    let spec: Value = serde_json::from_str(&liar).unwrap();
    let liar_id = spec["validators"][3]["node_id"].as_str().unwrap().to_owned();
    let mut disputed = None;
    for attempt in 0..8 {
        let out = Command::new(vouch_bin())
            .args([&q_args[..], &[input.to_str().unwrap()]].concat())
            .arg("--json")
            .env("VOUCH_NODE", &urls[0])
            .output()
            .unwrap();
        if out.status.success() {
            continue; // the liar was not drawn this time
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("quorum_disagreement"), "attempt {attempt}: {err}");
        disputed = Some(err);
        break;
    }
    let disagreement = disputed.expect("the liar was never assigned in 8 quorum jobs");
    let t = Instant::now();
    loop {
        let views: Vec<Value> =
            addrs.iter().map(|a| http(*a, "GET", "/v1/ledger/nodes", "application/json", b"").1).collect();
        let only_liar = views.iter().all(|nodes| {
            nodes.as_array().is_some_and(|ns| {
                ns.iter().all(|n| {
                    let slashed = n["slashed"].as_u64().unwrap_or(0);
                    if n["node"] == liar_id.as_str() { slashed > 0 } else { slashed == 0 }
                })
            })
        });
        if only_liar {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the liar was not (only) slashed on every node within 60 s;\n409: {disagreement}\nnodes: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
