//! Private-input proofs of models whose weights stay hidden: a proof verifies from the public structure and the
//! commitments alone (no weights), the weights commitment binds the weights (another model of the same structure
//! has another commitment, and a proof for one is rejected against the other's), and hides them (the preprocessed
//! columns no longer depend on them; another salt gives another commitment).

mod common;

use common::{bench, bench_model as model};
use vouch_quant::{QGraph, QLayer, parse};
use vouch_zk::ZkError;
use vouch_zk::private::{
    PRIVATE_SYSTEM, PrivateCommitment, PrivateEvidence, PrivateProver, Salt, commit_input, verify_private,
    verify_private_evidence,
};

/// The same model with one weight of its first linear layer changed by one quantization step.
fn one_weight_changed(q: &QGraph) -> QGraph {
    let mut other = q.clone();
    let w = other
        .layers
        .iter_mut()
        .find_map(|l| match l {
            QLayer::Dense { w, .. } | QLayer::Conv { w, .. } => Some(w),
            _ => None,
        })
        .expect("a linear layer");
    w[0] = if w[0] < 0 { w[0] + 1 } else { w[0] - 1 };
    other
}

#[test]
fn a_hidden_weights_proof_verifies_without_the_weights() {
    for name in ["mlp_small", "lenet_small"] {
        let (q, x) = model(name);
        let prover = PrivateProver::with_hidden_weights(q.clone(), &Salt::random()).unwrap();
        assert!(prover.commitment().hides_weights());
        let salt = Salt::random();
        let (y, proof) = prover.prove(&x, &salt).unwrap();
        assert_eq!(y, q.run(&x).unwrap(), "{name}: the proven output is the executor's");
        // What a verifier holds: the public structure (no weights, biases or multipliers), the commitment bytes,
        // the input commitment and the output.
        let structure = vouch_zk::public_structure(&q);
        for l in &structure.layers {
            if let QLayer::Dense { w, b, .. } | QLayer::Conv { w, b, .. } = l {
                assert!(w.is_empty() && b.is_empty(), "{name}: the structure carries no weights");
            }
        }
        let evidence = PrivateEvidence { structure, proof }.to_bytes();
        let commitment = prover.commitment().to_bytes();
        verify_private_evidence(PRIVATE_SYSTEM, &commitment, &evidence, &commit_input(&x, &salt), &y)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Another output is rejected.
        let mut y2 = y.clone();
        y2[0] = y2[0].wrapping_add(1);
        assert!(matches!(
            verify_private_evidence(PRIVATE_SYSTEM, &commitment, &evidence, &commit_input(&x, &salt), &y2),
            Err(ZkError::Proof { .. })
        ));
    }
}

#[test]
fn the_weights_commitment_binds_and_hides_the_weights() {
    let (q, x) = model("mlp_small");
    let other = one_weight_changed(&q);
    let s = vouch_zk::public_structure(&q);
    assert_eq!(vouch_zk::public_structure(&other), s, "the same structure");
    let salt_w = Salt::random();
    let p1 = PrivateProver::with_hidden_weights(q.clone(), &salt_w).unwrap();
    let p2 = PrivateProver::with_hidden_weights(other.clone(), &salt_w).unwrap();
    let (c1, c2) = (p1.commitment().clone(), p2.commitment().clone());

    // Different weights, same structure and salt: different commitments. The preprocessed columns are the same
    // (they hold no weights), so the weights commitment is all that tells the models apart.
    assert_ne!(c1.weights, c2.weights);
    assert_eq!(c1.preprocessed, c2.preprocessed);
    assert_eq!(c1.structure, c2.structure);
    // Deterministic in (weights, salt); another salt hides the same weights behind another commitment.
    assert_eq!(PrivateProver::with_hidden_weights(q.clone(), &salt_w).unwrap().commitment(), &c1);
    assert_ne!(
        PrivateProver::with_hidden_weights(q.clone(), &Salt::random()).unwrap().commitment().weights,
        c1.weights
    );

    // A proof for one model is rejected against the other's commitment. (The commitment is a public value the
    // transcript absorbs, so the verifier's challenges differ from the prover's and the rejection comes wherever the
    // transcript first diverges: the grinding witness, an opening, or the out-of-domain check.)
    let salt = Salt::random();
    let input = commit_input(&x, &salt);
    let (y, proof) = p1.prove(&x, &salt).unwrap();
    assert_eq!(verify_private(&s, &c1, &input, &y, &proof), Ok(()));
    let r = verify_private(&s, &c2, &input, &y, &proof);
    assert!(matches!(&r, Err(ZkError::Proof { .. })), "{r:?}");
    // The other model proves its own output, which verifies only against its own commitment.
    let (y2, proof2) = p2.prove(&x, &salt).unwrap();
    assert_eq!(verify_private(&s, &c2, &input, &y2, &proof2), Ok(()));
    assert!(matches!(verify_private(&s, &c1, &input, &y2, &proof2), Err(ZkError::Proof { .. })));

    // One element of the weights commitment changed: rejected.
    let mut c_bad = c1.clone();
    if let Some(w) = c_bad.weights.as_mut() {
        w.0[3] ^= 1;
    }
    assert!(matches!(verify_private(&s, &c_bad, &input, &y, &proof), Err(ZkError::Proof { .. })));
    // The proof checked as a public-weights proof (the weights commitment dropped): another plan, rejected.
    let c_public = PrivateCommitment { weights: None, ..c1.clone() };
    assert!(verify_private(&s, &c_public, &input, &y, &proof).is_err());
    // A public-weights proof checked against a hidden-weights commitment: rejected.
    let public = PrivateProver::new(q.clone()).unwrap();
    let (_, public_proof) = public.prove(&x, &salt).unwrap();
    assert!(verify_private(&s, &c1, &input, &y, &public_proof).is_err());
}

#[test]
fn commitment_bytes_round_trip_and_garbage_is_refused() {
    let (q, _) = model("mlp_small");
    let hidden = PrivateProver::with_hidden_weights(q.clone(), &Salt::random()).unwrap().commitment().clone();
    let public = PrivateProver::new(q).unwrap().commitment().clone();
    for c in [&hidden, &public] {
        assert_eq!(&PrivateCommitment::from_bytes(&c.to_bytes()).unwrap(), c);
    }
    // A public-weights commitment is the hidden one's bytes without the weights.
    assert!(hidden.to_bytes().len() > public.to_bytes().len());
    let mut b = hidden.to_bytes();
    b.push(0);
    assert!(matches!(PrivateCommitment::from_bytes(&b), Err(ZkError::Commitment(_))), "trailing bytes");
    let b = hidden.to_bytes();
    assert!(matches!(PrivateCommitment::from_bytes(&b[..b.len() - 1]), Err(ZkError::Commitment(_))), "truncated");
}

#[test]
fn int16_weights_are_committed_unpacked_and_verify_too() {
    // Int8 weights are packed 7 to an element (range-checked bytes); int16 weights are absorbed as they are.
    let path = bench("lenet_small");
    let g = parse(&std::fs::read(path).unwrap()).unwrap();
    let n: usize = g.shapes[0].iter().product();
    let (q, _) = vouch_quant::quantize_with(&g, &vouch_quant::seeded_inputs(n, 16, 1), 16).unwrap();
    assert_eq!(q.weight_bits, 16);
    let x = q.quantize_input(&vouch_quant::seeded_inputs(n, 1, 9)[0]);
    let prover = PrivateProver::with_hidden_weights(q.clone(), &Salt::random()).unwrap();
    let kinds: Vec<String> = prover.instances().into_iter().map(|(what, ..)| what).collect();
    assert!(!kinds.iter().any(|k| k.contains("packed")), "{kinds:?}");
    let salt = Salt::random();
    let (y, proof) = prover.prove(&x, &salt).unwrap();
    assert_eq!(y, q.run(&x).unwrap());
    let s = vouch_zk::public_structure(&q);
    let input = commit_input(&x, &salt);
    assert_eq!(verify_private(&s, prover.commitment(), &input, &y, &proof), Ok(()));
    let mut y2 = y.clone();
    y2[0] = y2[0].wrapping_add(1);
    assert!(matches!(verify_private(&s, prover.commitment(), &input, &y2, &proof), Err(ZkError::Proof { .. })));
}
