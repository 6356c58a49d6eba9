//! Prove/verify time, proof size and peak memory for the bench models (one process per model for clean
//! peak RSS): `cargo run --release -p vouch-zk --example zk_bench -- MODELS_DIR MODEL [private]`. With `private`,
//! the private-input proof (one hiding batch STARK, every activation hidden) instead of the public-activation one.

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
    if std::env::args().nth(3).as_deref() == Some("private") {
        return private(&name, &q, &report, &inputs(n, 1, 9)[0]);
    }
    let t = Instant::now();
    let prover = vouch_zk::Prover::new(q.clone()).unwrap();
    let c = prover.commitment().clone();
    let setup_s = t.elapsed().as_secs_f64();
    let x = q.quantize_input(&inputs(n, 1, 9)[0]);
    // Proof time with the model committed once (as a node does at push), best of 3.
    let mut prove_s = f64::MAX;
    let mut p = None;
    for _ in 0..3 {
        let t = Instant::now();
        p = Some(prover.prove(&x).unwrap());
        prove_s = prove_s.min(t.elapsed().as_secs_f64());
    }
    let p = p.unwrap();
    let y = q.run(&x).unwrap();
    let bytes = p.to_bytes();
    // Verify from bytes, best of 5.
    let mut verify_s = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let p2 = vouch_zk::ModelProof::from_bytes(&bytes).unwrap();
        vouch_zk::verify(&q, &c, &x, &y, &p2).unwrap();
        verify_s = verify_s.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"model\":\"{name}\",\"commit_s\":{setup_s:.3},\"prove_s\":{prove_s:.3},\"verify_ms\":{:.1},\"proof_kb\":{:.0},\"peak_rss_mib\":{:.0},\"weight_bits\":{},\"argmax_agreement\":{}}}",
        verify_s * 1e3,
        bytes.len() as f64 / 1024.0,
        peak_rss_mib(),
        report.weight_bits,
        report.argmax_agreement
    );
}

fn private(name: &str, q: &vouch_quant::QGraph, report: &vouch_quant::Report, x: &[f32]) {
    use vouch_zk::private::{PrivateProof, PrivateProver, Salt, verify_private};
    let t = Instant::now();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let setup_s = t.elapsed().as_secs_f64();
    let x = q.quantize_input(x);
    let mut prove_s = f64::MAX;
    let mut out = None;
    for _ in 0..3 {
        let t = Instant::now();
        out = Some(prover.prove(&x, &Salt::random()).unwrap());
        prove_s = prove_s.min(t.elapsed().as_secs_f64());
    }
    let (y, p) = out.unwrap();
    let bytes = p.to_bytes();
    let structure = vouch_zk::public_structure(q);
    let mut verify_s = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let p2 = PrivateProof::from_bytes(&bytes).unwrap();
        verify_private(&structure, prover.commitment(), &p2.input, &y, &p2).unwrap();
        verify_s = verify_s.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"model\":\"{name}\",\"mode\":\"private\",\"commit_s\":{setup_s:.3},\"prove_s\":{prove_s:.3},\"verify_ms\":{:.1},\"proof_kb\":{:.0},\"peak_rss_mib\":{:.0},\"weight_bits\":{},\"argmax_agreement\":{}}}",
        verify_s * 1e3,
        bytes.len() as f64 / 1024.0,
        peak_rss_mib(),
        report.weight_bits,
        report.argmax_agreement
    );
}
