//! Proofs of quantized inference on the bench models: honest proofs verify and match the integer executor;
//! every tampering is rejected with its reason; garbage never panics the verifier.

use std::path::PathBuf;

use vouch_quant::{QGraph, parse, quantize};
use vouch_zk::{ModelProof, ZkError, commit, prove, verify};

fn bench(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/models").join(format!("{name}.onnx"))
}

fn inputs(n: usize, count: usize, seed: u64) -> Vec<Vec<f32>> {
    vouch_quant::seeded_inputs(n, count, seed)
}

fn model(name: &str) -> (QGraph, Vec<i16>) {
    let g = parse(&std::fs::read(bench(name)).unwrap()).unwrap();
    let n: usize = g.shapes[0].iter().product();
    let (q, _) = quantize(&g, &inputs(n, 16, 1)).unwrap();
    let x = q.quantize_input(&inputs(n, 1, 9)[0]);
    (q, x)
}

#[test]
fn honest_proofs_verify_and_prove_the_integer_executor() {
    for name in ["mlp_small", "lenet_small"] {
        let (q, x) = model(name);
        let c = commit(&q).unwrap();
        let p = prove(&q, &x).unwrap();
        let y = q.run(&x).unwrap();
        assert_eq!(p.activations.last().unwrap(), &y, "{name}: proven output is the executor's");
        let p = ModelProof::from_bytes(&p.to_bytes()).unwrap();
        verify(&q, &c, &x, &y, &p).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn tampering_is_rejected_with_its_reason() {
    let (q, x) = model("mlp_small");
    let c = commit(&q).unwrap();
    let p = prove(&q, &x).unwrap();
    let y = q.run(&x).unwrap();

    // Another claimed output or input.
    let mut y2 = y.clone();
    y2[0] += 1;
    assert_eq!(verify(&q, &c, &x, &y2, &p), Err(ZkError::PublicMismatch("output")));
    let mut x2 = x.clone();
    x2[0] += 1;
    assert_eq!(verify(&q, &c, &x2, &y, &p), Err(ZkError::PublicMismatch("input")));

    // The output changed consistently in the proof and the claim: the last layer's STARK fails.
    let mut forged = p.clone();
    let last = forged.activations.len() - 1;
    forged.activations[last][0] += 1;
    let y3 = forged.activations[last].clone();
    assert!(matches!(verify(&q, &c, &x, &y3, &forged), Err(ZkError::LayerProof { .. })));

    // An input changed consistently: the first layer's STARK fails (a proof replayed with another input).
    let mut forged = p.clone();
    forged.activations[0][3] += 1;
    let x3 = forged.activations[0].clone();
    assert!(matches!(verify(&q, &c, &x3, &y, &forged), Err(ZkError::LayerProof { layer: 0, .. })));

    // A hidden activation changed.
    let mut forged = p.clone();
    forged.activations[1][0] += 1;
    assert!(matches!(verify(&q, &c, &x, &y, &forged), Err(ZkError::LayerProof { .. } | ZkError::LayerMismatch { .. })));

    // Another model's commitment (same shapes, other weights).
    let g = parse(&std::fs::read(bench("mlp_small")).unwrap()).unwrap();
    let (q_other, _) =
        quantize(&g, &inputs(16, 16, 77).into_iter().map(|v| v.iter().map(|a| a * 3.0).collect()).collect::<Vec<_>>())
            .unwrap();
    let c_other = commit(&q_other).unwrap();
    if c_other != c {
        assert!(matches!(verify(&q, &c_other, &x, &y, &p), Err(ZkError::LayerProof { .. })));
    }

    // One byte of each layer proof flipped, at several places.
    for li in 0..p.layers.len() {
        let len = p.layers[li].1.len();
        for pos in [0, len / 7, len / 3, len / 2, len - 40, len - 1] {
            let mut forged = p.clone();
            forged.layers[li].1[pos] ^= 0x55;
            assert!(
                matches!(verify(&q, &c, &x, &y, &forged), Err(ZkError::Malformed(_) | ZkError::LayerProof { .. })),
                "layer {li} byte {pos} flipped was accepted"
            );
        }
    }

    // Truncated and garbage proofs never panic.
    let bytes = p.to_bytes();
    for n in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            ModelProof::from_bytes(&bytes[..n]).is_err()
                || verify(&q, &c, &x, &y, &ModelProof::from_bytes(&bytes[..n]).unwrap()).is_err()
        );
    }
    assert!(ModelProof::from_bytes(b"garbage").is_err());
    // A different proof version is refused up front.
    let mut forged = p.clone();
    forged.version = 9;
    assert!(matches!(verify(&q, &c, &x, &y, &forged), Err(ZkError::Header(_))));
}

mod common;

mod random_layers {
    use proptest::prelude::*;
    use vouch_quant::quantize;
    use vouch_zk::{ZkError, commit, prove, verify};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        /// Random small Dense(+ReLU) layers: honest proofs verify; a perturbed output (the witness the
        /// prover would need for a wrong answer) is rejected by the layer's STARK.
        #[test]
        fn honest_proofs_verify_and_perturbed_outputs_are_rejected((g, xs, bump) in super::common::dense_case(10)) {
            let relu = g.layers.len() == 2;
            let (q, _) = quantize(&g, &xs).unwrap();
            let c = commit(&q).unwrap();
            let x = q.quantize_input(&xs[0]);
            let p = prove(&q, &x).unwrap();
            let y = q.run(&x).unwrap();
            prop_assert_eq!(verify(&q, &c, &x, &y, &p), Ok(()));
            let mut forged = p.clone();
            let (ix, delta) = bump;
            // Move away from the clamp bounds, so the perturbed value really differs.
            let v = forged.activations[1][ix];
            let delta = if v == i16::MAX { -1 } else if v <= -32767 { 1 } else { delta };
            forged.activations[1][ix] = v + delta;
            let last = forged.activations.len() - 1;
            if relu {
                forged.activations[last] = forged.activations[1].iter().map(|v| (*v).max(0)).collect();
            }
            let y2 = forged.activations[last].clone();
            let r = verify(&q, &c, &x, &y2, &forged);
            prop_assert!(matches!(r, Err(ZkError::LayerProof { layer: 0, .. })), "perturbed witness accepted: {:?}", r);
        }
    }
}
