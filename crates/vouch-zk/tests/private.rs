//! Private-input proofs: honest proofs verify for the bench models with the input behind its commitment; every
//! tampering is rejected with its reason; garbage never panics the verifier.

use std::path::PathBuf;

use vouch_quant::{QGraph, parse, quantize};
use vouch_zk::ZkError;
use vouch_zk::private::{
    InputCommitment, PRIVATE_SYSTEM, PRIVATE_SYSTEM_V2, PRIVATE_SYSTEM_V3, PrivateEvidence, PrivateProof,
    PrivateProver, Salt, commit_input, verify_private, verify_private_evidence,
};

fn bench(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/models").join(format!("{name}.onnx"))
}

fn model_with(name: &str, calibration_scale: f32) -> (QGraph, Vec<i16>) {
    let g = parse(&std::fs::read(bench(name)).unwrap()).unwrap();
    let n: usize = g.shapes[0].iter().product();
    let calib: Vec<Vec<f32>> = vouch_quant::seeded_inputs(n, 16, 1)
        .into_iter()
        .map(|v| v.into_iter().map(|a| a * calibration_scale).collect())
        .collect();
    let (q, _) = quantize(&g, &calib).unwrap();
    let x = q.quantize_input(&vouch_quant::seeded_inputs(n, 1, 9)[0]);
    (q, x)
}

fn model(name: &str) -> (QGraph, Vec<i16>) {
    model_with(name, 1.0)
}

#[test]
fn honest_private_proofs_verify_for_the_bench_models() {
    for name in ["mlp_small", "lenet_small"] {
        let (q, x) = model(name);
        let prover = PrivateProver::new(q.clone()).unwrap();
        let salt = Salt::random();
        let (y, proof) = prover.prove(&x, &salt).unwrap();
        assert_eq!(y, q.run(&x).unwrap(), "{name}: the proven output is the executor's");
        assert_eq!(proof.input, commit_input(&x, &salt), "{name}: the proof is about the committed input");
        let structure = vouch_zk::public_structure(&q);
        let evidence = PrivateEvidence { structure, proof }.to_bytes();
        let commitment = prover.commitment().to_bytes();
        verify_private_evidence(PRIVATE_SYSTEM, &commitment, &evidence, &commit_input(&x, &salt), &y)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_input_commitment_hides_and_binds() {
    let x: Vec<i16> = (0..16).map(|i| i * 100 - 700).collect();
    let (s1, s2) = (Salt::random(), Salt::random());
    assert_ne!(s1, s2);
    // Deterministic in (input, salt); another salt or another input gives another commitment.
    assert_eq!(commit_input(&x, &s1), commit_input(&x, &s1));
    assert_ne!(commit_input(&x, &s1), commit_input(&x, &s2));
    let mut x2 = x.clone();
    x2[15] += 1;
    assert_ne!(commit_input(&x, &s1), commit_input(&x2, &s1));
    // One element longer (a zero in the last block's padding lane) is another input.
    let mut x3 = x.clone();
    x3.push(0);
    assert_ne!(commit_input(&x, &s1), commit_input(&x3, &s1));
    // Hex round trips; a non-canonical salt is refused.
    assert_eq!(Salt::from_hex(&s1.to_hex()).unwrap(), s1);
    assert!(matches!(Salt::from_hex(&"ff".repeat(32)), Err(ZkError::Input(_))));
    assert!(matches!(Salt::from_hex("00"), Err(ZkError::Input(_))));
    let c = commit_input(&x, &s1);
    assert_eq!(InputCommitment::from_bytes(&c.to_bytes()).unwrap(), c);
    assert!(matches!(InputCommitment::from_bytes(&[0xff; 32]), Err(ZkError::Malformed(_))));
}

#[test]
fn tampering_is_rejected_with_its_reason() {
    let (q, x) = model("mlp_small");
    let prover = PrivateProver::new(q.clone()).unwrap();
    let salt = Salt::random();
    let (y, p) = prover.prove(&x, &salt).unwrap();
    let c = prover.commitment().clone();
    let s = vouch_zk::public_structure(&q);
    let input = commit_input(&x, &salt);
    verify_private(&s, &c, &input, &y, &p).unwrap();

    // Another output.
    let mut y2 = y.clone();
    y2[0] = y2[0].wrapping_add(1);
    assert!(matches!(verify_private(&s, &c, &input, &y2, &p), Err(ZkError::Proof { .. })));
    // An output of another length.
    assert_eq!(verify_private(&s, &c, &input, &y[1..], &p), Err(ZkError::PublicMismatch("output")));
    // Another input commitment claimed.
    let other = commit_input(&x, &Salt::random());
    assert_eq!(verify_private(&s, &c, &other, &y, &p), Err(ZkError::PublicMismatch("input commitment")));
    // The proof replayed as a proof about another input (its stated commitment swapped too).
    let mut replay = p.clone();
    replay.input = other;
    assert!(matches!(verify_private(&s, &c, &other, &y, &replay), Err(ZkError::Proof { .. })));
    // Another model's commitment: same structure, other weights.
    let (q_other, _) = model_with("mlp_small", 3.0);
    let c_other = PrivateProver::new(q_other.clone()).unwrap().commitment().clone();
    assert_ne!(c_other.preprocessed, c.preprocessed);
    let mut c_swapped = c_other.clone();
    c_swapped.structure = c.structure;
    assert!(matches!(verify_private(&s, &c_swapped, &input, &y, &p), Err(ZkError::Proof { .. })));
    // Another structure than the committed one.
    let (q_lenet, _) = model("lenet_small");
    assert!(matches!(
        verify_private(&vouch_zk::public_structure(&q_lenet), &c, &input, &y, &p),
        Err(ZkError::Commitment(_))
    ));
    // A header for other parameters.
    let mut h = p.clone();
    h.security.num_queries -= 1;
    assert!(matches!(verify_private(&s, &c, &input, &y, &h), Err(ZkError::Header(_))));
    let mut h = p.clone();
    h.version += 1;
    assert!(matches!(verify_private(&s, &c, &input, &y, &h), Err(ZkError::Header(_))));

    // One byte changed anywhere in the STARK (commitments, opened values, FRI, grinding witness): rejected,
    // never accepted, never a panic.
    let n = p.stark.len();
    for i in (0..n).step_by(n / 97 + 1).chain([n - 1]) {
        let mut t = p.clone();
        t.stark[i] ^= 0x01;
        let r = verify_private(&s, &c, &input, &y, &t);
        assert!(matches!(r, Err(ZkError::Proof { .. } | ZkError::Malformed(_))), "byte {i} of {n}: {r:?}");
    }
    // Truncated or garbage proofs.
    for cut in [0, 1, n / 2, n - 1] {
        let mut t = p.clone();
        t.stark.truncate(cut);
        assert!(matches!(verify_private(&s, &c, &input, &y, &t), Err(ZkError::Malformed(_) | ZkError::Proof { .. })));
    }
    let mut t = p.clone();
    t.stark = (0..n).map(|i| (i * 31 % 251) as u8).collect();
    assert!(matches!(verify_private(&s, &c, &input, &y, &t), Err(ZkError::Malformed(_) | ZkError::Proof { .. })));
    assert!(matches!(PrivateProof::from_bytes(&[1, 2, 3]), Err(ZkError::Malformed(_))));
    assert!(matches!(
        verify_private_evidence(PRIVATE_SYSTEM, &c.to_bytes(), b"garbage", &input, &y),
        Err(ZkError::Malformed(_))
    ));
    assert!(matches!(
        verify_private_evidence(PRIVATE_SYSTEM, b"garbage", &[], &input, &y),
        Err(ZkError::Commitment(_))
    ));
}

#[test]
fn proofs_are_randomized_and_the_setup_is_deterministic() {
    let (q, x) = model("mlp_small");
    let prover = PrivateProver::new(q.clone()).unwrap();
    let salt = Salt::random();
    let (_, a) = prover.prove(&x, &salt).unwrap();
    let (_, b) = prover.prove(&x, &salt).unwrap();
    // The same statement proven twice: the hiding PCS salts and masks every commitment differently.
    assert_eq!(a.input, b.input);
    assert_ne!(a.stark, b.stark);
    // The setup is deterministic, so anyone recomputes the model's commitment from the model.
    assert_eq!(PrivateProver::new(q.clone()).unwrap().commitment(), prover.commitment());
}

#[test]
fn a_hostile_structure_is_refused_before_any_work() {
    let (q, x) = model("lenet_small");
    let input = commit_input(&x, &Salt::random());
    let proof = PrivateProof {
        version: vouch_zk::private::PRIVATE_VERSION,
        security: vouch_zk::SECURITY,
        input,
        stark: vec![],
    };
    let commitment = vouch_zk::private::PrivateCommitment {
        version: vouch_zk::private::PRIVATE_VERSION,
        structure: [0; 32],
        preprocessed: vec![],
        weights: None,
    };
    let mut s = vouch_zk::public_structure(&q);
    // A kernel that would make the verifier materialize billions of taps.
    if let vouch_quant::QLayer::Conv { geo, .. } = &mut s.layers[0] {
        geo.kernel = [1 << 20, 1 << 20];
        geo.pads = [1 << 20; 4];
    }
    let ev = PrivateEvidence { structure: s, proof }.to_bytes();
    assert_eq!(
        verify_private_evidence(PRIVATE_SYSTEM, &commitment.to_bytes(), &ev, &input, &[0; 10]),
        Err(ZkError::Malformed("structure exceeds the verifier's limits".into()))
    );
}

mod common;

mod random_layers {
    use proptest::prelude::*;
    use vouch_quant::quantize;
    use vouch_zk::ZkError;
    use vouch_zk::private::{PrivateProver, Salt, commit_input, verify_private};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
        /// Random small Dense(+ReLU) layers, some wider than one 32-tap row (chunked, grouped input reads):
        /// honest private proofs verify; the same proof claiming an output one unit off is rejected.
        #[test]
        fn honest_private_proofs_verify_and_other_outputs_are_rejected((g, xs, bump) in super::common::dense_case(48)) {
            let (q, _) = quantize(&g, &xs).unwrap();
            let prover = PrivateProver::new(q.clone()).unwrap();
            let x = q.quantize_input(&xs[0]);
            let salt = Salt::random();
            let (y, p) = prover.prove(&x, &salt).unwrap();
            prop_assert_eq!(&y, &q.run(&x).unwrap());
            let s = vouch_zk::public_structure(&q);
            let input = commit_input(&x, &salt);
            prop_assert_eq!(verify_private(&s, prover.commitment(), &input, &y, &p), Ok(()));
            let (ix, delta) = bump;
            let mut y2 = y.clone();
            y2[ix] = if y2[ix] == i16::MAX { 32766 } else if y2[ix] <= -32767 { -32766 } else { y2[ix] + delta };
            let r = verify_private(&s, prover.commitment(), &input, &y2, &p);
            prop_assert!(matches!(r, Err(ZkError::Proof { .. })), "another output accepted: {:?}", r);
        }
    }
}

/// A small CNN with what the bench models lack: a ReLU on the input itself (its own instance), a padded
/// MaxPool (windows with invalid taps), a Conv with padding, then Flatten and Dense.
#[test]
fn a_cnn_with_maxpool_and_a_standalone_relu_proves_and_verifies() {
    use vouch_quant::{FloatGraph, FloatLayer, Pool};
    let mut rng = 7u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let conv = Pool { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] };
    let pool = Pool { kernel: [2, 2], stride: [2, 2], pads: [0, 0, 1, 1] };
    let layers = vec![
        FloatLayer::Relu,
        FloatLayer::Conv { w: (0..2 * 9).map(|_| next()).collect(), b: vec![0.1, -0.2], ic: 1, oc: 2, geo: conv },
        FloatLayer::MaxPool(pool),
        FloatLayer::Reshape(vec![1, 18]),
        FloatLayer::Dense { w: (0..18 * 3).map(|_| next()).collect(), b: vec![0.0, 0.1, -0.1], input: 18, output: 3 },
    ];
    let shapes = vec![vec![1, 1, 5, 5], vec![1, 1, 5, 5], vec![1, 2, 5, 5], vec![1, 2, 3, 3], vec![1, 18], vec![1, 3]];
    let g = FloatGraph { input: "x".into(), output: "y".into(), shapes, layers };
    let xs: Vec<Vec<f32>> = (0..8).map(|_| (0..25).map(|_| next()).collect()).collect();
    let (q, _) = vouch_quant::quantize(&g, &xs).unwrap();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let x = q.quantize_input(&xs[3]);
    let salt = Salt::random();
    let (y, p) = prover.prove(&x, &salt).unwrap();
    assert_eq!(y, q.run(&x).unwrap());
    let s = vouch_zk::public_structure(&q);
    let input = commit_input(&x, &salt);
    verify_private(&s, prover.commitment(), &input, &y, &p).unwrap();
    let mut y2 = y.clone();
    y2[2] = if y2[2] == i16::MAX { 32766 } else { y2[2] + 1 };
    assert!(matches!(verify_private(&s, prover.commitment(), &input, &y2, &p), Err(ZkError::Proof { .. })));
}

/// A classifier ending in Softmax (over rows of the last axis) proves privately with the same output as the
/// integer executor, and another output is rejected; a structure whose table has the wrong number of entries is
/// refused with the layer named, while a model the public proofs accept is never refused here.
#[test]
fn a_softmax_classifier_proves_privately_and_a_malformed_table_is_refused_by_name() {
    use vouch_quant::{FloatGraph, FloatLayer, QLayer};
    let g = FloatGraph {
        input: "x".into(),
        output: "y".into(),
        shapes: vec![vec![1, 4], vec![2, 3], vec![2, 3]],
        layers: vec![
            FloatLayer::Dense {
                w: (0..24).map(|i| i as f32 / 12.0 - 1.0).collect(),
                b: vec![0.1, 0.0, -0.1, 0.2, 0.0, 0.3],
                input: 4,
                output: 6,
            },
            FloatLayer::Softmax,
        ],
    };
    let xs: Vec<Vec<f32>> = vouch_quant::seeded_inputs(4, 4, 3);
    let (q, _) = quantize(&g, &xs).unwrap();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let x = q.quantize_input(&xs[1]);
    let salt = Salt::random();
    let (y, p) = prover.prove(&x, &salt).unwrap();
    assert_eq!(y, q.run(&x).unwrap());
    // Two softmax rows of three: each sums to about 32767.
    for row in y.chunks(3) {
        let sum: i32 = row.iter().map(|v| i32::from(*v)).sum();
        assert!((32764..=32770).contains(&sum), "{y:?}");
    }
    let s = vouch_zk::public_structure(&q);
    let input = commit_input(&x, &salt);
    verify_private(&s, prover.commitment(), &input, &y, &p).unwrap();
    let mut y2 = y.clone();
    y2[4] = if y2[4] == 0 { 1 } else { y2[4] - 1 };
    assert!(matches!(verify_private(&s, prover.commitment(), &input, &y2, &p), Err(ZkError::Proof { .. })));
    // A structure whose exp table lacks an entry.
    let mut bad = q.clone();
    if let QLayer::Softmax { exp } = &mut bad.layers[1] {
        exp.pop();
    }
    assert_eq!(PrivateProver::new(bad.clone()).err(), Some(ZkError::UnsupportedLayer { layer: 1, kind: "Softmax" }));
    assert!(vouch_zk::private::supports(&bad).is_err());
}

/// A Sigmoid quantizes to a bucketed table (4,096 entries); the 65,535-entry direct tables of the first versions
/// still execute (receipts that carry them keep verifying) and prove privately: the same function as a direct table
/// gives the same outputs and a proof that verifies, and another output is rejected.
#[test]
fn bucketed_and_direct_tables_both_prove() {
    use vouch_quant::{FloatGraph, FloatLayer, QLayer, TABLE_BUCKETS, TABLE_DIRECT, table_index};
    let g = FloatGraph {
        input: "x".into(),
        output: "y".into(),
        shapes: vec![vec![1, 6], vec![1, 5], vec![1, 5], vec![1, 3]],
        layers: vec![
            FloatLayer::Dense {
                w: (0..30).map(|i| (i as f32 * 0.37).sin()).collect(),
                b: vec![0.1; 5],
                input: 6,
                output: 5,
            },
            FloatLayer::Sigmoid,
            FloatLayer::Dense {
                w: (0..15).map(|i| (i as f32 * 0.71).cos()).collect(),
                b: vec![0.0; 3],
                input: 5,
                output: 3,
            },
        ],
    };
    let xs = vouch_quant::seeded_inputs(6, 8, 5);
    let (q, _) = quantize(&g, &xs).unwrap();
    let QLayer::Lookup { table } = &q.layers[1] else { panic!("a table layer") };
    assert_eq!(table.len(), TABLE_BUCKETS);
    let mut direct = q.clone();
    direct.layers[1] = QLayer::Lookup {
        table: (0..TABLE_DIRECT).map(|k| table[table_index(TABLE_BUCKETS, (k as i64 - 32767) as i16)]).collect(),
    };
    for (name, model) in [("bucketed", &q), ("direct", &direct)] {
        let x = model.quantize_input(&xs[2]);
        assert_eq!(model.run(&x).unwrap(), q.run(&x).unwrap(), "{name}: the same function");
        let prover = PrivateProver::new(model.clone()).unwrap();
        let salt = Salt::random();
        let (y, p) = prover.prove(&x, &salt).unwrap();
        let s = vouch_zk::public_structure(model);
        let input = commit_input(&x, &salt);
        verify_private(&s, prover.commitment(), &input, &y, &p).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut y2 = y.clone();
        y2[0] = if y2[0] == i16::MAX { 32766 } else { y2[0] + 1 };
        let r = verify_private(&s, prover.commitment(), &input, &y2, &p);
        assert!(matches!(r, Err(ZkError::Proof { .. })), "{name}: another output accepted: {r:?}");
    }
}

/// A real proof of an older release (`tests/fixtures/private_v{version}_{model}`), with its commitment, input
/// commitment and output: it verifies under its own system name only, and another output is rejected.
fn a_released_proof_still_verifies(fixture: &str, system: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (commitment, evidence) = (read("commitment.bin"), read("evidence.bin"));
    let public = String::from_utf8(read("public.txt")).unwrap();
    let lines: Vec<&str> = public.lines().collect();
    assert_eq!(lines[0], system);
    let input = InputCommitment::from_bytes(&hex::decode(lines[1]).unwrap()).unwrap();
    let y: Vec<i16> = lines[2].split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(verify_private_evidence(system, &commitment, &evidence, &input, &y), Ok(()));
    assert!(matches!(
        verify_private_evidence(PRIVATE_SYSTEM, &commitment, &evidence, &input, &y),
        Err(ZkError::Header(_))
    ));
    let mut y2 = y.clone();
    y2[0] += 1;
    assert!(matches!(verify_private_evidence(system, &commitment, &evidence, &input, &y2), Err(ZkError::Proof { .. })));
}

/// A version-2 proof made by the previous release (`tests/fixtures/private_v2_mlp_small`): receipts issued before
/// version 3 changed the parameters and the instances' layout still verify, under their own system name only, and
/// another output is rejected.
#[test]
fn a_version_2_proof_from_the_previous_release_still_verifies() {
    a_released_proof_still_verifies("private_v2_mlp_small", PRIVATE_SYSTEM_V2);
}

/// A version-3 proof made by the release before version 4 reshaped the linear layers
/// (`tests/fixtures/private_v3_mlp_mnist`: a chunked first layer and a Dense layer whose layouts changed).
#[test]
fn a_version_3_proof_from_the_previous_release_still_verifies() {
    a_released_proof_still_verifies("private_v3_mlp_mnist", PRIVATE_SYSTEM_V3);
}
