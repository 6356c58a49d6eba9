//! Completeness and soundness of both proof systems on random CNNs and MLPs (`common::net_case`): every honest
//! proof verifies, and the same proof claiming an output one unit off is rejected.

mod common;

use proptest::prelude::*;
use vouch_quant::{FloatGraph, FloatLayer, QGraph, quantize};
use vouch_zk::private::{PrivateProver, Salt, commit_input, verify_private};
use vouch_zk::{ZkError, commit, prove, verify};

/// The network's layers and shapes, for failure messages.
fn describe(g: &FloatGraph) -> String {
    let layer = |l: &FloatLayer| match l {
        FloatLayer::Dense { input, output, .. } => format!("Dense({input}->{output})"),
        FloatLayer::Conv { ic, oc, geo, .. } => format!("Conv({ic}->{oc}, {geo:?})"),
        FloatLayer::MaxPool(geo) => format!("MaxPool({geo:?})"),
        FloatLayer::AvgPool { geo, count_include_pad } => format!("AvgPool({geo:?}, include_pad {count_include_pad})"),
        other => format!("{other:?}"),
    };
    let mut out = format!("{:?}", g.shapes[0]);
    for (l, s) in g.layers.iter().zip(&g.shapes[1..]) {
        out += &format!(" -> {} {s:?}", layer(l));
    }
    out
}

/// `y` with element `ix` moved by `delta`, away from the clamp bounds so it really changes.
fn bumped(y: &[i16], (ix, delta): (usize, i16)) -> Vec<i16> {
    let mut y = y.to_vec();
    y[ix] = if y[ix] == i16::MAX {
        32766
    } else if y[ix] <= -32767 {
        -32766
    } else {
        y[ix] + delta
    };
    y
}

fn quantized(case: &common::NetCase) -> (QGraph, Vec<i16>) {
    let (q, _) = quantize(&case.graph, &case.inputs).expect("random nets quantize");
    let x = q.quantize_input(&case.inputs[0]);
    (q, x)
}

/// A private-input proof of `case` (with `hidden` weights or not): the honest proof verifies, another output is
/// rejected, and (hidden weights) so is the proof against the same weights committed under another salt.
fn private_case(case: &common::NetCase, hidden: bool) -> Result<(), TestCaseError> {
    let (q, x) = quantized(case);
    let shape = describe(&case.graph);
    let fail = |e: ZkError| TestCaseError::fail(format!("{shape}: {e}"));
    let setup = || {
        if hidden {
            PrivateProver::with_hidden_weights(q.clone(), &Salt::random())
        } else {
            PrivateProver::new(q.clone())
        }
    };
    let prover = setup().map_err(fail)?;
    let salt = Salt::random();
    let (y, p) = prover.prove(&x, &salt).map_err(fail)?;
    prop_assert_eq!(&y, &q.run(&x).unwrap());
    let s = vouch_zk::public_structure(&q);
    let input = commit_input(&x, &salt);
    let r = verify_private(&s, prover.commitment(), &input, &y, &p);
    prop_assert!(r.is_ok(), "{}: honest proof rejected: {:?}", shape, r);
    let r = verify_private(&s, prover.commitment(), &input, &bumped(&y, case.bump), &p);
    prop_assert!(matches!(r, Err(ZkError::Proof { .. })), "{}: another output accepted: {:?}", shape, r);
    if hidden {
        let r = verify_private(&s, setup().map_err(fail)?.commitment(), &input, &y, &p);
        prop_assert!(
            matches!(r, Err(ZkError::Proof { .. })),
            "{}: another weights commitment accepted: {:?}",
            shape,
            r
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(10), ..ProptestConfig::default() })]

    /// Private-input proofs: the honest proof verifies; claiming an output one unit off is rejected.
    #[test]
    fn private_proofs_of_random_nets_verify_and_other_outputs_are_rejected(case in common::net_case()) {
        private_case(&case, false)?;
    }

    /// Private-input proofs with hidden weights: the honest proof verifies against the weights commitment alone;
    /// claiming an output one unit off is rejected, and so is the proof against the same weights under another salt.
    #[test]
    fn hidden_weights_proofs_of_random_nets_verify_and_other_outputs_are_rejected(case in common::net_case()) {
        private_case(&case, true)?;
    }

    /// Public-activation proofs: the honest proof verifies; claiming an output one unit off is rejected, and so
    /// is the proof with that output written into its activations (the last layer's STARK refuses it).
    #[test]
    fn public_proofs_of_random_nets_verify_and_other_outputs_are_rejected(case in common::net_case()) {
        let (q, x) = quantized(&case);
        let shape = describe(&case.graph);
        let c = commit(&q).map_err(|e| TestCaseError::fail(format!("{shape}: {e}")))?;
        let p = prove(&q, &x).map_err(|e| TestCaseError::fail(format!("{shape}: {e}")))?;
        let y = q.run(&x).unwrap();
        let r = verify(&q, &c, &x, &y, &p);
        prop_assert!(r.is_ok(), "{}: honest proof rejected: {:?}", shape, r);
        let y2 = bumped(&y, case.bump);
        prop_assert_eq!(verify(&q, &c, &x, &y2, &p), Err(ZkError::PublicMismatch("output")));
        let mut forged = p.clone();
        let last = forged.activations.len() - 1;
        forged.activations[last] = y2.clone();
        let r = verify(&q, &c, &x, &y2, &forged);
        // Every random net ends with a Dense layer.
        prop_assert!(
            matches!(r, Err(ZkError::LayerProof { layer, .. }) if layer == q.layers.len() - 1),
            "{}: a forged output accepted: {:?}", shape, r
        );
    }
}

/// The generator reaches every layer kind the private proofs cover (so the properties above exercise each of them).
#[test]
fn the_random_nets_cover_every_private_op() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..400 {
        for cnn in [false, true] {
            for l in common::net_case_of(seed, cnn).graph.layers {
                let name = format!("{l:?}");
                seen.insert(name.split([' ', '(', '{']).next().unwrap_or_default().to_owned());
            }
        }
    }
    for op in ["Dense", "Conv", "Relu", "MaxPool", "AvgPool", "Reshape", "Affine", "Sigmoid", "Tanh", "Softmax"] {
        assert!(seen.contains(op), "no random net has {op}: {seen:?}");
    }
}

/// The generator reaches both ways version 4 reshapes a linear layer (so the properties above exercise them): a
/// layer of many taps in narrow multiply-accumulate rows, and a layer whose outputs pass a power of two proven by two
/// instances.
#[test]
fn the_random_nets_reach_the_split_linear_layouts() {
    let (mut narrow, mut parts) = (false, false);
    for seed in 0..200 {
        for cnn in [false, true] {
            let (q, _) = quantized(&common::net_case_of(seed, cnn));
            for (what, ..) in PrivateProver::new(q).expect("random nets are provable").instances() {
                let row_taps = what.split("in rows of ").nth(1).and_then(|t| t.parse::<usize>().ok());
                narrow |= row_taps.is_some_and(|t| t <= 32);
                parts |= what.contains("(outputs ");
            }
        }
        if narrow && parts {
            return;
        }
    }
    panic!("narrow rows reached: {narrow}, split outputs reached: {parts}");
}
