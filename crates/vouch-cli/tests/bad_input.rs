//! Bad input never crashes the node and loses nothing: each case gets a clear 4xx error in the JSON envelope,
//! and the node keeps serving (a valid inference still works afterwards).

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{NodeProc, bench_models};
use prost::Message;
use serde_json::{Value, json};
use tract_onnx::pb;
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{DType, Digest, Mode, domain};

fn assert_error(resp: (u16, Value), status: u16, code: &str) -> String {
    let (s, body) = resp;
    assert_eq!(s, status, "expected HTTP {status} {code}, got {s}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let msg = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(!msg.is_empty());
    msg
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    common::onnx::value_info(name, common::onnx::FLOAT, Some(dims))
}

/// A one-node ONNX model `y = OP(x)`, optionally with a weight tensor stored as external data.
fn one_node_model(op: &str, external_weight: bool) -> Vec<u8> {
    let mut node =
        pb::NodeProto { op_type: op.into(), input: vec!["x".into()], output: vec!["y".into()], ..Default::default() };
    let mut initializer = vec![];
    if external_weight {
        node.input.push("w".into());
        initializer.push(pb::TensorProto {
            name: "w".into(),
            dims: vec![4],
            data_type: 1,
            data_location: Some(1),
            external_data: vec![pb::StringStringEntryProto {
                key: "location".into(),
                value: "../../etc/passwd".into(),
            }],
            ..Default::default()
        });
    }
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: vec![node],
            initializer,
            input: vec![value_info("x", &[1, 4])],
            output: vec![value_info("y", &[1, 4])],
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// Raw HTTP pushes carry no account signature: the node under test takes unsigned pushes.
fn take_unsigned_pushes(home: &std::path::Path) {
    std::fs::write(home.join("config.toml"), "unsigned_pushes = true\n").unwrap();
}

fn push(node: &NodeProc, name: &str, bytes: &[u8]) -> (u16, Value) {
    node.http("POST", &format!("/v1/models/{name}/versions"), "application/octet-stream", bytes)
}

fn infer(node: &NodeProc, body: &Value) -> (u16, Value) {
    node.http("POST", "/v1/infer", "application/json", body.to_string().as_bytes())
}

fn assert_still_serving(node: &NodeProc) {
    let x: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
    let (s, body) = infer(node, &json!({"model": "mlp_small", "inputs": {"x": [x]}}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["outputs"]["y"]["shape"], json!([1, 8]));
}

#[test]
fn bad_models_bad_requests_and_dropped_uploads_get_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    // Small limits so oversized bodies are cheap to send.
    // Raw HTTP pushes here carry no account signature: this node takes unsigned pushes (tests/access.rs covers
    // ownership).
    std::fs::write(
        home.path().join("config.toml"),
        "max_request_bytes = 65536\nmax_model_bytes = 2000000\nunsigned_pushes = true\n",
    )
    .unwrap();
    let node = NodeProc::start(home.path());
    let models = bench_models();
    let mnist = std::fs::read(models.join("mlp_mnist.onnx")).unwrap();
    assert_eq!(push(&node, "mlp_small", &std::fs::read(models.join("mlp_small.onnx")).unwrap()).0, 201);

    // Garbage bytes as a model.
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert_error(push(&node, "garbage", &garbage), 422, "invalid_model");
    // A truncated ONNX file.
    let msg = assert_error(push(&node, "truncated", &mnist[..mnist.len() / 2]), 422, "invalid_model");
    assert!(msg.contains("truncated"), "{msg}");
    // A model with an operator the engine does not implement: refused at push, op named.
    let msg = assert_error(push(&node, "unsupported", &one_node_model("NoSuchOp", false)), 422, "unsupported_operator");
    assert!(msg.contains("NoSuchOp"), "{msg}");
    // Weights pointing outside the file (could read the node's disk): refused.
    assert_error(push(&node, "external", &one_node_model("Add", true)), 422, "external_data");
    // Empty upload, bad name, bad version, a version taken by other bytes.
    assert_error(push(&node, "empty", b""), 400, "empty_upload");
    assert_error(push(&node, "bad%20name", &mnist), 400, "invalid_name");
    assert_error(
        node.http("POST", "/v1/models/m/versions?version=1.x", "application/octet-stream", &mnist),
        400,
        "invalid_version",
    );
    assert_error(
        node.http(
            "POST",
            "/v1/models/mlp_small/versions?version=1.0",
            "application/octet-stream",
            &one_node_model("Relu", false),
        ),
        409,
        "version_exists",
    );
    // A model larger than max_model_bytes.
    assert_error(push(&node, "huge", &vec![0u8; 2_100_000]), 413, "payload_too_large");

    // Unknown model, by name and by id; malformed id.
    assert_error(infer(&node, &json!({"model": "nope", "inputs": {}})), 404, "model_not_found");
    assert_error(
        node.http("GET", "/v1/models/bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi", "text/plain", b""),
        404,
        "model_not_found",
    );
    assert_error(node.http("GET", "/v1/blobs/not-an-id", "text/plain", b""), 400, "invalid_id");
    assert_error(node.http("GET", "/v1/receipts/abc", "text/plain", b""), 400, "invalid_id");
    assert_error(
        node.http("GET", &format!("/v1/receipts/{}", "0".repeat(64)), "text/plain", b""),
        404,
        "receipt_not_found",
    );

    // Wrong input name, shape, dtype; malformed tensors.
    let x: Vec<f32> = vec![0.5; 16];
    assert_error(infer(&node, &json!({"model": "mlp_small", "inputs": {"input": [x]}})), 400, "unknown_input");
    assert_error(infer(&node, &json!({"model": "mlp_small", "inputs": {}})), 400, "missing_input");
    assert_error(infer(&node, &json!({"model": "mlp_small", "inputs": {"x": [vec![0.5; 15]]}})), 400, "shape_mismatch");
    assert_error(infer(&node, &json!({"model": "mlp_small", "inputs": {"x": x}})), 400, "shape_mismatch");
    assert_error(
        infer(
            &node,
            &json!({"model": "mlp_small", "inputs": {"x": {"dtype": "i64", "shape": [1, 16], "data": vec![1; 16]}}}),
        ),
        400,
        "dtype_mismatch",
    );
    assert_error(infer(&node, &json!({"model": "mlp_small", "inputs": {"x": [vec!["a"; 16]]}})), 400, "invalid_tensor");
    assert_error(
        infer(&node, &json!({"model": "mlp_small", "inputs": {"x": [[1.0, 2.0], [3.0]]}})),
        400,
        "invalid_tensor",
    );
    assert_error(
        infer(
            &node,
            &json!({"model": "mlp_small", "inputs": {"x": {"dtype": "f32", "shape": [1, 16], "data": [1.0]}}}),
        ),
        400,
        "invalid_tensor",
    );
    assert_error(
        infer(&node, &json!({"model": "mlp_small", "inputs": {"x": [x]}, "mode": "magic"})),
        400,
        "invalid_mode",
    );
    assert_error(infer(&node, &json!({"model": "mlp_small", "inputs": {"x": [x]}, "mode": "zk"})), 400, "not_zk_model");
    // Quorum mode is paid by the requester's account: a request without its signed job, with a garbage one, or with
    // one for other inputs, another quorum or too small a quorum is refused before anything reaches the ledger.
    let key = vouch_crypto::NodeKey::load(&home.path().join("node.key")).unwrap();
    let chain: [u8; 32] =
        hex::decode(node.http("GET", "/v1/ledger/status", "application/json", b"").1["chain_id"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
    let model =
        node.http("GET", "/v1/models/mlp_small", "application/json", b"").1["id"].as_str().unwrap().parse().unwrap();
    let doc = json!({"x": [x]});
    let digest =
        vouch_codec::tensor::digest_map(&vouch_codec::tensor::parse_input_doc(&doc, |_| Some(DType::F32)).unwrap());
    let job = |input_digest, quorum| {
        let kind = TxKind::SubmitJob { model, input_digest, mode: Mode::Quorum, quorum, fee_per_executor: 10 };
        let tx = Tx { chain, from: key.public_key(), nonce: 0, fee: 1, kind };
        let signature = key.sign(domain::TX_SIGNATURE, &tx.id().0);
        hex::encode(SignedTx { tx, signature }.to_bytes())
    };
    let quorum = |extra: Value| {
        let mut body = json!({"model": "mlp_small", "inputs": doc, "mode": "quorum"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        infer(&node, &body)
    };
    assert_error(quorum(json!({})), 400, "job_tx_required");
    assert_error(quorum(json!({"job_tx": "zz"})), 400, "invalid_job_tx");
    assert_error(quorum(json!({"job_tx": "00ff"})), 400, "invalid_job_tx");
    let msg = assert_error(quorum(json!({"job_tx": job(Digest([0; 32]), 3)})), 400, "job_mismatch");
    assert!(msg.contains("inputs"), "{msg}");
    let msg = assert_error(quorum(json!({"job_tx": job(digest, 3), "quorum": 2})), 400, "job_mismatch");
    assert!(msg.contains("3 executors"), "{msg}");
    assert_error(quorum(json!({"job_tx": job(digest, 1)})), 400, "invalid_quorum");
    let msg = assert_error(
        infer(&node, &json!({"model": "mlp_small", "inputs": doc, "job_tx": job(digest, 3)})),
        400,
        "invalid_job_tx",
    );
    assert!(msg.contains("quorum mode"), "{msg}");
    // A valid job through the CLI (which signs it with --account): a one-node chain has too few executors, and the
    // ledger's reason comes back.
    let input = home.path().join("quorum-input.json");
    std::fs::write(&input, doc.to_string()).unwrap();
    let key_path = home.path().join("node.key");
    let out = node.vouch(&[
        "infer",
        "mlp_small",
        "--mode",
        "quorum",
        "--input",
        input.to_str().unwrap(),
        "--account",
        key_path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("job_rejected"), "{err}");
    assert!(err.contains("eligible executors for a quorum of 3"), "{err}");
    let out = node.vouch(&["infer", "mlp_small", "--mode", "quorum", "--input", input.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--account"), "{out:?}");

    // Invalid JSON, a JSON document of the wrong shape, an oversized body.
    assert_error(node.http("POST", "/v1/infer", "application/json", b"{\"model\": "), 400, "invalid_json");
    assert_error(node.http("POST", "/v1/infer", "application/json", b"[1, 2, 3]"), 400, "invalid_json");
    let big = format!("{{\"model\": \"mlp_small\", \"inputs\": {{\"x\": [{}]}}}}", vec!["0.5"; 40_000].join(","));
    assert_error(node.http("POST", "/v1/infer", "application/json", big.as_bytes()), 413, "payload_too_large");
    assert_error(node.http("POST", "/v1/verify", "application/json", b"nope"), 400, "invalid_json");
    // Unknown endpoints and methods.
    assert_error(node.http("GET", "/v1/nothing", "text/plain", b""), 404, "not_found");
    assert_error(node.http("DELETE", "/v1/infer", "text/plain", b""), 405, "method_not_allowed");

    // A dropped upload: headers promise more bytes than arrive before the connection closes.
    {
        let mut s = TcpStream::connect(node.addr).unwrap();
        write!(s, "POST /v1/models/dropped/versions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", mnist.len())
            .unwrap();
        s.write_all(&mnist[..mnist.len() / 3]).unwrap();
    }
    assert_still_serving(&node);
    let (_, repos) = node.http("GET", "/v1/models", "text/plain", b"");
    let names: Vec<&str> = repos["repos"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["mlp_small"], "nothing but the one good model is visible");
    // The interrupted upload's temp file goes away (the writer notices the closed channel).
    let tmp = home.path().join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&tmp).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "temp files left behind: {:?}",
            std::fs::read_dir(&tmp).unwrap().collect::<Vec<_>>()
        );
        std::thread::yield_now();
    }
    // Blobs directory holds exactly the one stored model.
    assert_eq!(std::fs::read_dir(home.path().join("blobs")).unwrap().count(), 1);
    assert_still_serving(&node);

    // The OpenAPI document describes the served API: every parameterless GET it lists answers 200, and
    // every route the node serves is in it.
    let (s, doc) = node.http("GET", "/v1/openapi.json", "text/plain", b"");
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/health",
        "/v1/node",
        "/v1/models",
        "/v1/calibrations",
        "/v1/models/{name}/versions",
        "/v1/models/{reference}",
        "/v1/blobs/{id}",
        "/v1/infer",
        "/v1/receipts/{id}",
        "/v1/settlements/{id}",
        "/v1/verify",
        "/v1/openapi.json",
        "/metrics",
        "/v1/jobs/prepare",
        "/v1/jobs/{job}/execute",
        "/v1/ledger/status",
        "/v1/ledger/genesis",
        "/v1/ledger/nodes",
        "/v1/ledger/validators",
        "/v1/ledger/epochs",
        "/v1/ledger/blocks/{height}",
        "/v1/ledger/accounts/{address}",
        "/v1/ledger/txs",
        "/v1/ledger/txs/{id}",
        "/v1/chat/completions",
        "/v1/completions",
    ] {
        assert!(paths.contains_key(route), "{route} missing from the OpenAPI document");
    }
    for (path, ops) in paths {
        if ops.get("get").is_some() && !path.contains('{') {
            assert_eq!(node.http("GET", path, "text/plain", b"").0, 200, "GET {path}");
        }
    }
    // Metrics count what happened, errors included.
    let (_, metrics) = node.http("GET", "/metrics", "text/plain", b"");
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("vouch_http_requests_total{route=\"/v1/infer\",method=\"POST\",status=\"400\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("vouch_receipts_issued_total 2"), "{metrics}");
}

#[test]
fn a_crash_mid_upload_leaves_no_partial_model_and_the_node_restarts_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let models = bench_models();
    let mnist = std::fs::read(models.join("mlp_mnist.onnx")).unwrap();
    take_unsigned_pushes(home.path());
    let node = NodeProc::start(home.path());
    assert_eq!(push(&node, "mlp_small", &std::fs::read(models.join("mlp_small.onnx")).unwrap()).0, 201);
    // Start an upload, send part of it, and kill the node while it waits for the rest.
    let mut s = TcpStream::connect(node.addr).unwrap();
    write!(s, "POST /v1/models/half/versions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", mnist.len()).unwrap();
    s.write_all(&mnist[..mnist.len() / 2]).unwrap();
    s.flush().unwrap();
    // A completed request on another connection orders us after the server has accepted the upload.
    assert_eq!(node.http("GET", "/v1/health", "text/plain", b"").0, 200);
    node.kill_hard();
    drop(s);

    take_unsigned_pushes(home.path());
    let node = NodeProc::start(home.path());
    assert_eq!(std::fs::read_dir(home.path().join("tmp")).unwrap().count(), 0, "restart clears interrupted uploads");
    let (_, repos) = node.http("GET", "/v1/models", "text/plain", b"");
    assert_eq!(repos["repos"].as_array().unwrap().len(), 1, "{repos}");
    assert_error(node.http("GET", "/v1/models/half", "text/plain", b""), 404, "model_not_found");
    assert_still_serving(&node);
    // The same upload, complete this time, succeeds.
    assert_eq!(push(&node, "half", &mnist).0, 201);
}

/// A second node on the home of a running one is refused with a clear error (after giving an exiting process a
/// few seconds), and touches nothing of the first: its in-progress state and its serving are intact.
#[test]
fn a_second_node_on_the_same_home_is_refused_and_the_first_keeps_serving() {
    let home = tempfile::tempdir().unwrap();
    take_unsigned_pushes(home.path());
    let node = NodeProc::start(home.path());
    let models = bench_models();
    assert_eq!(push(&node, "mlp_small", &std::fs::read(models.join("mlp_small.onnx")).unwrap()).0, 201);
    let out = std::process::Command::new(common::vouch_bin())
        .args(["node", "run", "--dev", "--listen", "127.0.0.1:0", "--home"])
        .arg(home.path())
        .env("VOUCH_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert_still_serving(&node);
}
