//! Private-input proofs: honest proofs verify for the bench models and hide the input behind its commitment;
//! every tampering is rejected with its reason.

use std::path::PathBuf;

use vouch_quant::{QGraph, parse, quantize};
use vouch_zk::ZkError;
use vouch_zk::private::{
    InputCommitment, PrivateEvidence, PrivateProof, PrivateProver, Salt, commit_input, verify_private,
    verify_private_evidence,
};

fn bench(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/models").join(format!("{name}.onnx"))
}

fn model(name: &str) -> (QGraph, Vec<i16>) {
    let g = parse(&std::fs::read(bench(name)).unwrap()).unwrap();
    let n: usize = g.shapes[0].iter().product();
    let (q, _) = quantize(&g, &vouch_quant::seeded_inputs(n, 16, 1)).unwrap();
    let x = q.quantize_input(&vouch_quant::seeded_inputs(n, 1, 9)[0]);
    (q, x)
}

#[test]
fn honest_private_proofs_verify_for_the_bench_models() {
    for name in ["mlp_small", "lenet_small"] {
        let (q, x) = model(name);
        let prover = PrivateProver::new(q.clone()).unwrap();
        let salt = Salt::random();
        let (y, proof) = prover.prove(&x, &salt).unwrap();
        assert_eq!(y, q.run(&x).unwrap(), "{name}: the proven output is the executor's");
        assert_eq!(proof.input, commit_input(&x, &salt));
        let structure = vouch_zk::public_structure(&q);
        let proof = PrivateProof::from_bytes(&proof.to_bytes()).unwrap();
        verify_private(&structure, prover.commitment(), &proof.input, &y, &proof)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
