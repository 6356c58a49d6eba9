//! Prove/verify time, proof size and peak memory for the bench models (one process per model for clean
//! peak RSS): `cargo run --release -p vouch-zk --example zk_bench -- MODELS_DIR MODEL [private|private-weights]`.
//! With `private`, the private-input proof (one hiding batch STARK, every activation hidden) instead of the
//! public-activation one; with `private-weights`, the same with the weights hidden too (bound by their commitment).

use std::time::Instant;

fn inputs(n: usize, count: usize, seed: u64) -> Vec<Vec<f32>> {
    vouch_quant::seeded_inputs(n, count, seed)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: zk_bench MODELS_DIR MODEL");
    let name = std::env::args().nth(2).expect("usage: zk_bench MODELS_DIR MODEL");
    let g = vouch_quant::parse(&std::fs::read(format!("{dir}/{name}.onnx")).unwrap()).unwrap();
    let n: usize = g.shapes[0].iter().product();
    let (q, report) = vouch_quant::quantize(&g, &inputs(n, 64, 1)).unwrap();
    match std::env::args().nth(3).as_deref() {
        Some("private") => return private(&name, &q, &report, &inputs(n, 1, 9)[0], false),
        Some("private-weights") => return private(&name, &q, &report, &inputs(n, 1, 9)[0], true),
        _ => {}
    }
    let t = Instant::now();
    let prover = vouch_zk::Prover::new(q.clone()).unwrap();
    let c = prover.commitment().clone();
    let setup_s = t.elapsed().as_secs_f64();
    let x = q.quantize_input(&inputs(n, 1, 9)[0]);
    // Proof time with the model committed once (as a node does at push), best of 3.
    let (prove_s, p) = best_of(3, || prover.prove(&x).unwrap());
    let y = q.run(&x).unwrap();
    let bytes = p.to_bytes();
    // Verify from bytes, best of 5.
    let (verify_s, ()) = best_of(5, || {
        let p2 = vouch_zk::ModelProof::from_bytes(&bytes).unwrap();
        vouch_zk::verify(&q, &c, &x, &y, &p2).unwrap();
    });
    print_result(&format!("\"model\":\"{name}\""), setup_s, prove_s, verify_s, bytes.len(), &report);
}

/// The best time of `n` runs of `f`, and the last run's result.
fn best_of<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..n {
        let t = Instant::now();
        out = Some(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out.expect("n > 0"))
}

fn print_result(head: &str, setup_s: f64, prove_s: f64, verify_s: f64, bytes: usize, report: &vouch_quant::Report) {
    println!(
        "{{{head},\"commit_s\":{setup_s:.3},\"prove_s\":{prove_s:.3},\"verify_ms\":{:.1},\"proof_kb\":{:.0},\"peak_rss_mib\":{:.0},\"weight_bits\":{},\"argmax_agreement\":{}}}",
        verify_s * 1e3,
        bytes as f64 / 1024.0,
        peak_rss_mib(),
        report.weight_bits,
        report.argmax_agreement
    );
}

fn private(name: &str, q: &vouch_quant::QGraph, report: &vouch_quant::Report, x: &[f32], hidden: bool) {
    use vouch_zk::private::{PrivateProof, PrivateProver, Salt, verify_private};
    let t = Instant::now();
    let prover = if hidden {
        PrivateProver::with_hidden_weights(q.clone(), &Salt::random()).unwrap()
    } else {
        PrivateProver::new(q.clone()).unwrap()
    };
    let setup_s = t.elapsed().as_secs_f64();
    if std::env::var_os("ZK_BENCH_PLAN").is_some() {
        for (what, h, w, pw) in prover.instances() {
            eprintln!("{h:>7} x {w:>4} main, {pw:>4} preprocessed  {what}");
        }
    }
    let x = q.quantize_input(x);
    let (prove_s, (y, p)) = best_of(3, || prover.prove(&x, &Salt::random()).unwrap());
    let bytes = p.to_bytes();
    if std::env::var_os("ZK_BENCH_SIZES").is_some() {
        eprint!("{}", vouch_zk::private::stark_size_report(&p.stark).unwrap());
    }
    let structure = vouch_zk::public_structure(q);
    let (verify_s, ()) = best_of(5, || {
        let p2 = PrivateProof::from_bytes(&bytes).unwrap();
        verify_private(&structure, prover.commitment(), &p2.input, &y, &p2).unwrap();
    });
    let mode = if hidden { "private-weights" } else { "private" };
    let head = format!("\"model\":\"{name}\",\"mode\":\"{mode}\"");
    print_result(&head, setup_s, prove_s, verify_s, bytes.len(), report);
}
