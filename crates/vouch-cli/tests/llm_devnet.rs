//! Quorum mode for language-model completions on `vouch devnet --nodes 4` (real processes on loopback): a GGUF pushed
//! to one node, `vouch chat --mode quorum --quorum 3` through another. When the ledger assigns three honest nodes, one
//! receipt carries three signatures over the same output tokens, settles and anchors (verified offline against the
//! genesis); node 3 runs with a fault flag that changes its first generated token, and when it is assigned the
//! executors disagree, the dispute set re-executes and only node 3 is slashed, on every node's ledger.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{Proc, cached_model, http, try_http, vouch_bin, wait_for};
use serde_json::Value;

fn vouch(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(vouch_bin()).args(args).env("VOUCH_NODE", url).env_remove("VOUCH_ACCOUNT").output().unwrap()
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn quorum_completions_agree_settle_and_slash_a_lying_executor() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("net");
    let base: u16 = 25_000 + (std::process::id() % 2_000) as u16 * 4;
    let devnet = Command::new(vouch_bin())
        .args(["devnet", "--nodes", "4", "--liar", "3", "--base-port", &base.to_string(), "--home"])
        .arg(&home)
        .env("VOUCH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Proc(devnet);
    let addrs: Vec<SocketAddr> = (0..4).map(|i| SocketAddr::from(([127, 0, 0, 1], base + i))).collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    // Each node registers, then declares its engine string (ONNX and LLM builds with their kernel tiers); quorum
    // executors are drawn among nodes that declare the same one.
    wait_for("all four nodes to finalize blocks, register and declare one engine", 120, || {
        addrs.iter().all(|a| {
            try_http(*a, "GET", "/v1/ledger/nodes", "application/json", b"").is_some_and(|(c, v)| {
                c == 200
                    && v.as_array().is_some_and(|n| {
                        n.len() == 4
                            && n.iter().all(|x| {
                                x["engine"].as_str().is_some_and(|e| e.contains("llama.cpp") && *e == n[0]["engine"])
                            })
                    })
            })
        })
    });
    let dev_key = home.join("dev-account.key");
    let account = dev_key.to_str().unwrap();
    let model = cached_model("smollm2-135m-instruct-q4_1.gguf");
    ok(vouch(&urls[0], &["model", "push", model.to_str().unwrap(), "--name", "smol", "--account", account]), "push");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(home.join("genesis.json")).unwrap()).unwrap();
    let liar = spec["validators"][3]["node_id"].as_str().unwrap().to_owned();
    let genesis = home.join("genesis.json");

    let mut agreed = false;
    let mut disputed = false;
    for attempt in 0..12 {
        let receipt = dir.path().join(format!("q{attempt}.json"));
        let response = dir.path().join(format!("q{attempt}-response.json"));
        let prompt = format!("Say a word that starts with the letter {}.", (b'a' + attempt as u8) as char);
        let out = vouch(
            &urls[1],
            &[
                "chat",
                "smol",
                &prompt,
                "--mode",
                "quorum",
                "--quorum",
                "3",
                "--account",
                account,
                "--max-tokens",
                "8",
                "-o",
                receipt.to_str().unwrap(),
                "--response",
                response.to_str().unwrap(),
            ],
        );
        if out.status.success() {
            if agreed {
                continue;
            }
            agreed = true;
            let r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
            assert_eq!(r["mode"], "quorum", "{r}");
            let executors: Vec<&str> = r["executors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
            assert_eq!(executors.len(), 3);
            assert!(!executors.contains(&liar.as_str()), "an agreed receipt without the liar: {executors:?}");
            assert_eq!(r["evidence"].as_array().unwrap().len(), 3);
            assert!(r["engine"].as_str().unwrap().starts_with("llama.cpp"), "{}", r["engine"]);
            // The receipt's engine is part of what every executor declared on the ledger.
            let (_, nodes) = http(addrs[0], "GET", "/v1/ledger/nodes", "application/json", b"");
            assert!(nodes[0]["engine"].as_str().unwrap().contains(r["engine"].as_str().unwrap()), "{nodes}");
            // Three signatures over the same tokens, and the text the client saw is what they say.
            let v = ok(
                vouch(
                    &urls[2],
                    &[
                        "verify",
                        receipt.to_str().unwrap(),
                        "--model",
                        model.to_str().unwrap(),
                        "--response",
                        response.to_str().unwrap(),
                    ],
                ),
                "verify",
            );
            assert_eq!(v.matches("signer").count(), 3, "{v}");
            // Settled and anchored: the anchor verifies offline against the genesis validators.
            let anchored = ok(
                vouch(&urls[1], &["receipt", "show", r["id"].as_str().unwrap(), "--wait", "--timeout", "90"]),
                "receipt show --wait",
            );
            let anchored_path = dir.path().join("anchored.json");
            std::fs::write(&anchored_path, anchored).unwrap();
            let v = ok(
                vouch(&urls[3], &["verify", anchored_path.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()]),
                "verify --genesis",
            );
            assert!(v.contains("anchor  settled at height"), "{v}");
        } else {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(err.contains("quorum_disagreement"), "attempt {attempt}: {err}");
            disputed = true;
        }
        if agreed && disputed {
            break;
        }
    }
    assert!(agreed, "no quorum of three honest nodes was drawn in 12 jobs");
    assert!(disputed, "the liar was never drawn in 12 jobs");
    // Only the liar is slashed, on every node's ledger.
    wait_for("the liar (only) slashed on every node", 90, || {
        addrs.iter().all(|a| {
            http(*a, "GET", "/v1/ledger/nodes", "application/json", b"").1.as_array().is_some_and(|ns| {
                ns.iter().all(|n| {
                    let slashed = n["slashed"].as_u64().unwrap_or(0);
                    if n["node"] == liar.as_str() { slashed > 0 } else { slashed == 0 }
                })
            })
        })
    });
}
