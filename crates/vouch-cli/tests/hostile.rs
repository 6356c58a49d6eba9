//! Hostile clients against a real node on loopback: each probe that once hurt a node, reproduced, with what the node
//! does now. (The load-and-abuse script `scripts/abuse.py` runs the same probes at scale and prints a table.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::onnx::{self, FLOAT, INT64, model, value_info};
use common::{NodeProc, bench_models, parse_response, vouch_bin};
use serde_json::{Value, json};

fn start(home: &Path, config: &str) -> NodeProc {
    std::fs::write(home.join("config.toml"), config).unwrap();
    NodeProc::start(home)
}

/// One request on a fresh connection that gives up (instead of hanging the test) after `wait`.
fn request(node: &NodeProc, method: &str, path: &str, headers: &str, body: &[u8], wait: Duration) -> (u16, Value) {
    let mut s = TcpStream::connect(node.addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(body);
    let mut resp = vec![];
    s.read_to_end(&mut resp).unwrap_or_else(|e| panic!("{method} {path}: no answer within {wait:?}: {e}"));
    parse_response(&resp)
}

fn post(node: &NodeProc, path: &str, body: &Value) -> (u16, Value) {
    request(node, "POST", path, "", body.to_string().as_bytes(), Duration::from_secs(60))
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn mlp_input() -> Value {
    json!({"x": [(0..16).map(|i| i as f32 / 16.0).collect::<Vec<_>>()]})
}

fn push_mlp(node: &NodeProc, name: &str) {
    node.vouch_ok(&["model", "push", bench_models().join("mlp_small.onnx").to_str().unwrap(), "--name", name]);
}

/// 40 uploads that send one byte and stall: at most `max_concurrent_uploads` (8) are received, the rest answered
/// `503 busy` at once; no thread is held by any of them, so inference goes on meanwhile; each stalled upload fails
/// with `408 upload_timeout` after the body timeout, and nothing is stored.
#[test]
fn slow_uploads_do_not_block_inference() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "body_timeout_secs = 3\nmax_concurrent_uploads = 8\nunsigned_pushes = true\n");
    push_mlp(&node, "mlp");
    let stalled: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut s = TcpStream::connect(node.addr).unwrap();
            write!(s, "POST /v1/models/slow{i}/versions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    for _ in 0..20 {
        let (status, body) = post(&node, "/v1/infer", &json!({"model": "mlp", "inputs": mlp_input()}));
        assert_eq!(status, 200, "inference while uploads stall: {body}");
    }
    let mut codes = std::collections::BTreeMap::new();
    for mut s in stalled {
        let mut resp = vec![];
        s.read_to_end(&mut resp).unwrap();
        let (status, body) = parse_response(&resp);
        *codes.entry((status, body["error"]["code"].as_str().unwrap_or("").to_owned())).or_insert(0) += 1;
    }
    let expected =
        std::collections::BTreeMap::from([((408, "upload_timeout".to_owned()), 8), ((503, "busy".to_owned()), 32)]);
    assert_eq!(codes, expected);
    let (_, status) = node.http("GET", "/v1/node", "application/json", b"");
    assert_eq!(status["models"], 1, "no stalled upload became a model: {status}");
}

/// `Range(start, limit, delta)` with the length taken from the request: 300 million elements are refused before the
/// engine allocates them (the node's peak memory grows by less than 64 MiB), a small range runs.
#[test]
fn a_range_sized_by_the_request_is_refused_before_memory_grows() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "");
    let scalar = |n: &str| value_info(n, INT64, Some(&[]));
    let range = model(
        vec![onnx::node("Range", &["start", "limit", "delta"], "y", vec![])],
        vec![],
        vec![scalar("start"), scalar("limit"), scalar("delta")],
        vec![value_info("y", INT64, None)],
    );
    let path = home.path().join("range.onnx");
    std::fs::write(&path, range).unwrap();
    node.vouch_ok(&["model", "push", path.to_str().unwrap(), "--name", "range"]);
    let doc = |limit: i64| {
        let s = |v: i64| json!({"dtype": "i64", "shape": [], "data": [v]});
        json!({"model": "range", "inputs": {"start": s(0), "limit": s(limit), "delta": s(1)}})
    };
    let pid = node.child.id();
    let before = status_kb(pid, "VmHWM");
    let (status, body) = post(&node, "/v1/infer", &doc(300_000_000));
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("output_too_large")), "{body}");
    let grew_mib = (status_kb(pid, "VmHWM") - before) / 1024;
    assert!(grew_mib < 64, "peak memory grew by {grew_mib} MiB");
    let (status, body) = post(&node, "/v1/infer", &doc(10));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"]["y"]["data"].as_array().map(Vec::len), Some(10), "{body}");
}

/// An input of rank 256 or 20 (to a model that declares no input shape) is a clear `400 invalid_tensor`: nothing
/// accepted can later fail to decode (rank 16 is accepted and its receipt reads back). `vouch verify` exits 1 on a
/// receipt with such a tensor, and survives its reader closing the pipe.
#[test]
fn ranks_above_the_limit_get_a_clear_error_everywhere() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "");
    let identity = model(
        vec![onnx::node("Identity", &["x"], "y", vec![])],
        vec![],
        vec![value_info("x", FLOAT, None)],
        vec![value_info("y", FLOAT, None)],
    );
    let path = home.path().join("identity.onnx");
    std::fs::write(&path, identity).unwrap();
    node.vouch_ok(&["model", "push", path.to_str().unwrap(), "--name", "id"]);
    let tensor = |rank: usize| json!({"dtype": "f32", "shape": vec![1; rank], "data": [1.5]});
    for rank in [256, 20] {
        let (status, body) = post(&node, "/v1/infer", &json!({"model": "id", "inputs": {"x": tensor(rank)}}));
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_tensor")), "rank {rank}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("rank"), "{body}");
    }
    let (status, receipt) = post(&node, "/v1/infer", &json!({"model": "id", "inputs": {"x": tensor(16)}}));
    assert_eq!(status, 200, "{receipt}");
    let id = receipt["id"].as_str().unwrap();
    let (status, stored) = node.http("GET", &format!("/v1/receipts/{id}"), "application/json", b"");
    assert_eq!(status, 200, "{stored}");

    // A receipt edited to carry a rank-256 tensor: exit 1 with the reason, never a panic.
    let mut bad = receipt.clone();
    bad["outputs"]["y"]["shape"] = json!(vec![1; 256]);
    let file = home.path().join("rank256.json");
    std::fs::write(&file, bad.to_string()).unwrap();
    let out = node.vouch(&["verify", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rank"), "{}", String::from_utf8_lossy(&out.stdout));

    // `vouch verify r.json | head -0`: the reader is gone before the first line.
    let good = home.path().join("good.json");
    std::fs::write(&good, receipt.to_string()).unwrap();
    let mut child = Command::new(vouch_bin())
        .args(["verify", good.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A connection that sends nothing, or half a header, is closed after the header deadline; a body that stops
/// arriving fails its request after the body deadline.
#[test]
fn stalled_connections_are_closed_after_the_timeout() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "header_timeout_secs = 2\nbody_timeout_secs = 2\n");
    for opening in [&b""[..], b"GET /v1/health HTTP/1.1\r\nHo"] {
        let mut s = TcpStream::connect(node.addr).unwrap();
        s.write_all(opening).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = vec![];
        // Closed by the node (end of stream), not timed out here.
        s.read_to_end(&mut buf).unwrap_or_else(|e| panic!("{opening:?}: the node kept the connection: {e}"));
    }
    let mut s = TcpStream::connect(node.addr).unwrap();
    write!(s, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"model\":").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut resp = vec![];
    s.read_to_end(&mut resp).unwrap();
    let (status, body) = parse_response(&resp);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")), "{body}");
}

/// A valid receipt with one piece of evidence repeated is refused, by the node's verifier and by `vouch verify`.
#[test]
fn duplicated_evidence_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "");
    push_mlp(&node, "mlp");
    let (_, receipt) = post(&node, "/v1/infer", &json!({"model": "mlp", "inputs": mlp_input()}));
    let (_, ok) = post(&node, "/v1/verify", &receipt);
    assert_eq!(ok["valid"], true, "{ok}");
    let mut dup = receipt.clone();
    let e = dup["evidence"][0].clone();
    dup["evidence"].as_array_mut().unwrap().extend(std::iter::repeat_n(e, 240));
    let (_, v) = post(&node, "/v1/verify", &dup);
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().starts_with("duplicate evidence"), "{v}");
    let file = home.path().join("dup.json");
    std::fs::write(&file, dup.to_string()).unwrap();
    let out = node.vouch(&["verify", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("duplicate evidence"));
}

/// A name belongs to the account whose signed push created it: another account's push is refused with the owner
/// named, an unsigned one or a forged signature too; the owner adds versions.
#[test]
fn a_push_to_another_accounts_name_is_refused_with_the_owner_named() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let node = start(home.path(), "");
    push_mlp(&node, "m");
    let (_, status) = node.http("GET", "/v1/node", "application/json", b"");
    let owner = status["node_id"].as_str().unwrap().to_owned();
    let other = work.path().join("other.key");
    node.vouch_ok(&["account", "new", other.to_str().unwrap()]);
    let mnist = bench_models().join("mlp_mnist.onnx");
    let out =
        node.vouch(&["model", "push", mnist.to_str().unwrap(), "--name", "m", "--account", other.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("name_owned") && err.contains(&owner), "{err}");
    // No signature, or a signature that is not the account's over this push.
    let bytes = std::fs::read(&mnist).unwrap();
    let wait = Duration::from_secs(60);
    let (s, b) = request(&node, "POST", "/v1/models/m/versions", "", &bytes, wait);
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthorized")), "{b}");
    let forged = format!("x-vouch-account: {owner}\r\nx-vouch-signature: {}\r\n", "ab".repeat(64));
    let (s, b) = request(&node, "POST", "/v1/models/m/versions", &forged, &bytes, wait);
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_signature")), "{b}");
    // The owner pushes a new version.
    let v: Value =
        serde_json::from_str(&node.vouch_ok(&["--json", "model", "push", mnist.to_str().unwrap(), "--name", "m"]))
            .unwrap();
    assert_eq!((v["version"].as_str(), v["owner"].as_str()), (Some("1.1"), Some(owner.as_str())), "{v}");
}

/// Over its receipt quota a client gets `429 rate_limited`, as it does over its request rate; with API keys, a
/// request without one is `401 unauthorized`.
#[test]
fn a_client_over_its_quota_gets_429() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "[quotas]\nreceipts = 3\n");
    push_mlp(&node, "mlp");
    let body = json!({"model": "mlp", "inputs": mlp_input()});
    for _ in 0..3 {
        assert_eq!(post(&node, "/v1/infer", &body).0, 200);
    }
    let (status, err) = post(&node, "/v1/infer", &body);
    assert_eq!((status, err["error"]["code"].as_str()), (429, Some("rate_limited")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("quota of 3 receipts"), "{err}");

    let home = tempfile::tempdir().unwrap();
    let config = "access = \"api_keys\"\n[[api_keys]]\nname = \"alice\"\nkey = \"alice-secret\"\n[quotas]\nrequests_per_second = 5\n";
    let node = start(home.path(), config);
    let (status, err) = post(&node, "/v1/infer", &body);
    assert_eq!((status, err["error"]["code"].as_str()), (401, Some("unauthorized")), "{err}");
    let key = "Authorization: Bearer alice-secret\r\n";
    let statuses: Vec<u16> =
        (0..40).map(|_| request(&node, "GET", "/v1/health", key, b"", Duration::from_secs(30)).0).collect();
    assert!(statuses.contains(&200) && statuses.contains(&429), "{statuses:?}");
}

/// An executor asked to wait for a height far past its tip refuses at once.
#[test]
fn an_execute_request_far_past_the_tip_is_refused_at_once() {
    let home = tempfile::tempdir().unwrap();
    let node = start(home.path(), "");
    let job = "ab".repeat(32);
    let (status, body) =
        post(&node, &format!("/v1/jobs/{job}/execute"), &json!({"inputs": {}, "min_height": u64::MAX}));
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("ledger_behind")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not waited for"), "{body}");
}
