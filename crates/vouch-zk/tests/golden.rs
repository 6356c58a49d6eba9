//! Golden fixtures of the zk formats: the public and private commitments of the bench models (what a node records
//! at push and receipts open against) and the encoded public structure receipts carry. Proofs themselves are not
//! byte-stable (the grinding witness search is parallel, the private ones are randomized); their encodings are
//! covered by the round-trip and tampering tests. Set VOUCH_UPDATE_GOLDEN=1 to rewrite the fixture (a deliberate
//! format change, said in the commit message).

mod common;

use std::path::Path;

use common::bench_model as model;

fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn golden_zk_commitments_and_structure() {
    let mut lines = vec![];
    for name in ["mlp_small", "lenet_small"] {
        let (q, x) = model(name);
        let prover = vouch_zk::Prover::new(q.clone()).unwrap();
        let commitment = prover.commitment().to_bytes();
        let private = prover.private().unwrap().commitment().to_bytes();
        // The structure as evidence encodes it (the proof's bytes follow it).
        let proof = prover.prove(&x).unwrap();
        let evidence =
            vouch_zk::Evidence { structure: vouch_zk::public_structure(&q), proof: proof.clone() }.to_bytes();
        let structure_len = evidence.len() - proof.to_bytes().len();
        lines.push(format!("{name} public_commitment {}", digest(&commitment)));
        lines.push(format!("{name} private_commitment {}", digest(&private)));
        lines.push(format!("{name} evidence_structure {}", digest(&evidence[..structure_len])));
    }
    let actual = lines.join("\n") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/zk.txt");
    if std::env::var_os("VOUCH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("tests/golden/zk.txt; run with VOUCH_UPDATE_GOLDEN=1");
    assert_eq!(actual, expected, "a zk commitment or proof encoding changed: this is a format change");
}
