//! Each instance's own negative test: start from the honest traces of a model that has every kind of instance,
//! change the proven value of one real row of one instance, prove, and the verifier rejects the proof at that
//! instance (or, for the table and lookup instances, whose perturbed column only enters bus interactions, as an
//! unbalanced LogUp sum). (The test profile builds p3-batch-stark without debug assertions, so its prover does not refuse the
//! bad witness itself: the verifier is what is tested.)

use p3_field::PrimeCharacteristicRing;
use p3_matrix::Matrix;
use vouch_quant::{FloatGraph, FloatLayer, Pool};

use super::air::Inst;
use super::*;

/// Input 2x6x6 -> ReLU on the input (a relu instance) -> padded Conv 2->16 (linear, 18 taps) -> MaxPool 2x2
/// (maxpool) -> Flatten (144) -> Dense 144->4 (mac + requant) -> Add and Mul by constants (affine: a linear
/// instance of one tap) -> Sigmoid (table + lookup) -> Softmax (exp table + softmax).
fn every_instance_model() -> (QGraph, Vec<i16>) {
    let mut s = 11u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let conv = Pool { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1] };
    let pool = Pool { kernel: [2, 2], stride: [2, 2], pads: [0, 0, 0, 0] };
    let layers = vec![
        FloatLayer::Relu,
        FloatLayer::Conv {
            w: (0..16 * 18).map(|_| next() * 0.3).collect(),
            b: vec![0.05; 16],
            ic: 2,
            oc: 16,
            geo: conv,
        },
        FloatLayer::MaxPool(pool),
        FloatLayer::Reshape(vec![1, 144]),
        FloatLayer::Dense { w: (0..144 * 4).map(|_| next() * 0.1).collect(), b: vec![0.0; 4], input: 144, output: 4 },
        FloatLayer::Affine { mul: vec![1.5, -0.5, 2.0, 1.0], add: vec![0.25, -0.1, 0.0, 0.5] },
        FloatLayer::Sigmoid,
        FloatLayer::Softmax,
    ];
    let shapes = vec![
        vec![1, 2, 6, 6],
        vec![1, 2, 6, 6],
        vec![1, 16, 6, 6],
        vec![1, 16, 3, 3],
        vec![1, 144],
        vec![1, 4],
        vec![1, 4],
        vec![1, 4],
        vec![1, 4],
    ];
    let g = FloatGraph { input: "x".into(), output: "y".into(), shapes, layers };
    let xs: Vec<Vec<f32>> = (0..6).map(|_| (0..72).map(|_| next()).collect()).collect();
    let (q, _) = vouch_quant::quantize(&g, &xs).expect("quantizes");
    let x = q.quantize_input(&xs[0]);
    (q, x)
}

fn kind(inst: &Inst) -> &'static str {
    match inst {
        Inst::Input(_) => "input",
        Inst::Sponge(_) => "sponge",
        Inst::Linear(_) => "linear",
        Inst::Relu(_) => "relu",
        Inst::Mac(_) => "mac",
        Inst::MaxPool(_) => "maxpool",
        Inst::Requant(_) => "requant",
        Inst::Table(_) => "table",
        Inst::Lookup(_) => "lookup",
        Inst::Softmax(_) => "softmax",
        Inst::Output(_) => "output",
    }
}

#[test]
fn a_perturbed_witness_in_each_instance_is_rejected_at_that_instance() {
    let (q, x) = every_instance_model();
    let prover = PrivateProver::new(q.clone()).unwrap();
    let kinds: Vec<&str> = prover.airs.iter().map(|a| kind(&a.inst)).collect();
    for k in ["input", "sponge", "linear", "relu", "mac", "maxpool", "requant", "table", "lookup", "softmax", "output"]
    {
        assert!(kinds.contains(&k), "the model has no {k} instance: {kinds:?}");
    }
    let salt = Salt::random();
    let (y, honest) = prover.traces(&x, &salt).unwrap();
    let s = public_structure(&q);
    let input = commit_input(&x, &salt);
    // The honest traces prove and verify.
    let (_, p) = prover.prove_traces(&y, &honest, &salt, &x).unwrap();
    assert_eq!(verify_private(&s, prover.commitment(), &input, &y, &p), Ok(()));
    for (i, air) in prover.airs.iter().enumerate() {
        let mut traces = honest.clone();
        // Row 1 of the sponge is its first absorbing permutation; row 0 of every other instance is a real row.
        let row = if matches!(air.inst, Inst::Sponge(_)) { 1 } else { 0 };
        let col = air.inst.proven_column();
        let width = traces[i].width();
        traces[i].values[row * width + col] += Val::ONE;
        let (_, p) = prover.prove_traces(&y, &traces, &salt, &x).unwrap();
        let r = verify_private(&s, prover.commitment(), &input, &y, &p);
        let expected = format!("instance {i}: {}", air.inst.describe());
        if matches!(air.inst, Inst::Table(_) | Inst::Lookup(_)) {
            // The table's multiplicity and the lookup's `y` enter only bus interactions (no constraint of their
            // own): the batch's LogUp sum is what no longer balances.
            let lookup = ZkError::Proof { reason: "Lookup(TerminalSumNonZero)".into(), instance: None };
            assert_eq!(r, Err(lookup), "{}: a perturbed witness", kinds[i]);
            continue;
        }
        assert!(
            matches!(&r, Err(ZkError::Proof { instance: Some(named), .. }) if *named == expected),
            "{}: a perturbed witness gave {r:?}",
            kinds[i]
        );
    }
}
