//! Language models end to end: a real node process, GGUF models from PyPI pushed with the real CLI, the real `openai`
//! Python client, `vouch chat` and `vouch complete`, and `vouch verify` on every receipt (with the response text
//! checked against the receipt's tokens), each tampering refused with its exact reason; bad input answered with its
//! exact error while the node keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{NodeProc, cached_model, repo_root, write_json};
use serde_json::{Value, json};

const SMOL: &str = "smollm2-135m-instruct-q4_1.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// `vouch verify` exit code and stdout.
fn verify(node: &NodeProc, receipt: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", receipt.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = node.vouch(&args);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn post(node: &NodeProc, path: &str, body: &Value) -> (u16, Value) {
    node.http("POST", path, "application/json", body.to_string().as_bytes())
}

fn metric(node: &NodeProc, name: &str) -> f64 {
    let (_, text) = node.http("GET", "/metrics", "text/plain", b"");
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn start_with_models(home: &Path) -> NodeProc {
    let node = NodeProc::start(home);
    let out = node.vouch_ok(&["model", "push", cached_model(SMOL).to_str().unwrap(), "--name", "smollm2"]);
    assert!(out.contains("gguf") || !out.is_empty(), "{out}");
    node
}

#[test]
fn openai_client_chat_completions_and_offline_verification() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let node = start_with_models(home.path());
    // `model show` prints what the GGUF header says.
    let show = node.vouch_ok(&["model", "show", "smollm2"]);
    for expected in ["gguf", "llama", "49152", "8192", "Q4_1", "gpt2", "chat template"] {
        assert!(show.contains(expected), "{expected:?} missing from:\n{show}");
    }

    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(repo_root().join("crates/vouch-cli/tests/llm_openai.py"))
        .args([node.url.as_str(), "smollm2", work.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "openai client run failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chat = &summary["chat"];
    assert!(!chat["text"].as_str().unwrap().is_empty(), "{summary}");
    assert!(chat["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(chat["fingerprint"].as_str().unwrap().starts_with("fp_"));
    // Greedy decoding streams the same text, and the same logits step by step.
    assert_eq!(summary["stream"]["text"], chat["text"], "{summary}");
    assert_eq!(summary["stream"]["logits_digest"], chat["logits_digest"]);
    assert_eq!(summary["stream"]["usage"], chat["usage"]);
    assert!(summary["stream"]["chunks"].as_u64().unwrap() > 3);
    // OpenAI-shaped errors, raised by the client as its exceptions.
    let e = &summary["errors"];
    assert_eq!(
        e["temperature"],
        json!({"status": 400, "code": "invalid_parameter", "param": "temperature", "type": "invalid_request_error"})
    );
    assert_eq!(
        e["n"],
        json!({"status": 400, "code": "unsupported_parameter", "param": "n", "type": "invalid_request_error"})
    );
    assert_eq!(e["max_tokens"]["param"], "max_tokens");
    assert_eq!(
        e["model"],
        json!({"status": 404, "code": "model_not_found", "param": "model", "type": "not_found_error"})
    );

    // Every receipt verifies offline, and its response text is exactly what its tokens say.
    let model = cached_model(SMOL);
    let m = model.to_str().unwrap();
    for name in ["chat", "stream", "completion"] {
        let receipt = work.path().join(format!("{name}-receipt.json"));
        let response = work.path().join(format!("{name}-response.json"));
        let (code, out) = verify(&node, &receipt, &["--model", m, "--response", response.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {out}");
        assert!(out.contains("the response is exactly the receipt's"), "{out}");
    }

    // Tampering, each with its exact reason.
    let receipt_path = work.path().join("chat-receipt.json");
    let response_path = work.path().join("chat-response.json");
    let valid = read_json(&receipt_path);
    let check = |name: &str, r: &Value, resp: Option<&Value>, reason: &str| {
        let p = work.path().join(format!("tampered-{name}.json"));
        write_json(&p, r);
        let rp = work.path().join(format!("tampered-{name}-response.json"));
        write_json(&rp, resp.unwrap_or(&read_json(&response_path)));
        let (code, out) = verify(&node, &p, &["--model", m, "--response", rp.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(reason), "{name}: expected {reason:?} in {out:?}");
    };
    let mut v = valid.clone();
    let t = v["outputs"]["tokens"]["data"][0].as_u64().unwrap();
    v["outputs"]["tokens"]["data"][0] = json!(t + 1);
    check("output-token", &v, None, "output digest mismatch");
    let mut v = valid.clone();
    let t = v["inputs"]["prompt"]["data"][3].as_u64().unwrap();
    v["inputs"]["prompt"]["data"][3] = json!(t + 1);
    check("prompt-token", &v, None, "input digest mismatch");
    let mut v = valid.clone();
    let request = v["inputs"]["request"]["data"][0].as_str().unwrap().replace("\"max_tokens\":24", "\"max_tokens\":25");
    assert_ne!(v["inputs"]["request"]["data"][0], json!(request));
    v["inputs"]["request"]["data"][0] = json!(request);
    check("sampling-parameter", &v, None, "input digest mismatch");
    let mut v = valid.clone();
    let sig = v["evidence"][0]["signature"].as_str().unwrap().to_owned();
    v["evidence"][0]["signature"] = json!(format!("{}{}", if &sig[..2] == "00" { "01" } else { "00" }, &sig[2..]));
    check("signature", &v, None, "bad signature");
    // A response whose text is not the receipt's.
    let mut resp = read_json(&response_path);
    let text = resp["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    resp["choices"][0]["message"]["content"] = json!(format!("{text} (edited)"));
    check("response-text", &valid, Some(&resp), "its text differs from the receipt's tokens");
    let mut resp = read_json(&response_path);
    resp["usage"]["completion_tokens"] = json!(1000);
    check("response-usage", &valid, Some(&resp), "usage.completion_tokens is 1000");
    // Another GGUF's tokenizer cannot vouch for the text: the model bytes are not the receipt's model.
    let (code, out) = verify(&node, &receipt_path, &["--model", cached_model(GEMMA).to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("model bytes do not match"), "{out}");

    // The receipt is served later by id, and settles on the ledger.
    let id = valid["id"].as_str().unwrap();
    let (status, served) = node.http("GET", &format!("/v1/receipts/{id}"), "text/plain", b"");
    assert_eq!(status, 200, "{served}");
    assert_eq!(served["outputs"], valid["outputs"]);
    assert!(metric(&node, "vouch_llm_completions_total") >= 5.0);
}

#[test]
fn vouch_chat_and_complete_stream_and_save_verifiable_receipts() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let node = start_with_models(home.path());
    node.vouch_ok(&["model", "push", cached_model(GEMMA).to_str().unwrap(), "--name", "gemma3"]);
    let receipt = work.path().join("r.json");
    let response = work.path().join("resp.json");
    for (model, gguf) in [("smollm2", SMOL), ("gemma3", GEMMA)] {
        let out = node.vouch_ok(&[
            "chat",
            model,
            "Write the word hello.",
            "--system",
            "Be brief.",
            "--max-tokens",
            "12",
            "-o",
            receipt.to_str().unwrap(),
            "--response",
            response.to_str().unwrap(),
        ]);
        let said = read_json(&response)["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
        assert_eq!(out, format!("{said}\n"), "{model}: the terminal shows the streamed answer");
        let (code, v) = verify(
            &node,
            &receipt,
            &["--model", cached_model(gguf).to_str().unwrap(), "--response", response.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{model}: {v}");
        let out = node.vouch_ok(&[
            "complete",
            model,
            "Paris is the capital of",
            "--max-tokens",
            "8",
            "-o",
            receipt.to_str().unwrap(),
            "--response",
            response.to_str().unwrap(),
        ]);
        assert!(!out.trim().is_empty(), "{model}");
        let (code, v) = verify(
            &node,
            &receipt,
            &["--model", cached_model(gguf).to_str().unwrap(), "--response", response.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{model}: {v}");
    }
    // Interactive chat: two turns on stdin, the second sees the first.
    let mut child = Command::new(common::vouch_bin())
        .args(["chat", "smollm2", "--max-tokens", "8", "-o", receipt.to_str().unwrap()])
        .env("VOUCH_NODE", &node.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Hi\nAnd again?\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("receipt ").count(), 2, "{stderr}");
    let r = read_json(&receipt);
    // The second turn's prompt holds the whole conversation.
    assert!(r["inputs"]["prompt"]["shape"][0].as_u64().unwrap() > 20, "{}", r["inputs"]["prompt"]);
}

#[test]
fn bad_requests_get_their_exact_errors_and_the_node_keeps_serving() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), "llm_parallel = 1\nllm_queue = 1\nllm_max_context = 2048\n")
        .unwrap();
    let node = start_with_models(home.path());
    let push_err = |name: &str, bytes: &[u8]| {
        let p = work.path().join(format!("{name}.gguf"));
        std::fs::write(&p, bytes).unwrap();
        let out = node.vouch(&["model", "push", p.to_str().unwrap(), "--name", name]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Garbage named .gguf, a truncated GGUF, hostile counts, an unsupported architecture.
    let e = push_err("garbage", b"this is not a model at all, just bytes");
    assert!(e.contains("invalid_model"), "{e}");
    let real = std::fs::read(cached_model(SMOL)).unwrap();
    let e = push_err("truncated", &real[..real.len() / 3]);
    assert!(e.contains("invalid_model") && e.contains("runs past the end of the file"), "{e}");
    let mut huge = real[..4096].to_vec();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = push_err("huge", &huge);
    assert!(e.contains("invalid_model") && e.contains("tensor count"), "{e}");
    let mut bert = b"GGUF".to_vec();
    bert.extend_from_slice(&3u32.to_le_bytes());
    bert.extend_from_slice(&0u64.to_le_bytes());
    bert.extend_from_slice(&3u64.to_le_bytes());
    let kv_str = |out: &mut Vec<u8>, k: &str, v: &str| {
        out.extend_from_slice(&(k.len() as u64).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    };
    kv_str(&mut bert, "general.architecture", "bert");
    kv_str(&mut bert, "tokenizer.ggml.model", "bert");
    bert.extend_from_slice(&21u64.to_le_bytes());
    bert.extend_from_slice(b"tokenizer.ggml.tokens");
    bert.extend_from_slice(&9u32.to_le_bytes());
    bert.extend_from_slice(&8u32.to_le_bytes());
    bert.extend_from_slice(&1u64.to_le_bytes());
    bert.extend_from_slice(&1u64.to_le_bytes());
    bert.push(b'a');
    bert.resize(bert.len().div_ceil(32) * 32, 0);
    let e = push_err("bert", &bert);
    assert!(e.contains("unsupported_architecture") && e.contains("\"bert\""), "{e}");
    let (_, list) = node.http("GET", "/v1/models", "text/plain", b"");
    assert_eq!(list["repos"].as_array().unwrap().len(), 1, "nothing but smollm2 was stored: {list}");

    let msgs = json!([{"role": "user", "content": "Hello"}]);
    let err = |body: Value, status: u16, code: &str, param: &str| {
        let (s, v) = post(&node, "/v1/chat/completions", &body);
        assert_eq!(s, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
        assert!(v["error"]["type"].is_string() && v["error"]["message"].is_string(), "{v}");
        v
    };
    let long = "word ".repeat(3000);
    let v = err(
        json!({"model": "smollm2", "messages": [{"role": "user", "content": long}]}),
        400,
        "context_length_exceeded",
        "messages",
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("above the context window of 2048") && msg.contains("the prompt has "), "both counts: {msg}");
    err(json!({"model": "smollm2", "messages": msgs, "max_tokens": 0}), 400, "invalid_parameter", "max_tokens");
    err(json!({"model": "smollm2", "messages": msgs, "temperature": -0.5}), 400, "invalid_parameter", "temperature");
    err(json!({"model": "smollm2", "messages": msgs, "top_p": 1.5}), 400, "invalid_parameter", "top_p");
    err(json!({"model": "smollm2", "messages": msgs, "n": 2}), 400, "unsupported_parameter", "n");
    err(
        json!({"model": "smollm2", "messages": msgs, "tools": [{"type": "function"}]}),
        400,
        "unsupported_parameter",
        "tools",
    );
    err(
        json!({"model": "smollm2", "messages": [{"role": "wizard", "content": "x"}]}),
        400,
        "invalid_messages",
        "messages",
    );
    err(json!({"model": "smollm2", "messages": []}), 400, "invalid_messages", "messages");
    err(json!({"model": "nope", "messages": msgs}), 404, "model_not_found", "model");
    err(json!({"model": "smollm2", "messages": msgs, "frobnicate": 1}), 400, "unsupported_parameter", "frobnicate");
    let (s, v) = node.http("POST", "/v1/chat/completions", "application/json", b"{not json");
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_json")), "{v}");
    let (s, v) = post(&node, "/v1/completions", &json!({"model": "smollm2", "prompt": [1, 49999999]}));
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_prompt")), "{v}");

    // A client that disconnects mid-stream: its generation stops (the metric counts it) and no receipt is issued.
    let cancelled_before = metric(&node, "vouch_llm_cancelled_total");
    let receipts_before = metric(&node, "vouch_receipts_issued_total");
    {
        let body = json!({"model": "smollm2", "messages": msgs, "max_tokens": 2000, "stream": true}).to_string();
        let mut s = TcpStream::connect(node.addr).unwrap();
        write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        while String::from_utf8_lossy(&got).matches("data: ").nth(3).is_none() {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "stream ended early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&node, "vouch_llm_cancelled_total") <= cancelled_before {
        assert!(Instant::now() < deadline, "the generation was not stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&node, "vouch_receipts_issued_total"), receipts_before, "no receipt for a cancelled stream");

    // More concurrent requests than one running place and one queue place: the rest are 429 with Retry-After.
    let body = json!({"model": "smollm2", "messages": msgs, "max_tokens": 64, "temperature": 0}).to_string();
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let (addr, body) = (node.addr, body.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
                let mut resp = Vec::new();
                s.read_to_end(&mut resp).unwrap();
                String::from_utf8_lossy(&resp).into_owned()
            })
        })
        .collect();
    let answers: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = answers.iter().filter(|a| a.starts_with("HTTP/1.1 200")).count();
    let busy: Vec<&String> = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).collect();
    assert!(ok >= 2 && !busy.is_empty() && ok + busy.len() == 5, "{answers:#?}");
    for b in busy {
        assert!(b.to_ascii_lowercase().contains("retry-after: 1") && b.contains("queue_full"), "{b}");
    }

    // Still serving.
    let (s, v) = post(&node, "/v1/chat/completions", &json!({"model": "smollm2", "messages": msgs, "max_tokens": 4}));
    assert_eq!(s, 200, "{v}");
}

#[test]
fn three_node_processes_with_different_thread_counts_decode_identically() {
    let homes: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for (h, threads) in homes.iter().zip([1, 2, 2]) {
        std::fs::write(h.path().join("config.toml"), format!("llm_threads = {threads}\n")).unwrap();
    }
    let nodes: Vec<NodeProc> = homes.iter().map(|h| start_with_models(h.path())).collect();
    // A prompt past 512 tokens (three prefill chunks; attention over more than 512 cached tokens), and a short one;
    // greedy and seeded sampling.
    let long = format!("Summarize: {}", "The committee met on Tuesday to review the budget. ".repeat(60));
    for (content, temperature) in
        [(long.as_str(), 0.0), ("Tell me about the moon.", 0.0), ("Tell me about the moon.", 0.8)]
    {
        let body = json!({
            "model": "smollm2", "messages": [{"role": "user", "content": content}], "max_tokens": 24,
            "temperature": temperature, "seed": 11, "vouch": {"logit_digests": true}
        });
        let answers: Vec<Value> = nodes
            .iter()
            .map(|n| {
                let (s, v) = post(n, "/v1/chat/completions", &body);
                assert_eq!(s, 200, "{v}");
                v
            })
            .collect();
        let tokens: Vec<&Value> = answers.iter().map(|a| &a["vouch"]["receipt"]["outputs"]["tokens"]["data"]).collect();
        let steps: Vec<&Value> = answers.iter().map(|a| &a["vouch"]["step_logits_digests"]).collect();
        assert_eq!(steps[0].as_array().unwrap().len(), 24, "{}", answers[0]);
        for i in 1..3 {
            assert_eq!(tokens[i], tokens[0], "node {i}, temperature {temperature}");
            assert_eq!(steps[i], steps[0], "node {i}, temperature {temperature}: logits differ");
        }
        // The same request: the same input digest on every node (the receipts differ only in who signed and when).
        let digests: Vec<&Value> = answers.iter().map(|a| &a["vouch"]["receipt"]["input_digest"]).collect();
        assert!(digests.iter().all(|d| *d == digests[0]));
    }
}
