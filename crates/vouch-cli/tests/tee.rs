//! `tee` mode end to end with real processes: on this machine (no TEE) `vouch node attest` says why and `--mode tee`
//! is refused with 409; on `vouch devnet --nodes 4 --tee-simulate` every node attests on the ledger, a `tee`
//! receipt verifies with `--allow-simulated-tee` and is refused without it; a receipt whose evidence binds another
//! key, or issued after its attestation expired, is refused with the exact reason; a real vendor report submitted
//! as a node's attestation is refused by the ledger because its report data binds another key.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use common::{NodeProc, Proc, bench_models, http, try_http, vouch_bin, wait_for};
use serde_json::Value;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{PlatformReport, ReceiptJson, TeeEvidence, domain};
use vouch_crypto::NodeKey;

/// Runs the CLI against `url`: (exit code, stdout).
fn vouch(url: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(vouch_bin()).args(args).env("VOUCH_NODE", url).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn vouch_ok(url: &str, args: &[&str]) -> String {
    let (code, out) = vouch(url, args);
    assert_eq!(code, 0, "vouch {args:?}: {out}");
    out
}

fn fixture(name: &str) -> PathBuf {
    common::repo_root().join("crates/vouch-tee/tests/fixtures").join(name)
}

fn input_file(dir: &Path) -> PathBuf {
    let input = dir.join("in.json");
    let doc = serde_json::json!({"x": {"dtype": "f32", "shape": [1, 16], "data": vec![0.25; 16]}});
    std::fs::write(&input, doc.to_string()).unwrap();
    input
}

/// A node on the simulated platform with the root at `root` (with `dev`, a new home's chain lists that root);
/// stopped when the guard drops. Returns the guard and the node's URL.
fn simulated_node(home: &Path, root: &Path, dev: bool) -> (Proc, String) {
    let mut child = Command::new(vouch_bin())
        .args(["node", "run", "--listen", "127.0.0.1:0", "--tee-simulate", "--tee-simulated-root"])
        .arg(root)
        .args(if dev { &["--dev"][..] } else { &[][..] })
        .arg("--home")
        .arg(home)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().strip_prefix("vouch node listening on ").unwrap().to_owned();
    (Proc(child), url)
}

#[test]
fn without_a_tee_attest_says_why_and_tee_mode_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let has_tee = Path::new("/sys/kernel/config/tsm/report").exists() || Path::new("/dev/nsm").exists();
    let out =
        Command::new(vouch_bin()).args(["node", "attest", "--home"]).arg(dir.path().join("attest")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if has_tee {
        // A confidential machine: the command reports its platform instead.
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.starts_with("platform"), "{stdout}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("no TEE on this machine: tdx/sev-snp: /sys/kernel/config/tsm/report does not exist")
            && stdout.contains("nitro: /dev/nsm does not exist"),
        "{stdout}"
    );

    let node = NodeProc::start(&dir.path().join("node"));
    let model = bench_models().join("mlp_small.onnx");
    node.vouch_ok(&["model", "push", model.to_str().unwrap(), "--name", "mlp"]);
    let body = serde_json::json!({"model": "mlp", "mode": "tee", "inputs": {"x": [vec![0.25; 16]]}});
    let (code, v) = node.http("POST", "/v1/infer", "application/json", body.to_string().as_bytes());
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("tee_unavailable")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("no TEE on this machine"), "{v}");
    let (_, status) = node.http("GET", "/v1/node", "application/json", b"");
    assert!(!status["modes"].as_array().unwrap().iter().any(|m| m == "tee"), "{status}");
    assert_eq!(status["tee"]["platform"], Value::Null, "{status}");

    // The same home restarted on the simulated platform: its chain's genesis lists no simulated root, so the node's
    // own check refuses its attestation before submitting it, says why in its status, and tee mode stays refused.
    let home = node.home.clone();
    assert!(node.terminate());
    let (_guard, url) = simulated_node(&home, &dir.path().join("root.key"), false);
    let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let mut status = Value::Null;
    wait_for("the node to report why it is not attested", 60, || {
        status = http(addr, "GET", "/v1/node", "application/json", b"").1;
        status["tee"]["last_refusal"].is_string()
    });
    assert_eq!(status["tee"]["platform"], "simulated", "{status}");
    assert!(
        status["tee"]["last_refusal"]
            .as_str()
            .unwrap()
            .starts_with("the node's own verifier refused its attestation: simulated TEE evidence"),
        "{status}"
    );
    let (code, v) = http(addr, "POST", "/v1/infer", "application/json", body.to_string().as_bytes());
    assert_eq!((code, v["error"]["code"].as_str()), (409, Some("tee_unavailable")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("no attestation on the ledger yet"), "{v}");
}

static CLOCK_MS: AtomicU64 = AtomicU64::new(0);
fn test_clock() -> u64 {
    CLOCK_MS.load(Ordering::SeqCst)
}

/// Re-verifies a receipt file: (exit code, stdout).
fn verify(url: &str, path: &Path, extra: &[&str]) -> (i32, String) {
    vouch(url, &[&["verify"], extra, &[path.to_str().unwrap()]].concat())
}

#[test]
fn simulated_devnet_attests_serves_tee_receipts_and_refuses_forgeries() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("net");
    let base: u16 = 25_000 + (std::process::id() % 1_000) as u16 * 4;
    // Short, so the nodes renew their attestations during the test (at two thirds of the lifetime).
    let ttl_s = 45u64;
    let devnet = Command::new(vouch_bin())
        .args(["devnet", "--nodes", "4", "--tee-simulate", "--tee-attestation-ttl", &ttl_s.to_string()])
        .args(["--base-port", &base.to_string(), "--home"])
        .arg(&home)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Proc(devnet);
    let addrs: Vec<SocketAddr> = (0..4).map(|i| SocketAddr::from(([127, 0, 0, 1], base + i))).collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();

    // Every node registers, then attests on the ledger (simulated platform, the devnet's root in the genesis).
    wait_for("all four nodes attested on the ledger", 120, || {
        try_http(addrs[0], "GET", "/v1/ledger/nodes", "application/json", b"").is_some_and(|(_, n)| {
            n.as_array().is_some_and(|n| {
                n.len() == 4
                    && n.iter()
                        .all(|x| x["attestation"]["platform"] == "simulated" && x["attestation"]["valid"] == true)
            })
        })
    });
    let ls = vouch_ok(&urls[1], &["node", "ls"]);
    assert_eq!(ls.matches("tee simulated NotReported valid").count(), 4, "{ls}");

    let model = bench_models().join("mlp_small.onnx");
    let dev_key = home.join("dev-account.key");
    vouch_ok(
        &urls[2],
        &["model", "push", model.to_str().unwrap(), "--name", "mlp", "--account", dev_key.to_str().unwrap()],
    );
    wait_for("node 0 to list tee among its modes", 60, || {
        http(addrs[0], "GET", "/v1/node", "application/json", b"").1["modes"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "tee"))
    });
    let input = input_file(dir.path());
    let r = dir.path().join("r.json");
    vouch_ok(
        &urls[0],
        &["infer", "mlp", "--mode", "tee", "--input", input.to_str().unwrap(), "-o", r.to_str().unwrap()],
    );
    let receipt: Value = serde_json::from_str(&std::fs::read_to_string(&r).unwrap()).unwrap();
    assert_eq!(receipt["mode"], "tee");
    let node0 = NodeKey::load(&home.join("node0/node.key")).unwrap();
    assert_eq!(receipt["executors"][0], hex::encode(node0.public_key()));

    // Plain `vouch verify` refuses simulated evidence; `--allow-simulated-tee` accepts it and says so.
    let (code, out) = verify(&urls[0], &r, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("invalid: tee attestation refused: simulated TEE evidence"), "{out}");
    let out = vouch_ok(&urls[0], &["verify", "--allow-simulated-tee", r.to_str().unwrap()]);
    assert!(out.contains("tee     simulated (SIMULATED, not a TEE) attestation binds the signer"), "{out}");
    // The anchored receipt verifies against the genesis (the chain's simulated root and attestation lifetime).
    let id = receipt["id"].as_str().unwrap();
    let anchored = vouch_ok(&urls[0], &["receipt", "show", id, "--wait", "--timeout", "60"]);
    let ra = dir.path().join("ra.json");
    std::fs::write(&ra, &anchored).unwrap();
    let genesis = home.join("genesis.json");
    let out = vouch_ok(
        &urls[3],
        &["verify", "--allow-simulated-tee", "--genesis", genesis.to_str().unwrap(), ra.to_str().unwrap()],
    );
    assert!(out.contains("anchor  settled at height") && out.contains("tee     simulated"), "{out}");
    // A policy file (TOML) that allows simulated evidence and lists node 0's measurement accepts it.
    let nodes = http(addrs[0], "GET", "/v1/ledger/nodes", "application/json", b"").1;
    let measurement = nodes[0]["attestation"]["measurement"].as_str().unwrap().to_owned();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("allow_simulated = true\nmeasurements = [\"{measurement}\"]\nmax_age_s = 600\n"))
        .unwrap();
    let out = vouch_ok(&urls[0], &["verify", "--tee-policy", policy.to_str().unwrap(), r.to_str().unwrap()]);
    assert!(out.contains(&format!("measurement {measurement}")), "{out}");
    // A measurement other than the node's is refused.
    let (code, out) = verify(&urls[0], &r, &["--allow-simulated-tee", "--tee-measurement", &"ab".repeat(48)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not allowed by the policy"), "{out}");

    // Forgeries by node 0's key (a node outside a TEE reusing what it can get): node 1's attestation in a receipt
    // node 0 signs is refused because it binds node 1's key; node 0's own attestation in a receipt issued after it
    // expired on the ledger is refused for its age.
    let json: ReceiptJson = serde_json::from_str(&std::fs::read_to_string(&r).unwrap()).unwrap();
    let honest = json.to_receipt().unwrap();
    let own = honest
        .evidence
        .iter()
        .find_map(|e| match e {
            vouch_codec::Evidence::TeeQuote(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    let r1 = dir.path().join("r1.json");
    vouch_ok(
        &urls[1],
        &["infer", "mlp", "--mode", "tee", "--input", input.to_str().unwrap(), "-o", r1.to_str().unwrap()],
    );
    let json1: ReceiptJson = serde_json::from_str(&std::fs::read_to_string(&r1).unwrap()).unwrap();
    let node1_evidence = json1
        .to_receipt()
        .unwrap()
        .evidence
        .into_iter()
        .find_map(|e| match e {
            vouch_codec::Evidence::TeeQuote(t) => Some(t),
            _ => None,
        })
        .unwrap();
    let write = |name: &str, evidence: TeeEvidence, at_ms: u64| {
        CLOCK_MS.store(at_ms, Ordering::SeqCst);
        let issuer = vouch_receipt::Issuer::new(&node0, honest.body.engine.clone()).with_clock(test_clock);
        let forged = issuer.tee(
            honest.body.model,
            honest.body.job,
            honest.inputs.clone().unwrap(),
            true,
            honest.outputs.clone(),
            evidence,
        );
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(&forged.to_json()).unwrap()).unwrap();
        path
    };
    let other_key = write("other-key.json", node1_evidence, honest.body.issued_at_ms);
    let (code, out) = verify(&urls[0], &other_key, &["--allow-simulated-tee"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "invalid: tee attestation refused: the TEE evidence binds key {}, not the signer {}",
            hex::encode(json1.to_receipt().unwrap().body.executors[0]),
            hex::encode(node0.public_key())
        )),
        "{out}"
    );
    let expired_at = own.attested_at_ms + (ttl_s + 60) * 1000;
    let late = write("late.json", own.clone(), expired_at);
    let (code, out) = verify(&urls[0], &late, &["--allow-simulated-tee", "--genesis", genesis.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "invalid: tee attestation refused: TEE evidence age {} s exceeds the policy's maximum of {ttl_s} s",
            ttl_s + 60
        )),
        "{out}"
    );
    // The same receipt issued in time verifies (the refusal above is the expiry, nothing else).
    let in_time = write("in-time.json", own.clone(), own.attested_at_ms + 1000);
    assert_eq!(verify(&urls[0], &in_time, &["--allow-simulated-tee"]).0, 0);

    // A real AMD SEV-SNP report (valid chain to AMD's root, VCEK valid until 2030) submitted as node 0's attestation:
    // the ledger refuses it because its report data binds another key, chain and block.
    let status = http(addrs[0], "GET", "/v1/ledger/status", "application/json", b"").1;
    let report = hex::decode(std::fs::read_to_string(fixture("report_milan.hex")).unwrap().trim()).unwrap();
    let evidence = TeeEvidence {
        key: node0.public_key(),
        chain: hex::decode(status["chain_id"].as_str().unwrap()).unwrap().try_into().unwrap(),
        // The newest block the ledger accepts as freshness (the tip may be an empty block, which it does not record).
        freshness: hex::decode(status["tee_freshness"]["hash"].as_str().unwrap()).unwrap().try_into().unwrap(),
        attested_at_ms: status["tee_freshness"]["time_ms"].as_u64().unwrap(),
        reports: vec![PlatformReport {
            platform: "sev-snp".into(),
            report,
            collateral: std::fs::read(fixture("vcek_milan.der")).unwrap(),
        }],
    };
    let mut record = None;
    for _ in 0..5 {
        let account = http(
            addrs[0],
            "GET",
            &format!("/v1/ledger/accounts/{}", hex::encode(node0.public_key())),
            "application/json",
            b"",
        )
        .1;
        let tx = Tx {
            chain: evidence.chain,
            from: node0.public_key(),
            nonce: account["next_nonce"].as_u64().unwrap(),
            fee: 1,
            kind: TxKind::Attest { node: node0.public_key(), evidence: evidence.clone() },
        };
        let signature = node0.sign(domain::TX_SIGNATURE, &tx.id().0);
        let bytes = SignedTx { tx, signature }.to_bytes();
        let (code, v) = http(addrs[0], "POST", "/v1/ledger/txs", "application/octet-stream", &bytes);
        if code != 200 {
            // The node's own transactions took that nonce first: once more at the next.
            continue;
        }
        let tx_id = v["id"].as_str().unwrap().to_owned();
        wait_for("the attestation transaction to be finalized", 60, || {
            let (code, v) = http(addrs[0], "GET", &format!("/v1/ledger/txs/{tx_id}"), "application/json", b"");
            if code == 200 {
                record = Some(v);
            }
            code == 200
        });
        break;
    }
    let record = record.expect("the attestation transaction was submitted");
    assert_eq!(record["result"]["ok"], false, "{record}");
    let error = record["result"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("attestation refused: report data mismatch: the sev-snp report binds d447b55d197491bf"),
        "{error}"
    );
    // Node 0's attestation on the ledger is still its own simulated one, and it renews it before it expires; tee
    // mode keeps being served throughout.
    let node0_attestation = || {
        let nodes = http(addrs[0], "GET", "/v1/ledger/nodes", "application/json", b"").1;
        nodes.as_array().unwrap().iter().find(|n| n["node"] == hex::encode(node0.public_key())).unwrap()["attestation"]
            .clone()
    };
    assert_eq!(node0_attestation()["platform"], "simulated");
    wait_for("node 0 to renew the attestation its first receipt carried", 60, || {
        let a = node0_attestation();
        a["evidence"].as_str() != Some(hex::encode(own.digest()).as_str()) && a["valid"] == true
    });
    let renewed = dir.path().join("renewed.json");
    vouch_ok(
        &urls[0],
        &["infer", "mlp", "--mode", "tee", "--input", input.to_str().unwrap(), "-o", renewed.to_str().unwrap()],
    );
    let out = vouch_ok(&urls[0], &["verify", "--allow-simulated-tee", renewed.to_str().unwrap()]);
    assert!(out.contains("tee     simulated"), "{out}");
}

#[test]
fn a_language_model_answers_in_tee_mode_through_the_openai_api() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("node");
    let (_guard, url) = simulated_node(&home, &dir.path().join("root.key"), true);
    let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let gguf = common::cached_model("smollm2-135m-instruct-q4_1.gguf");
    let account = home.join("node.key");
    vouch_ok(
        &url,
        &["model", "push", gguf.to_str().unwrap(), "--name", "smol", "--account", account.to_str().unwrap()],
    );
    wait_for("the node's attestation on its ledger", 60, || {
        http(addr, "GET", "/v1/node", "application/json", b"").1["modes"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "tee"))
    });
    let body = serde_json::json!({"model": "smol", "messages": [{"role": "user", "content": "Name a colour."}],
                                  "max_tokens": 6, "vouch": {"mode": "tee"}});
    let (code, v) = http(addr, "POST", "/v1/chat/completions", "application/json", body.to_string().as_bytes());
    assert_eq!(code, 200, "{v}");
    let receipt = &v["vouch"]["receipt"];
    assert_eq!(receipt["mode"], "tee", "{v}");
    let path = dir.path().join("chat.json");
    std::fs::write(&path, receipt.to_string()).unwrap();
    let out = vouch_ok(&url, &["verify", "--allow-simulated-tee", path.to_str().unwrap()]);
    assert!(out.contains("mode    tee") && out.contains("tee     simulated"), "{out}");
    assert_eq!(verify(&url, &path, &[]).0, 1, "plain verify refuses simulated evidence");
}
