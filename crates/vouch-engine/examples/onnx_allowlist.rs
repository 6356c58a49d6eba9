//! Regenerates the pinned ONNX conformance allow-list: runs every case under CASES_DIR (the `node` folder
//! written by shared/bench/onnx_node_suite.py) and prints the names of those that pass, sorted.
//!
//! `cargo run --release -p vouch-engine --example onnx_allowlist -- .cache/onnx-node/node \
//!     > crates/vouch-engine/tests/onnx_node_allowlist.txt`
//!
//! Each case runs on its own thread with a time limit; one that hangs or takes longer is left out.

use std::sync::mpsc;
use std::time::Duration;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: onnx_allowlist CASES_DIR");
    let mut cases: Vec<_> =
        std::fs::read_dir(&dir).expect("read CASES_DIR").filter_map(Result::ok).map(|e| e.path()).collect();
    cases.sort();
    let (mut pass, mut fail, mut slow) = (vec![], 0, 0);
    for case in &cases {
        let (tx, rx) = mpsc::channel();
        let c = case.clone();
        std::thread::spawn(move || {
            let _ = tx.send(vouch_engine::conformance::run_case(&c));
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => pass.push(case.file_name().unwrap().to_string_lossy().into_owned()),
            Ok(Err(_)) => fail += 1,
            Err(_) => slow += 1,
        }
    }
    eprintln!("{} cases: {} pass, {fail} fail, {slow} over the time limit", cases.len(), pass.len());
    println!(
        "# ONNX node conformance cases that pass through Vouch's engine path (tract-onnx {}),",
        vouch_engine::tract::TRACT_VERSION
    );
    println!(
        "# generated from onnx==1.23.2 by: cargo run --release -p vouch-engine --example onnx_allowlist -- .cache/onnx-node/node"
    );
    for p in pass {
        println!("{p}");
    }
}
