//! Golden fixtures of the chain's hashed and signed encodings: a genesis (and its chain id), a signed transaction
//! (and its id), a block (and its digest), a header and a transaction record. Set VOUCH_UPDATE_GOLDEN=1 to rewrite
//! them (a deliberate format change, said in the commit message).

use std::path::Path;

use bytes::Bytes;
use vouch_chain::{Block, Header, TxRecord};
use vouch_codec::tx::{SignedTx, Tx, TxKind};
use vouch_codec::{AgreementRule, Canonical, Digest, Mode, ModelId, domain};
use vouch_crypto::NodeKey;
use vouch_ledger::{Event, Genesis, Params};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("VOUCH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with VOUCH_UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "{name} changed: this is a format change");
}

/// Every canonical value decodes back to itself and re-encodes to the same bytes.
fn round_trip<T: Canonical + PartialEq + std::fmt::Debug>(v: &T) -> String {
    let bytes = v.to_canonical();
    let back = T::from_canonical(&bytes).unwrap();
    assert_eq!(&back, v);
    assert_eq!(back.to_canonical(), bytes);
    hex::encode(bytes)
}

#[test]
fn golden_genesis_transaction_block_header_and_record() {
    let key = NodeKey::from_secret([5; 32]);
    let genesis = Genesis {
        accounts: vec![(key.public_key(), 1_000_000), ([9; 32], 42)],
        params: Params::default(),
        validators: vec![[1; 32], [2; 32], [3; 32], [4; 32]],
    };
    let chain = genesis.chain_id();
    let tx = Tx {
        chain,
        from: key.public_key(),
        nonce: 7,
        fee: 3,
        kind: TxKind::SubmitJob {
            model: ModelId::of_bytes(b"golden model"),
            input_digest: Digest([6; 32]),
            mode: Mode::Quorum,
            quorum: 3,
            fee_per_executor: 100,
        },
    };
    let signed = SignedTx { signature: key.sign(domain::TX_SIGNATURE, &tx.id().0), tx };
    let register = Tx {
        chain,
        from: key.public_key(),
        nonce: 8,
        fee: 1,
        kind: TxKind::RegisterModel {
            model: ModelId::of_bytes(b"golden model"),
            name: "golden@1.0".into(),
            commitment: vec![1, 2, 3],
            rule: AgreementRule::Tolerance { abs: 1e-4, rel: 0.0 },
        },
    };
    let register = SignedTx { signature: key.sign(domain::TX_SIGNATURE, &register.id().0), tx: register };
    let set_engine = Tx {
        chain,
        from: key.public_key(),
        nonce: 9,
        fee: 1,
        kind: TxKind::SetEngine {
            node: key.public_key(),
            engine: "tract-onnx 0.23.9; llama.cpp cpu x86_64+avx2".into(),
        },
    };
    let set_engine = SignedTx { signature: key.sign(domain::TX_SIGNATURE, &set_engine.id().0), tx: set_engine };
    let attest = Tx {
        chain,
        from: key.public_key(),
        nonce: 10,
        fee: 1,
        kind: TxKind::Attest {
            node: key.public_key(),
            evidence: vouch_codec::TeeEvidence {
                key: key.public_key(),
                chain,
                freshness: [6; 32],
                attested_at_ms: 1_764_000_000_000,
                reports: vec![vouch_codec::PlatformReport {
                    platform: "tdx".into(),
                    report: vec![1, 2, 3],
                    collateral: b"{}".to_vec(),
                }],
            },
        },
    };
    let attest = SignedTx { signature: key.sign(domain::TX_SIGNATURE, &attest.id().0), tx: attest };
    // A genesis with a TEE section (only then encoded, so chains without one keep their ids).
    let mut tee_params = Params::default();
    tee_params.tee.measurements = vec!["ab".repeat(48)];
    tee_params.tee.simulated_roots = vec!["cd".repeat(32)];
    let tee_genesis = Genesis { params: tee_params, ..genesis.clone() };
    let block =
        Block::new([8; 32], 12, 1_764_000_000_123, vec![signed.to_bytes().into(), Bytes::from(register.to_bytes())]);
    let record = TxRecord {
        height: 12,
        index: 0,
        result: Ok(vec![Event::JobAssigned { job: Digest([4; 32]), executors: vec![[1; 32], [2; 32], [3; 32]] }]),
    };
    let failed = TxRecord { height: 12, index: 1, result: Err("insufficient balance: needs 5, has 4".into()) };
    let lines = [
        format!("genesis {}", round_trip(&genesis)),
        format!("chain_id {}", hex::encode(chain)),
        format!("signed_tx {}", round_trip(&signed)),
        format!("tx_id {}", signed.tx.id().to_hex()),
        format!("signed_tx_register_model {}", round_trip(&register)),
        format!("block {}", round_trip(&block)),
        format!("block_digest {}", hex::encode(block.header().digest())),
        format!("header {}", round_trip::<Header>(block.header())),
        format!("tx_record {}", round_trip(&record)),
        format!("tx_record_failed {}", round_trip(&failed)),
        format!("signed_tx_set_engine {}", round_trip(&set_engine)),
        format!("signed_tx_attest {}", round_trip(&attest)),
        format!("genesis_tee {}", round_trip(&tee_genesis)),
    ];
    golden("chain_v1.txt", &(lines.join("\n") + "\n"));
}
