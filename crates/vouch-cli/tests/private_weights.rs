//! A model pushed with `--private-weights`, through a real node and the real CLI: its file is never served, its zk
//! receipts are private-input proofs that `vouch verify` checks without the model file (the weights stay on the
//! node), and every way to reach the weights or to run it elsewhere is refused with `model_private`.

mod common;

use std::path::Path;

use common::onnx::{FLOAT, floats, int, ints, model, node, value_info};
use common::{NodeProc, Rng, write_json};
use serde_json::{Value, json};

/// `1x2x10x10 -> Conv(2->5, 3x3, pad 1) -> Relu -> MaxPool(2x2) -> Flatten (125) -> Gemm(150) -> Relu -> Gemm(6)`:
/// a padded convolution, a Dense layer wider than one 128-tap row, and a narrow one. Weights drawn from `seed`.
fn cnn(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut tensor = |name: &str, dims: &[i64], fan_in: usize| {
        let n: i64 = dims.iter().product();
        let scale = 1.5 / (fan_in as f64).sqrt();
        floats(name, dims, (0..n).map(|_| (rng.unit() * scale) as f32).collect())
    };
    let initializer = vec![
        tensor("w1", &[5, 2, 3, 3], 18),
        tensor("b1", &[5], 18),
        tensor("w2", &[150, 125], 125),
        tensor("b2", &[150], 125),
        tensor("w3", &[6, 150], 150),
        tensor("b3", &[6], 150),
    ];
    let nodes = vec![
        node("Conv", &["x", "w1", "b1"], "c", vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])]),
        node("Relu", &["c"], "r", vec![]),
        node("MaxPool", &["r"], "p", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]),
        node("Flatten", &["p"], "f", vec![]),
        node("Gemm", &["f", "w2", "b2"], "g", vec![int("transB", 1)]),
        node("Relu", &["g"], "h", vec![]),
        node("Gemm", &["h", "w3", "b3"], "y", vec![int("transB", 1)]),
    ];
    let input = value_info("x", FLOAT, Some(&[1, 2, 10, 10]));
    model(nodes, initializer, vec![input], vec![value_info("y", FLOAT, Some(&[1, 6]))])
}

fn input_doc(seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let data: Vec<f32> = (0..200).map(|_| rng.unit() as f32).collect();
    json!({"inputs": {"x": {"dtype": "f32", "shape": [1, 2, 10, 10], "data": data}}})
}

/// Pushes `cnn(seed)` as `name` with `--zk` (and `--private-weights` when `hidden`); returns the record.
fn push(node: &NodeProc, dir: &Path, name: &str, seed: u64, hidden: bool) -> (Value, std::path::PathBuf) {
    let model = dir.join(format!("{name}.onnx"));
    std::fs::write(&model, cnn(seed)).unwrap();
    let calib = dir.join("calib.json");
    write_json(&calib, &Value::Array((0..16).map(|i| input_doc(300 + i)).collect()));
    let (m, c) = (model.to_str().unwrap(), calib.to_str().unwrap());
    let mut args = vec!["--json", "model", "push", m, "--name", name, "--zk", "--calibration", c, "--force"];
    if hidden {
        args.push("--private-weights");
    }
    let out = node.vouch(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap(), model)
}

#[test]
fn a_private_weights_model_proves_without_revealing_its_file_and_refuses_everything_else() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    let (pushed, model) = push(&node, dir.path(), "secret", 0x5EC, true);
    let zk = &pushed["zk"];
    assert_eq!(zk["hidden_weights"], true, "{pushed}");
    assert!(zk["commitment"].is_null(), "no public-activation commitment: {pushed}");
    let commitment = zk["private_commitment"].as_str().expect("a private commitment").to_owned();
    let id = pushed["id"].as_str().unwrap().to_owned();

    // A zk receipt with a private input verifies offline without the model file.
    let input = dir.path().join("in.json");
    write_json(&input, &input_doc(5));
    let receipt = dir.path().join("r.json");
    let (i, r) = (input.to_str().unwrap(), receipt.to_str().unwrap());
    let out = node.vouch(&["infer", "secret", "--input", i, "--mode", "zk", "--private-input", "-o", r]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let salt = stderr.split("--salt ").nth(1).and_then(|s| s.split_whitespace().next()).expect("salt printed");
    let out = node.vouch(&["verify", r, "--input", i, "--salt", salt]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("private-input proof verified"), "{text}");
    // The report names the weights commitment the proof is about: the model's zk identity published at push.
    let out = node.vouch(&["--json", "verify", r]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = report["weights_commitment"].as_str().expect("a weights commitment").to_owned();
    assert_eq!(zk["weights_commitment"].as_str(), Some(w.as_str()), "{report} {pushed}");
    assert!(text.contains(&format!("weights private, committed as {w}")), "{text}");
    // The receipt's output changed: rejected.
    let mut tampered: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let out0 = tampered["outputs"]["y"]["data"][0].as_i64().unwrap();
    tampered["outputs"]["y"]["data"][0] = json!(out0 + 1);
    let bad = dir.path().join("bad.json");
    write_json(&bad, &tampered);
    let out = node.vouch(&["verify", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    // Signed mode runs on the node that holds the weights.
    let out = node.vouch(&["infer", "secret", "--input", i, "--mode", "signed"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let doc = input_doc(5);
    let refused = |(status, body): (u16, Value), what: &str| {
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(body["error"]["code"], "model_private", "{what}: {body}");
    };
    // The file is never served.
    refused(node.http("GET", &format!("/v1/blobs/{id}"), "application/json", b""), "download");
    let out = node.vouch(&["model", "pull", &id, "-o", dir.path().join("pulled.onnx").to_str().unwrap()]);
    assert!(!out.status.success(), "pull: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!dir.path().join("pulled.onnx").exists());
    // A public-activation zk proof (it would open the weights) and quorum (others would need the file).
    let zk_public = json!({"model": "secret", "inputs": doc["inputs"], "mode": "zk"});
    refused(node.http("POST", "/v1/infer", "application/json", zk_public.to_string().as_bytes()), "public zk");
    let quorum = json!({"model": "secret", "inputs": doc["inputs"], "mode": "quorum"});
    refused(node.http("POST", "/v1/infer", "application/json", quorum.to_string().as_bytes()), "quorum");
    // The same file cannot be pushed again with public weights (that would serve it).
    let (m, c) = (model.to_str().unwrap(), dir.path().join("calib.json"));
    let out = node.vouch(&["model", "push", m, "--name", "again", "--zk", "--calibration", c.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("model_private"), "{}", String::from_utf8_lossy(&out.stderr));
    // Pushed again with private weights, it keeps its commitment (one salt per model on a node).
    let (again, _) = push(&node, dir.path(), "secret", 0x5EC, true);
    assert_eq!(again["zk"]["private_commitment"], commitment.as_str(), "{again}");

    // Another model of the same architecture, other weights: another commitment.
    let (other, _) = push(&node, dir.path(), "other", 0x07E, true);
    assert_ne!(other["zk"]["private_commitment"], commitment.as_str());
    // `private_weights` without `zk` is refused.
    let (status, body) =
        node.http("POST", "/v1/models/x/versions?private_weights=true", "application/octet-stream", b"x");
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{body}");
}
