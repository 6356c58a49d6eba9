//! A CNN none of the other tests has, through a real node and the real CLI: three input channels, a padded
//! convolution on the input itself, a padded strided convolution, MaxPool, Flatten and Dense. Private-input and
//! public zk receipts verify offline; a node whose prover yields an unverifiable proof (`fault_corrupt_proofs`)
//! issues no receipt and answers `500 proof_self_check_failed`, naming the failing instance. An MLP with Sigmoid,
//! Add and Mul by constants, Tanh, Sub and Softmax gets private-input receipts too.

mod common;

use std::path::Path;

use common::onnx::{FLOAT, floats, int, ints, model, node, value_info};
use common::{NodeProc, Rng, write_json};
use serde_json::{Value, json};

const C: usize = 3;
const H: usize = 12;
const W: usize = 12;

/// `1x3x12x12 -> Conv(3->4, 3x3, pad 1) -> Relu -> Conv(4->6, 3x3, pad 1, stride 2) -> Relu -> MaxPool(2x2, stride 2)
/// -> Flatten (54) -> Gemm(10)`, seeded weights.
fn cnn() -> Vec<u8> {
    let mut rng = Rng::new(0xC44);
    let mut tensor = |name: &str, dims: &[i64], fan_in: usize| {
        let n: i64 = dims.iter().product();
        let scale = 1.5 / (fan_in as f64).sqrt();
        floats(name, dims, (0..n).map(|_| (rng.unit() * scale) as f32).collect())
    };
    let initializer = vec![
        tensor("w1", &[4, 3, 3, 3], 27),
        tensor("b1", &[4], 27),
        tensor("w2", &[6, 4, 3, 3], 36),
        tensor("b2", &[6], 36),
        tensor("w3", &[10, 54], 54),
        tensor("b3", &[10], 54),
    ];
    let conv = |stride: i64| {
        vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1]), ints("strides", &[stride, stride])]
    };
    let nodes = vec![
        node("Conv", &["x", "w1", "b1"], "c1", conv(1)),
        node("Relu", &["c1"], "r1", vec![]),
        node("Conv", &["r1", "w2", "b2"], "c2", conv(2)),
        node("Relu", &["c2"], "r2", vec![]),
        node("MaxPool", &["r2"], "p", vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])]),
        node("Flatten", &["p"], "f", vec![]),
        node("Gemm", &["f", "w3", "b3"], "y", vec![int("transB", 1)]),
    ];
    let input = value_info("x", FLOAT, Some(&[1, C as i64, H as i64, W as i64]));
    model(nodes, initializer, vec![input], vec![value_info("y", FLOAT, Some(&[1, 10]))])
}

fn input_doc(seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let data: Vec<f32> = (0..C * H * W).map(|_| rng.unit() as f32).collect();
    json!({"inputs": {"x": {"dtype": "f32", "shape": [1, C, H, W], "data": data}}})
}

/// Pushes the CNN with `--zk` and a calibration set; returns the model file's path.
fn push(node: &NodeProc, dir: &Path) -> std::path::PathBuf {
    let model = dir.join("cnn.onnx");
    std::fs::write(&model, cnn()).unwrap();
    let calib = dir.join("cnn.calib.json");
    write_json(&calib, &Value::Array((0..24).map(|i| input_doc(100 + i)).collect()));
    let pushed: Value = serde_json::from_str(&node.vouch_ok(&[
        "--json",
        "model",
        "push",
        model.to_str().unwrap(),
        "--name",
        "cnn",
        "--zk",
        "--calibration",
        calib.to_str().unwrap(),
        "--force",
    ]))
    .unwrap();
    assert!(pushed["zk"]["private_commitment"].as_str().is_some_and(|c| !c.is_empty()), "{pushed}");
    model
}

#[test]
fn a_multichannel_strided_padded_cnn_gets_private_and_public_receipts_that_verify() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    let model = push(&node, dir.path());
    for seed in [3, 4] {
        let input = dir.path().join(format!("in{seed}.json"));
        write_json(&input, &input_doc(seed));
        for (mode, extra) in [("private", &["--private-input"][..]), ("public", &[][..])] {
            let receipt = dir.path().join(format!("{mode}{seed}.receipt.json"));
            let mut args = vec!["infer", "cnn", "--input", input.to_str().unwrap(), "--mode", "zk"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-o", receipt.to_str().unwrap()]);
            let out = node.vouch(&args);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{mode} {seed}: {stderr}");
            let mut verify = vec!["verify", receipt.to_str().unwrap(), "--model", model.to_str().unwrap()];
            let salt;
            if mode == "private" {
                salt = stderr
                    .split("--salt ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or_else(|| panic!("no salt printed: {stderr}"))
                    .to_owned();
                verify.extend_from_slice(&["--input", input.to_str().unwrap(), "--salt", &salt]);
            }
            let out = node.vouch(&verify);
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{mode} {seed}: {text}");
            let expected = if mode == "private" { "private-input proof verified" } else { "zk      proof verified" };
            assert!(text.contains(expected), "{mode} {seed}: {text}");
        }
    }
    let (_, status) = node.http("GET", "/v1/node", "application/json", b"");
    assert_eq!(status["receipts"], 4, "{status}");
}

#[test]
fn a_proof_that_fails_the_self_check_is_never_issued() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), "fault_corrupt_proofs = true\n").unwrap();
    let node = NodeProc::start(home.path());
    push(&node, dir.path());
    let doc = input_doc(3);
    let salt = "00".repeat(32);
    for (mode, body, failing) in [
        (
            "private",
            json!({"model": "cnn", "inputs": doc["inputs"], "mode": "zk", "private_input": {"salt": salt}}),
            // The batch verifier names the instance whose constraints fail: the one binding the claimed output.
            ": output, 10 elements",
        ),
        // The public proof's last layer is the Gemm (layer 6 of the quantized chain: Conv, Relu, Conv, Relu, MaxPool, Flatten, Gemm); its STARK refuses the output.
        ("public", json!({"model": "cnn", "inputs": doc["inputs"], "mode": "zk"}), "layer 6:"),
    ] {
        let (status, body) = node.http("POST", "/v1/infer", "application/json", body.to_string().as_bytes());
        assert_eq!(status, 500, "{mode}: {body}");
        assert_eq!(body["error"]["code"], "proof_self_check_failed", "{mode}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(failing), "{mode}: the failing part is named: {message}");
        assert!(body["error"]["details"]["model"].as_str().is_some_and(|m| m.starts_with('b')), "{body}");
    }
    // Nothing was stored, and both failures were counted.
    let (_, status) = node.http("GET", "/v1/node", "application/json", b"");
    assert_eq!(status["receipts"], 0, "{status}");
    let (_, metrics) = node.http("GET", "/metrics", "text/plain", b"");
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.lines().any(|l| l == "vouch_proof_self_checks_failed_total 2"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "vouch_receipts_issued_total 0"), "{metrics}");
}

/// `1x8 -> Gemm(16) -> Sigmoid -> Add(c) -> Mul(c) -> Gemm(10) -> Tanh -> Sub(c) -> Gemm(5) -> Softmax`, seeded.
fn mlp_with_every_elementwise_op() -> Vec<u8> {
    let mut rng = Rng::new(0x5F7);
    let mut t = |name: &str, dims: &[i64], scale: f64| {
        let n: i64 = dims.iter().product();
        floats(name, dims, (0..n).map(|_| (rng.unit() * scale) as f32).collect())
    };
    let initializer = vec![
        t("w1", &[16, 8], 0.6),
        t("b1", &[16], 0.2),
        t("add", &[16], 0.5),
        t("mul", &[16], 2.0),
        t("w2", &[10, 16], 0.5),
        t("b2", &[10], 0.2),
        t("sub", &[10], 0.3),
        t("w3", &[5, 10], 0.8),
        t("b3", &[5], 0.2),
    ];
    let gemm = |x: &str, w: &str, b: &str, y: &str| node("Gemm", &[x, w, b], y, vec![int("transB", 1)]);
    let nodes = vec![
        gemm("x", "w1", "b1", "g1"),
        node("Sigmoid", &["g1"], "s", vec![]),
        node("Add", &["s", "add"], "a", vec![]),
        node("Mul", &["a", "mul"], "m", vec![]),
        gemm("m", "w2", "b2", "g2"),
        node("Tanh", &["g2"], "t", vec![]),
        node("Sub", &["t", "sub"], "d", vec![]),
        gemm("d", "w3", "b3", "g3"),
        node("Softmax", &["g3"], "y", vec![int("axis", -1)]),
    ];
    let input = value_info("x", FLOAT, Some(&[1, 8]));
    model(nodes, initializer, vec![input], vec![value_info("y", FLOAT, Some(&[1, 5]))])
}

#[test]
fn a_model_with_sigmoid_tanh_softmax_and_constants_gets_private_receipts_that_verify() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    let model = dir.path().join("ops.onnx");
    std::fs::write(&model, mlp_with_every_elementwise_op()).unwrap();
    let doc = |seed: u64| {
        let mut rng = Rng::new(seed);
        let data: Vec<f32> = (0..8).map(|_| rng.unit() as f32).collect();
        json!({"inputs": {"x": {"dtype": "f32", "shape": [1, 8], "data": data}}})
    };
    let calib = dir.path().join("ops.calib.json");
    write_json(&calib, &Value::Array((0..16).map(|i| doc(200 + i)).collect()));
    let (m, c) = (model.to_str().unwrap(), calib.to_str().unwrap());
    let pushed = node.vouch_ok(&["--json", "model", "push", m, "--name", "ops", "--zk", "--calibration", c]);
    let pushed: Value = serde_json::from_str(&pushed).unwrap();
    assert!(pushed["zk"]["private_commitment"].as_str().is_some_and(|c| !c.is_empty()), "{pushed}");
    let input = dir.path().join("in.json");
    write_json(&input, &doc(7));
    let receipt = dir.path().join("private.receipt.json");
    let (i, r) = (input.to_str().unwrap(), receipt.to_str().unwrap());
    let out = node.vouch(&["infer", "ops", "--input", i, "--mode", "zk", "--private-input", "-o", r]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let salt = stderr.split("--salt ").nth(1).and_then(|s| s.split_whitespace().next()).expect("salt printed");
    let out = node.vouch(&["verify", r, "--model", m, "--input", i, "--salt", salt]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("private-input proof verified"), "{text}");
    // Another salt does not open the input commitment.
    let out = node.vouch(&["verify", r, "--model", m, "--input", i, "--salt", &"11".repeat(32)]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}
