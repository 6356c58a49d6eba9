//! End-to-end: a real `vouch node run` process, the real CLI, real models (the bench models and models shipped
//! in PyPI wheels), outputs checked against onnxruntime, receipts verified offline and tampered with.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{NodeProc, Rng, bench_models, cached_model, repo_root, write_json};
use serde_json::{Value, json};

/// Builds a seeded full-form input document from a pushed model's signature. Dimensions the model leaves
/// open take the value in `open_dims` (in order), or 1.
fn input_doc(model: &Value, seed: u64, open_dims: &[u64]) -> Value {
    let mut rng = Rng::new(seed);
    let mut inputs = serde_json::Map::new();
    let mut open = open_dims.iter();
    for spec in model["inputs"].as_array().unwrap() {
        let shape: Vec<u64> = spec["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap_or_else(|| *open.next().unwrap_or(&1)))
            .collect();
        let n: u64 = shape.iter().product();
        let dtype = spec["dtype"].as_str().unwrap();
        let data: Vec<Value> = (0..n)
            .map(|_| match dtype {
                "f32" => json!(rng.unit() as f32),
                // magika's byte tokens: 0..=255, 256 = padding.
                "i32" => json!((rng.next_u64() % 257) as i32),
                "i64" => json!((rng.next_u64() % 10) as i64),
                other => panic!("no generator for {other}"),
            })
            .collect();
        inputs.insert(spec["name"].as_str().unwrap().into(), json!({"dtype": dtype, "shape": shape, "data": data}));
    }
    json!({ "inputs": inputs })
}

fn ort_reference(model: &Path, input: &Path) -> Value {
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(repo_root().join("scripts/ort_reference.py"))
        .arg(model)
        .arg(input)
        .output()
        .expect("python3 must be installed (scripts/setup-test-env.sh)");
    assert!(out.status.success(), "onnxruntime reference failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => panic!("non-numeric element {other}"),
    }
}

fn assert_close(ours: &Value, reference: &Value, model: &str) {
    let ref_map = reference.as_object().unwrap();
    let our_map = ours.as_object().unwrap();
    assert_eq!(our_map.keys().collect::<Vec<_>>(), ref_map.keys().collect::<Vec<_>>(), "{model}: output names");
    for (name, r) in ref_map {
        let o = &our_map[name];
        assert_eq!(o["shape"], r["shape"], "{model}/{name}: shape");
        let (od, rd) = (o["data"].as_array().unwrap(), r["data"].as_array().unwrap());
        assert_eq!(od.len(), rd.len());
        let max_err = od.iter().zip(rd).map(|(a, b)| (as_f64(a) - as_f64(b)).abs()).fold(0.0, f64::max);
        assert!(max_err <= 1e-4, "{model}/{name}: max abs error {max_err} vs onnxruntime");
    }
}

struct Case {
    name: &'static str,
    path: PathBuf,
    open_dims: &'static [u64],
}

fn cases() -> Vec<Case> {
    let bench = bench_models();
    vec![
        Case { name: "mlp_small", path: bench.join("mlp_small.onnx"), open_dims: &[] },
        Case { name: "mlp_mnist", path: bench.join("mlp_mnist.onnx"), open_dims: &[] },
        Case { name: "lenet_small", path: bench.join("lenet_small.onnx"), open_dims: &[] },
        Case { name: "magika", path: cached_model("magika_standard_v3_3.onnx"), open_dims: &[1] },
        // PP-OCR's direction classifier takes [N, 3, H, W]; 48x192 is the size it is used at.
        Case { name: "ppocr-cls", path: cached_model("ppocr_cls.onnx"), open_dims: &[2, 48, 192] },
    ]
}

fn run_verify(node: &NodeProc, receipt: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", receipt.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = node.vouch(&args);
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `POST /v1/infer` with `Accept: application/x-ndjson`; returns the streamed events.
fn infer_stream(node: &NodeProc, body: &Value) -> Vec<Value> {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(node.addr).unwrap();
    write!(
        s,
        "POST /v1/infer HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/x-ndjson\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        node.addr,
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let (status, text) = common::parse_response(&resp);
    assert_eq!(status, 200);
    let text = match text {
        Value::String(t) => t,
        one => one.to_string(),
    };
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}"))).collect()
}

#[test]
fn push_infer_verify_real_models_against_onnxruntime() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    let mut pushed = vec![];
    for case in cases() {
        let model: Value = serde_json::from_str(&node.vouch_ok(&[
            "--json",
            "model",
            "push",
            case.path.to_str().unwrap(),
            "--name",
            case.name,
            "--description",
            "e2e",
        ]))
        .unwrap();
        for key in ["id", "name", "version", "size", "inputs", "outputs"] {
            assert!(model.get(key).is_some(), "push --json lacks {key}: {model}");
        }
        assert_eq!(model["size"], std::fs::metadata(&case.path).unwrap().len());
        assert_eq!(model["version"], "1.0");
        // `model show` by name, name@version and id all give the push's object.
        for reference in [case.name.to_owned(), format!("{}@1.0", case.name), model["id"].as_str().unwrap().to_owned()]
        {
            let shown: Value = serde_json::from_str(&node.vouch_ok(&["--json", "model", "show", &reference])).unwrap();
            assert_eq!(shown, model, "show {reference}");
        }
        // Pull gives back the identical bytes.
        let pulled = work.path().join(format!("{}.pulled.onnx", case.name));
        node.vouch_ok(&["model", "pull", model["id"].as_str().unwrap(), "-o", pulled.to_str().unwrap()]);
        assert_eq!(std::fs::read(&pulled).unwrap(), std::fs::read(&case.path).unwrap(), "{}: pulled bytes", case.name);

        let input = work.path().join(format!("{}.input.json", case.name));
        write_json(&input, &input_doc(&model, 7, case.open_dims));
        let receipt_path = work.path().join(format!("{}.receipt.json", case.name));
        let printed: Value = serde_json::from_str(&node.vouch_ok(&[
            "--json",
            "infer",
            case.name,
            "--input",
            input.to_str().unwrap(),
            "--mode",
            "signed",
            "-o",
            receipt_path.to_str().unwrap(),
        ]))
        .unwrap();
        let saved: Value = serde_json::from_slice(&std::fs::read(&receipt_path).unwrap()).unwrap();
        assert_eq!(printed, saved);
        assert!(saved["id"].is_string());
        assert_close(&saved["outputs"], &ort_reference(&case.path, &input), case.name);

        // Offline verification, with and without the model bytes.
        assert_eq!(run_verify(&node, &receipt_path, &[]).0, 0, "{}: verify", case.name);
        assert_eq!(run_verify(&node, &receipt_path, &["--model", case.path.to_str().unwrap()]).0, 0);
        // The node keeps it: `receipt show --wait` returns the same receipt, now with its ledger anchor (the
        // node is a single-validator chain), and the anchor verifies offline against the node's genesis.
        let shown = node.vouch_ok(&["receipt", "show", saved["id"].as_str().unwrap(), "--wait"]);
        let mut shown: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(shown["anchor"]["chain"].as_str().map(str::len), Some(64), "{}: anchored", case.name);
        let anchored = work.path().join(format!("{}-anchored.json", case.name));
        write_json(&anchored, &shown);
        let genesis = node.home.join("genesis.json");
        let (code, out) = run_verify(&node, &anchored, &["--genesis", genesis.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: anchor verify: {out}", case.name);
        assert!(out.contains("anchor  settled at height"), "{out}");
        shown["anchor"] = Value::Null;
        assert_eq!(shown, saved);
        pushed.push((case, model, receipt_path));
    }

    let status: Value = serde_json::from_str(&node.vouch_ok(&["--json", "node", "status"])).unwrap();
    assert_eq!(status["models"], 5);
    assert_eq!(status["receipts"], 5);
    let listed: Value = serde_json::from_str(&node.vouch_ok(&["--json", "model", "ls"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);

    tamper_tests(&node, work.path(), &pushed[0].2, &pushed[1].1["id"], &pushed[1].0.path);
    assert!(node.terminate(), "node exits cleanly on SIGTERM");
}

/// `--private-input`: the receipt carries the input's commitment instead of the input, proves the same output
/// as the public proof, verifies offline, and opens to the requester's input and salt only.
fn zk_private(node: &NodeProc, dir: &Path, model: &str, input: &Path, other_doc: &Value, expected: &[i16]) {
    let other_path = dir.join(format!("{model}.private-other-input.json"));
    write_json(&other_path, other_doc);
    let other_input = other_path.as_path();
    let receipt_path = dir.join(format!("{model}.private.receipt.json"));
    let out = node.vouch(&[
        "--json",
        "infer",
        model,
        "--input",
        input.to_str().unwrap(),
        "--mode",
        "zk",
        "--private-input",
        "-o",
        receipt_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["mode"], "zk");
    assert!(receipt.get("inputs").is_none_or(Value::is_null), "a private input is not in the receipt: {receipt}");
    let text = receipt.to_string();
    let out_t = receipt["outputs"].as_object().unwrap().values().next().unwrap();
    let proven: Vec<i16> = out_t["data"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i16).collect();
    assert_eq!(proven, expected, "{model}: the private proof proves the integer executor's output");
    // The CLI checked the opening itself and printed the salt.
    let salt = stderr.split("--salt ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or_else(|| {
        panic!("no salt printed: {stderr}");
    });
    assert_eq!(salt.len(), 64, "{stderr}");
    assert!(!text.contains(salt), "the salt is not in the receipt");

    let (code, out) = run_verify(node, &receipt_path, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("private-input proof verified") && out.contains("input   private, committed as"), "{out}");
    let (code, out) = run_verify(node, &receipt_path, &["--input", input.to_str().unwrap(), "--salt", salt]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("opened with the input and salt given"), "{out}");
    // Another salt, or another input, does not open the commitment.
    let other_salt = format!("{}{}", if salt.starts_with('0') { "1" } else { "0" }, &salt[1..]);
    let (code, out) = run_verify(node, &receipt_path, &["--input", input.to_str().unwrap(), "--salt", &other_salt]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("private input mismatch"), "{out}");
    let (code, out) = run_verify(node, &receipt_path, &["--input", other_input.to_str().unwrap(), "--salt", salt]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("private input mismatch"), "{out}");

    // Tampering: one proof byte, a truncated proof, the input commitment in the signed body.
    let valid = receipt;
    let check = |name: &str, v: &Value, reason: &str| {
        let p = dir.join(format!("zk-private-tampered-{name}.json"));
        write_json(&p, v);
        let (code, out) = run_verify(node, &p, &[]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(reason), "{name}: expected {reason:?} in {out:?}");
    };
    let zk_ix = valid["evidence"].as_array().unwrap().iter().position(|e| e["kind"] == "zk_proof").unwrap();
    let proof = valid["evidence"][zk_ix]["proof"].as_str().unwrap().to_owned();
    let mut v = valid.clone();
    let at = (proof.len() * 2 / 3) & !1;
    let byte = if &proof[at..at + 2] == "00" { "01" } else { "00" };
    v["evidence"][zk_ix]["proof"] = json!(format!("{}{byte}{}", &proof[..at], &proof[at + 2..]));
    check("proof-byte", &v, "zk proof invalid");
    let mut v = valid.clone();
    v["evidence"][zk_ix]["proof"] = json!(&proof[..(proof.len() / 2) & !1]);
    check("truncated", &v, "zk proof invalid");

    // The node refuses a private input outside zk mode, or a salt that is not 4 field elements.
    let doc: Value = serde_json::from_slice(&std::fs::read(input).unwrap()).unwrap();
    for (mode, salt) in [("signed", "00".repeat(32)), ("zk", "zz".repeat(32)), ("zk", "ff".repeat(32))] {
        let events =
            infer_stream(node, &json!({"model": model, "inputs": doc, "mode": mode, "private_input": {"salt": salt}}));
        assert_eq!(
            (events[0]["status"].as_u64(), events[0]["error"]["code"].as_str()),
            (Some(400), Some("invalid_private_input")),
            "{mode} {salt}: {events:?}"
        );
    }
}

fn zk_tamper(node: &NodeProc, dir: &Path, receipt: &Path) {
    let valid: Value = serde_json::from_slice(&std::fs::read(receipt).unwrap()).unwrap();
    let check = |name: &str, v: &Value, reason: &str| {
        let p = dir.join(format!("zk-tampered-{name}.json"));
        write_json(&p, v);
        let (code, out) = run_verify(node, &p, &[]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(reason), "{name}: expected {reason:?} in {out:?}");
    };
    let zk_ix = valid["evidence"].as_array().unwrap().iter().position(|e| e["kind"] == "zk_proof").unwrap();
    // One output value changed: caught by the digest before the proof is even read.
    let mut v = valid.clone();
    let out = v["outputs"].as_object().unwrap().keys().next().unwrap().clone();
    let x = v["outputs"][&out]["data"][0].as_i64().unwrap();
    v["outputs"][&out]["data"][0] = json!(x + 1);
    check("output", &v, "output digest mismatch");
    // One byte of the proof changed.
    let mut v = valid.clone();
    let proof = v["evidence"][zk_ix]["proof"].as_str().unwrap().to_owned();
    let mid = (proof.len() / 2) & !1;
    let flipped =
        format!("{}{}{}", &proof[..mid], if &proof[mid..mid + 2] == "00" { "01" } else { "00" }, &proof[mid + 2..]);
    v["evidence"][zk_ix]["proof"] = json!(flipped);
    check("proof-byte", &v, "zk proof invalid");
    // Another commitment.
    let mut v = valid.clone();
    let c = v["evidence"][zk_ix]["commitment"].as_str().unwrap().to_owned();
    v["evidence"][zk_ix]["commitment"] =
        json!(format!("{}{}", &c[..c.len() - 2], if c.ends_with("00") { "01" } else { "00" }));
    check("commitment", &v, "zk commitment mismatch");
    // A truncated proof.
    let mut v = valid.clone();
    v["evidence"][zk_ix]["proof"] = json!(&proof[..(proof.len() / 3) & !1]);
    check("truncated", &v, "zk proof invalid");
}

fn tamper_tests(node: &NodeProc, dir: &Path, receipt: &Path, other_id: &Value, other_model: &Path) {
    let valid: Value = serde_json::from_slice(&std::fs::read(receipt).unwrap()).unwrap();
    let check = |name: &str, v: &Value, extra: &[&str], reason: &str| {
        let p = dir.join(format!("tampered-{name}.json"));
        write_json(&p, v);
        let (code, out) = run_verify(node, &p, extra);
        assert_eq!(code, 1, "{name}: exit code; output {out}");
        assert!(out.contains(reason), "{name}: expected {reason:?} in {out:?}");
    };

    // One output value changed.
    let mut v = valid.clone();
    let out_name = v["outputs"].as_object().unwrap().keys().next().unwrap().clone();
    let x = v["outputs"][&out_name]["data"][0].as_f64().unwrap();
    v["outputs"][&out_name]["data"][0] = json!(x + 0.5);
    check("output", &v, &[], "output digest mismatch");

    // One byte of the signature changed.
    let mut v = valid.clone();
    let sig = v["evidence"][0]["signature"].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", if &sig[..2] == "00" { "01" } else { "00" }, &sig[2..]);
    v["evidence"][0]["signature"] = json!(flipped);
    check("signature", &v, &[], "bad signature");

    // Another model id: the id no longer matches the contents...
    let mut v = valid.clone();
    v["model"] = other_id.clone();
    check("model-id", &v, &[], "receipt id mismatch");
    // ...and with the id recomputed to match, the signature no longer covers it.
    let json: vouch_codec::ReceiptJson = serde_json::from_value(v.clone()).unwrap();
    v["id"] = json!(json.to_receipt().unwrap().id().to_hex());
    check("model-id-reidentified", &v, &[], "bad signature");

    // Model bytes that are not the receipt's model.
    check("model-bytes", &valid, &["--model", other_model.to_str().unwrap()], "model bytes do not match");

    // A format version this build does not know.
    let mut v = valid.clone();
    v["format"] = json!(2);
    check("format", &v, &[], "unknown receipt format version 2");

    // An input value changed (inputs are disclosed by default).
    let mut v = valid.clone();
    let in_name = v["inputs"].as_object().unwrap().keys().next().unwrap().clone();
    let x = v["inputs"][&in_name]["data"][0].as_f64().unwrap();
    v["inputs"][&in_name]["data"][0] = json!(x + 0.25);
    check("input", &v, &[], "input digest mismatch");

    // Garbage is a usage-level failure of the receipt, still exit 1 with a reason, never a crash.
    let p = dir.join("garbage.json");
    std::fs::write(&p, b"{not json").unwrap();
    let (code, out) = run_verify(node, &p, &[]);
    assert_eq!((code, out.contains("malformed receipt")), (1, true), "{out}");

    // Usage errors exit 2.
    let out = node.vouch(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
    let out = node.vouch(&["verify", dir.join("does-not-exist.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn zk_push_quantizes_with_calibration_and_reports_accuracy() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let node = NodeProc::start(home.path());
    for case in cases().into_iter().take(3) {
        // Learn the signature from a plain push, then build a calibration set in the --input format.
        let plain: Value = serde_json::from_str(&node.vouch_ok(&[
            "--json",
            "model",
            "push",
            case.path.to_str().unwrap(),
            "--name",
            &format!("{}-plain", case.name),
        ]))
        .unwrap();
        let calib: Vec<Value> = (0..32).map(|i| input_doc(&plain, 100 + i, &[])).collect();
        let calib_path = work.path().join(format!("{}.calib.json", case.name));
        write_json(&calib_path, &Value::Array(calib.clone()));
        let name = format!("{}-zk", case.name);
        let pushed: Value = serde_json::from_str(&node.vouch_ok(&[
            "--json",
            "model",
            "push",
            case.path.to_str().unwrap(),
            "--name",
            &name,
            "--zk",
            "--calibration",
            calib_path.to_str().unwrap(),
        ]))
        .unwrap();
        let zk = &pushed["zk"];
        assert_eq!(zk["samples"], 32, "{pushed}");
        assert!(zk["argmax_agreement"].as_f64().unwrap() >= 0.99, "{}: {zk}", case.name);
        assert_eq!(zk["forced"], false);
        let shown = node.vouch_ok(&["model", "show", &name]);
        assert!(shown.contains("argmax agreement"), "{shown}");
        assert!(zk["commitment"].as_str().is_some_and(|c| !c.is_empty()), "{zk}");
        // The zk version still serves ordinary inference.
        let input = work.path().join(format!("{}.zk-input.json", case.name));
        write_json(&input, &input_doc(&plain, 5, &[]));
        node.vouch_ok(&["infer", &name, "--input", input.to_str().unwrap()]);

        // --mode zk on calibration inputs: the proven output is the integer executor's, its argmax is
        // onnxruntime's, and the receipt verifies offline.
        let g = vouch_quant::parse(&std::fs::read(&case.path).unwrap()).unwrap();
        let floats: Vec<Vec<f32>> = calib
            .iter()
            .map(|d| {
                let t = d["inputs"].as_object().unwrap().values().next().unwrap();
                t["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
            })
            .collect();
        let (q, _) = vouch_quant::quantize(&g, &floats).unwrap();
        // On every calibration input, the integer model's dequantized argmax is onnxruntime's.
        let argmax = |v: &[f64]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let references = ort_reference(&case.path, &calib_path);
        for (x, reference) in floats.iter().zip(references.as_array().unwrap()) {
            let deq: Vec<f64> =
                q.dequantize_output(&q.run(&q.quantize_input(x)).unwrap()).iter().map(|v| f64::from(*v)).collect();
            let ort: Vec<f64> = reference.as_object().unwrap().values().next().unwrap()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(as_f64)
                .collect();
            assert_eq!(
                argmax(&deq),
                argmax(&ort),
                "{}: dequantized argmax vs onnxruntime on a calibration input",
                case.name
            );
        }
        for (i, doc) in calib.iter().take(2).enumerate() {
            let input = work.path().join(format!("{}.calib{i}.json", case.name));
            write_json(&input, doc);
            let receipt_path = work.path().join(format!("{}.zk{i}.receipt.json", case.name));
            let receipt: Value = serde_json::from_str(&node.vouch_ok(&[
                "--json",
                "infer",
                &name,
                "--input",
                input.to_str().unwrap(),
                "--mode",
                "zk",
                "-o",
                receipt_path.to_str().unwrap(),
            ]))
            .unwrap();
            assert_eq!(receipt["mode"], "zk");
            let out = receipt["outputs"].as_object().unwrap().values().next().unwrap();
            assert_eq!(out["dtype"], "i16");
            let proven: Vec<i16> = out["data"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i16).collect();
            let expected = q.run(&q.quantize_input(&floats[i])).unwrap();
            assert_eq!(proven, expected, "{}: proven output is the integer executor's", case.name);
            let deq = q.dequantize_output(&proven);
            let reference = ort_reference(&case.path, &input);
            let ort: Vec<f64> = reference.as_object().unwrap().values().next().unwrap()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(as_f64)
                .collect();
            let deq64: Vec<f64> = deq.iter().map(|v| f64::from(*v)).collect();
            assert_eq!(argmax(&deq64), argmax(&ort), "{}: dequantized argmax vs onnxruntime", case.name);
            let (code, text) = run_verify(&node, &receipt_path, &[]);
            assert_eq!(code, 0, "{text}");
            assert!(text.contains("zk      proof verified"), "{text}");
            if i == 0 {
                zk_private(&node, work.path(), &name, &input, &calib[1], &expected);
                zk_tamper(&node, work.path(), &receipt_path);
                // Streaming: one progress event per layer proof, in order, then the receipt.
                let events = infer_stream(&node, &json!({"model": name, "inputs": doc, "mode": "zk"}));
                let (last, progress) = events.split_last().unwrap();
                assert_eq!(last["event"], "receipt", "{last}");
                assert_eq!(last["receipt"]["mode"], "zk");
                let total = progress[0]["total"].as_u64().unwrap();
                assert!(total >= 1);
                assert_eq!(progress.len() as u64, total + 1, "{progress:?}");
                for (k, ev) in progress.iter().enumerate() {
                    assert_eq!((ev["event"].as_str(), ev["done"].as_u64()), (Some("progress"), Some(k as u64)), "{ev}");
                }
                // An error after the stream started is its last event, with the status it would have had.
                let events = infer_stream(&node, &json!({"model": "no-such-model", "inputs": doc, "mode": "zk"}));
                assert_eq!(events.len(), 1, "{events:?}");
                assert_eq!(
                    (events[0]["event"].as_str(), events[0]["status"].as_u64(), events[0]["error"]["code"].as_str()),
                    (Some("error"), Some(404), Some("model_not_found")),
                    "{events:?}"
                );
            }
        }
    }

    // A model with an operator outside the zk op set is refused at push, the op named, and nothing stored.
    let calib_path = work.path().join("magika.calib.json");
    let magika = cached_model("magika_standard_v3_3.onnx");
    write_json(&calib_path, &json!([{ "bytes": [vec![1; 2048]] }]));
    let out = node.vouch(&[
        "model",
        "push",
        magika.to_str().unwrap(),
        "--name",
        "magika-zk",
        "--zk",
        "--calibration",
        calib_path.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not supported on the zk path") && err.contains("unsupported_zk_operator"), "{err}");
    assert_eq!(node.vouch(&["model", "show", "magika-zk"]).status.code(), Some(2));

    // Usage: --zk needs --calibration; a calibration set must be an array of input documents.
    let out = node.vouch(&["model", "push", magika.to_str().unwrap(), "--name", "m", "--zk"]);
    assert_eq!(out.status.code(), Some(2));
    write_json(&calib_path, &json!({"not": "an array"}));
    let out = node.vouch(&[
        "model",
        "push",
        magika.to_str().unwrap(),
        "--name",
        "m",
        "--zk",
        "--calibration",
        calib_path.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_calibration"));
}
