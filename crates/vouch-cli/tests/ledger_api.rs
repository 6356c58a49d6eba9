//! Bad transactions through a real node's HTTP API (`POST /v1/ledger/txs`): garbage, oversized, wrongly signed,
//! for another chain, beyond balance, a result for an unknown job, a replayed transaction and a reused nonce. Each
//! gets its exact error code and leaves the ledger's state root unchanged; a valid transfer applies.

mod common;

use std::time::{Duration, Instant};

use common::NodeProc;
use serde_json::Value;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{Digest, domain};
use vouch_crypto::NodeKey;

fn post_tx(node: &NodeProc, bytes: &[u8]) -> (u16, Value) {
    node.http("POST", "/v1/ledger/txs", "application/octet-stream", bytes)
}

fn status(node: &NodeProc) -> Value {
    node.http("GET", "/v1/ledger/status", "application/json", b"").1
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_transactions_get_exact_errors_and_change_nothing() {
    let home = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    // The node registers itself as an executor; after that the state is quiet (empty blocks do not change it).
    wait_for("the node's executor registration and engine", || {
        let nodes = node.http("GET", "/v1/ledger/nodes", "application/json", b"").1;
        nodes.as_array().is_some_and(|a| a.len() == 1) && nodes[0]["engine"].as_str().is_some_and(|e| !e.is_empty())
    });
    let key = NodeKey::load_or_create(&home.path().join("node.key")).unwrap();
    let st = status(&node);
    let chain: [u8; 32] = hex::decode(st["chain_id"].as_str().unwrap()).unwrap().try_into().unwrap();
    let me = hex::encode(key.public_key());
    let account = node.http("GET", &format!("/v1/ledger/accounts/{me}"), "application/json", b"").1;
    let nonce = account["nonce"].as_u64().unwrap();
    let balance = account["balance"].as_u64().unwrap();
    let sign = |nonce: u64, chain: [u8; 32], kind: TxKind| {
        let tx = Tx { chain, from: key.public_key(), nonce, fee: 1, kind };
        let signature = key.sign(domain::TX_SIGNATURE, &tx.id().0);
        SignedTx { tx, signature }
    };
    let root = || status(&node)["state_root"].clone();
    let reject = |bytes: &[u8], code: &str| {
        let before = root();
        let (s, body) = post_tx(&node, bytes);
        assert_eq!((s, body["error"]["code"].as_str()), (400, Some(code)), "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(root(), before, "a rejected transaction ({code}) changed the state");
        body["error"]["message"].as_str().unwrap().to_owned()
    };

    // The executor endpoint refuses a malformed job id and a malformed body before touching anything.
    let (code, body) = node.http("POST", "/v1/jobs/nothex/execute", "application/json", b"{}");
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_id")), "{body}");
    let job = "ab".repeat(32);
    let (code, body) = node.http("POST", &format!("/v1/jobs/{job}/execute"), "application/json", b"{\"inputs\": ");
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{body}");
    // A well-formed request for a job no ledger has: refused once the node has waited for it to arrive.
    // With the asking node's height (already reached here), at once.
    let h = status(&node)["height"].as_u64().unwrap();
    let inputs = format!(
        r#"{{"inputs": {{"x": {{"dtype": "f32", "shape": [1, 16], "data": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}}}, "min_height": {h}}}"#
    );
    let (code, body) = node.http("POST", &format!("/v1/jobs/{job}/execute"), "application/json", inputs.as_bytes());
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("unknown_job")), "{body}");

    reject(b"garbage", "malformed_tx");
    reject(&vec![0u8; vouch_codec::tx::MAX_TX_BYTES + 1], "malformed_tx");
    let mut forged = sign(nonce, chain, TxKind::Transfer { to: [7; 32], amount: 5 });
    forged.signature[0] ^= 1;
    assert_eq!(reject(&forged.to_bytes(), "invalid_tx"), "bad transaction signature");
    let other_chain = sign(nonce, [9; 32], TxKind::Transfer { to: [7; 32], amount: 5 });
    assert!(reject(&other_chain.to_bytes(), "invalid_tx").contains("is for chain"));
    let too_much = sign(nonce, chain, TxKind::Transfer { to: [7; 32], amount: balance });
    assert!(reject(&too_much.to_bytes(), "insufficient_balance").contains("insufficient balance"));
    let unknown_job = sign(
        nonce,
        chain,
        TxKind::SubmitResult { job: Digest([3; 32]), node: key.public_key(), body: vec![], signature: [0; 64] },
    );
    assert!(reject(&unknown_job.to_bytes(), "unknown_job").contains("unknown job"));

    // A valid transfer applies; replaying it, or reusing its nonce, is refused.
    let ok = sign(nonce, chain, TxKind::Transfer { to: [7; 32], amount: 5 });
    let (s, body) = post_tx(&node, &ok.to_bytes());
    assert_eq!(s, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    wait_for("the transfer to finalize", || {
        node.http("GET", &format!("/v1/ledger/txs/{id}"), "application/json", b"").0 == 200
    });
    let (_, rec) = node.http("GET", &format!("/v1/ledger/txs/{id}"), "application/json", b"");
    assert_eq!(rec["result"]["ok"], true, "{rec}");
    let to = node.http("GET", &format!("/v1/ledger/accounts/{}", hex::encode([7u8; 32])), "application/json", b"").1;
    assert_eq!(to["balance"], 5);
    reject(&ok.to_bytes(), "already_finalized");
    let reuse = sign(nonce, chain, TxKind::Transfer { to: [8; 32], amount: 1 });
    assert!(reject(&reuse.to_bytes(), "stale_nonce").contains("stale nonce"));
}

/// A node that stored a receipt and batched it for settlement but whose batch transaction was lost, as after a crash
/// right after submitting it: once restarted, its first settlement pass submits the pending batch again, and the
/// receipt gets its anchor (with its path in the batch).
#[test]
fn a_settlement_lost_before_submission_is_submitted_again_after_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(&config, "fault_skip_settlement = true\n").unwrap();
    let node = NodeProc::start(home.path());
    let model = common::bench_models().join("mlp_small.onnx");
    node.vouch_ok(&["model", "push", model.to_str().unwrap(), "--name", "mlp"]);
    let input = home.path().join("in.json");
    std::fs::write(&input, r#"{"x": {"dtype": "f32", "shape": [1, 16], "data": [0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1]}}"#)
        .unwrap();
    let receipt: Value =
        serde_json::from_str(&node.vouch_ok(&["--json", "infer", "mlp", "--input", input.to_str().unwrap()])).unwrap();
    let id = receipt["id"].as_str().unwrap().to_owned();
    // The node batches it (its place in the batch is served while the batch is pending), but the batch's
    // transaction never leaves: blocks keep finalizing, and this receipt is never settled.
    wait_for("the receipt to be batched", || {
        node.http("GET", &format!("/v1/settlements/{id}"), "application/json", b"").0 == 200
    });
    // Ids it never batched, and ones that are not ids, get their errors.
    let (code, body) = node.http("GET", &format!("/v1/settlements/{}", "ab".repeat(32)), "application/json", b"");
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("settlement_not_found")), "{body}");
    let (code, body) = node.http("GET", "/v1/settlements/not-an-id", "application/json", b"");
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_id")), "{body}");
    let h = status(&node)["height"].as_u64().unwrap();
    wait_for("three more blocks", || status(&node)["height"].as_u64().unwrap() >= h + 3);
    assert_eq!(status(&node)["settled_receipts"], 0);
    let backlog = |node: &NodeProc| node.http("GET", "/v1/node", "application/json", b"").1["settlement"].clone();
    let b = backlog(&node);
    assert_eq!(
        (b["owed"].as_u64(), b["pending_batches"].as_u64(), b["settled_batches"].as_u64()),
        (Some(0), Some(1), Some(0)),
        "{b}"
    );
    let (_, r) = node.http("GET", &format!("/v1/receipts/{id}"), "application/json", b"");
    assert!(r["anchor"].is_null(), "{r}");
    assert!(node.terminate());

    std::fs::write(&config, "").unwrap();
    let node = NodeProc::start(home.path());
    let anchored: Value =
        serde_json::from_str(&node.vouch_ok(&["--json", "receipt", "show", &id, "--wait", "--timeout", "60"])).unwrap();
    assert!(anchored["anchor"]["height"].as_u64().unwrap() > 0, "{anchored}");
    let genesis = home.path().join("genesis.json");
    let path = home.path().join("anchored.json");
    std::fs::write(&path, anchored.to_string()).unwrap();
    let out = node.vouch_ok(&["verify", "--genesis", genesis.to_str().unwrap(), path.to_str().unwrap()]);
    assert!(out.contains("anchor  settled at height") && out.contains(" in a batch of 1 (leaf 0, "), "{out}");
    // It was settled in the batch the first process made (a batch of one, at index 0), submitted again.
    assert_eq!(anchored["anchor"]["batch"]["index"], 0, "{anchored}");
    wait_for("the node to see its batch recorded", || backlog(&node)["settled_batches"] == 1);
    assert_eq!(backlog(&node)["pending_batches"], 0);
    let (_, metrics) = node.http("GET", "/metrics", "text/plain", b"");
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(metrics.contains("settlements_retried_total 1"), "{metrics}");
}

/// `vouch account new` and `vouch tx transfer|add-stake|unbond`: signed from key files, finalized, visible in the
/// explorer; a transaction whose action fails reports the ledger's reason and exits non-zero.
#[test]
fn tx_commands_move_funds_and_stake() {
    let home = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    wait_for("the node's executor registration and engine", || {
        let nodes = node.http("GET", "/v1/ledger/nodes", "application/json", b"").1;
        nodes.as_array().is_some_and(|a| a.len() == 1) && nodes[0]["engine"].as_str().is_some_and(|e| !e.is_empty())
    });
    let operator = home.path().join("node.key");
    let op = operator.to_str().unwrap();
    let me = hex::encode(NodeKey::load(&operator).unwrap().public_key());
    let alice_key = home.path().join("alice.key");
    let alice = node.vouch_ok(&["account", "new", alice_key.to_str().unwrap()]).trim().to_owned();
    assert_eq!(alice.len(), 64);
    assert!(node.vouch(&["account", "new", alice_key.to_str().unwrap()]).status.code() == Some(2), "no overwrite");

    node.vouch_ok(&["tx", "transfer", "--to", &alice, "--amount", "5000", "--account", op, "--wait"]);
    let acc = node.http("GET", &format!("/v1/ledger/accounts/{alice}"), "application/json", b"").1;
    assert_eq!(acc["balance"], 5000, "{acc}");

    let stake = |node: &NodeProc| node.http("GET", "/v1/ledger/nodes", "application/json", b"").1[0].clone();
    let before = stake(&node)["stake"].as_u64().unwrap();
    node.vouch_ok(&["tx", "add-stake", "--node-id", &me, "--amount", "100", "--account", op, "--wait"]);
    assert_eq!(stake(&node)["stake"].as_u64().unwrap(), before + 100);
    node.vouch_ok(&["tx", "unbond", "--node-id", &me, "--amount", "600", "--account", op, "--wait"]);
    let n = stake(&node);
    assert_eq!(n["stake"].as_u64().unwrap(), before - 500, "{n}");
    assert_eq!(n["unbonding"][0]["amount"], 600, "{n}");

    // Alice does not operate the node: finalized, fee charged, action refused with the ledger's reason.
    let out = node.vouch(&[
        "tx",
        "unbond",
        "--node-id",
        &me,
        "--amount",
        "1",
        "--account",
        alice_key.to_str().unwrap(),
        "--wait",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not operate node"), "{err}");
    let acc = node.http("GET", &format!("/v1/ledger/accounts/{alice}"), "application/json", b"").1;
    assert_eq!((acc["balance"].as_u64(), acc["nonce"].as_u64()), (Some(4999), Some(1)), "{acc}");
}
