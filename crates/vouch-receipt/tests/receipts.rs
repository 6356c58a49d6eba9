//! Receipt encoding fixtures and verifier soundness: start from a valid receipt, change one thing, assert the
//! exact error. Golden files pin the canonical bytes; set VOUCH_UPDATE_GOLDEN=1 to rewrite them (a deliberate
//! format change, to be said in the commit message).

use std::path::Path;

use proptest::prelude::*;
use vouch_codec::receipt::FORMAT_V1;
use vouch_codec::{Evidence, Extension, Mode, ModelId, Receipt, ReceiptJson, Tensor, TensorData, TensorMap, domain};
use vouch_crypto::NodeKey;
use vouch_receipt::{Issuer, ReceiptError, VerifyOptions, verify, verify_json};

fn key() -> NodeKey {
    NodeKey::from_secret([7; 32])
}

fn tensors() -> (TensorMap, TensorMap) {
    let mut inputs = TensorMap::new();
    inputs.insert("x".into(), Tensor::new(vec![1, 3], TensorData::F32(vec![0.5, -1.25, 3.0])).unwrap());
    inputs.insert("ids".into(), Tensor::new(vec![2], TensorData::I64(vec![-7, 1 << 40])).unwrap());
    let mut outputs = TensorMap::new();
    outputs.insert("y".into(), Tensor::new(vec![2], TensorData::F32(vec![0.1, f32::NAN])).unwrap());
    outputs.insert("label".into(), Tensor::new(vec![], TensorData::String(vec!["cat".into()])).unwrap());
    outputs.insert("mask".into(), Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap());
    (inputs, outputs)
}

fn valid() -> Receipt {
    let (inputs, outputs) = tensors();
    Issuer::new(&key(), "tract-onnx 0.23.9").with_clock(|| 1_764_000_000_000).signed(
        ModelId::of_bytes(b"model"),
        [9; 32],
        inputs,
        true,
        outputs,
    )
}

fn resign(r: &mut Receipt) {
    let sig = key().sign(domain::RECEIPT_SIGNATURE, &r.id().0);
    r.evidence = vec![Evidence::Ed25519 { public_key: key().public_key(), signature: sig }];
}

fn check(r: &Receipt) -> Result<vouch_receipt::Verified, ReceiptError> {
    verify(r, &VerifyOptions::default())
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("VOUCH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with VOUCH_UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "{name} changed: this is a receipt format change");
}

#[test]
fn golden_receipt_v1() {
    let r = valid();
    golden("receipt_v1.hex", &(hex::encode(r.to_bytes()) + "\n"));
    golden("receipt_v1.body.hex", &(hex::encode(r.body.to_bytes()) + "\n"));
    golden("receipt_v1.id", &(r.id().to_hex() + "\n"));
    golden("receipt_v1.json", &(serde_json::to_string_pretty(&r.to_json()).unwrap() + "\n"));
    // And the fixture still verifies and decodes back to the same receipt.
    assert!(check(&r).is_ok());
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/receipt_v1.json")).unwrap();
    assert_eq!(verify_json(&text, None).unwrap().id, r.id());
}

#[test]
fn canonical_bytes_and_json_round_trip() {
    let r = valid();
    assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap().to_bytes(), r.to_bytes());
    let json: ReceiptJson = serde_json::from_str(&serde_json::to_string(&r.to_json()).unwrap()).unwrap();
    assert_eq!(json.to_receipt().unwrap().to_bytes(), r.to_bytes());
}

#[test]
fn each_change_is_rejected_with_its_reason() {
    let base = valid();
    let v = check(&base).unwrap();
    assert_eq!((v.mode, v.signers.clone()), (Mode::Signed, vec![key().public_key()]));

    let mut r = base.clone();
    r.outputs.insert("y".into(), Tensor::new(vec![2], TensorData::F32(vec![0.2, f32::NAN])).unwrap());
    assert!(matches!(check(&r), Err(ReceiptError::OutputDigestMismatch { .. })));

    let mut r = base.clone();
    r.inputs.as_mut().unwrap().insert("ids".into(), Tensor::new(vec![2], TensorData::I64(vec![-7, 0])).unwrap());
    assert!(matches!(check(&r), Err(ReceiptError::InputDigestMismatch { .. })));

    let stated = VerifyOptions { stated_id: Some("00".repeat(32)), ..Default::default() };
    assert!(matches!(verify(&base, &stated), Err(ReceiptError::IdMismatch { .. })));

    let mut r = base.clone();
    r.body.model = ModelId::of_bytes(b"another model");
    assert!(matches!(check(&r), Err(ReceiptError::BadSignature { .. })));

    let mut r = base.clone();
    r.body.issued_at_ms += 1;
    assert!(matches!(check(&r), Err(ReceiptError::BadSignature { .. })));

    let mut r = base.clone();
    if let Evidence::Ed25519 { signature, .. } = &mut r.evidence[0] {
        signature[10] ^= 1;
    }
    assert!(matches!(check(&r), Err(ReceiptError::BadSignature { .. })));

    let mut r = base.clone();
    let other = NodeKey::from_secret([8; 32]);
    r.evidence = vec![Evidence::Ed25519 {
        public_key: other.public_key(),
        signature: other.sign(domain::RECEIPT_SIGNATURE, &r.id().0),
    }];
    assert!(matches!(check(&r), Err(ReceiptError::SignerNotExecutor { .. })));

    let mut r = base.clone();
    r.body.executors.push(NodeKey::from_secret([8; 32]).public_key());
    resign(&mut r);
    assert!(matches!(check(&r), Err(ReceiptError::ExecutorCount { found: 2, .. })));

    let mut r = base.clone();
    r.evidence.clear();
    assert_eq!(check(&r), Err(ReceiptError::NoEvidence));

    let mut r = base.clone();
    r.body.extensions.push(Extension { tag: 0x8001, value: vec![1] });
    resign(&mut r);
    assert_eq!(check(&r), Err(ReceiptError::UnknownCriticalExtension { tag: 0x8001 }));
    // A non-critical unknown extension is fine once signed.
    let mut r = base.clone();
    r.body.extensions.push(Extension { tag: 0x0001, value: vec![1] });
    resign(&mut r);
    assert!(check(&r).is_ok());

    let mut r = base.clone();
    r.evidence.push(Evidence::Unknown { tag: 99, payload: vec![1, 2] });
    assert!(matches!(check(&r), Err(ReceiptError::UnsupportedEvidence { .. })));

    let mut r = base.clone();
    r.body.mode = Mode::Zk;
    resign(&mut r);
    assert_eq!(check(&r), Err(ReceiptError::ZkProofMissing));

    let opts = VerifyOptions { model_bytes_id: Some(ModelId::of_bytes(b"other")), ..Default::default() };
    assert!(matches!(verify(&base, &opts), Err(ReceiptError::ModelMismatch { .. })));
    let opts = VerifyOptions { model_bytes_id: Some(ModelId::of_bytes(b"model")), ..Default::default() };
    assert!(verify(&base, &opts).unwrap().model_checked);

    let mut json = serde_json::to_value(base.to_json()).unwrap();
    json["format"] = serde_json::json!(7);
    assert_eq!(
        verify_json(&json.to_string(), None),
        Err(ReceiptError::UnknownFormatVersion { found: 7, supported: FORMAT_V1 })
    );
    let mut json = serde_json::to_value(base.to_json()).unwrap();
    json["surprise"] = serde_json::json!(1);
    assert!(matches!(verify_json(&json.to_string(), None), Err(ReceiptError::Malformed(_))));
}

#[test]
fn every_truncation_of_a_receipt_fails_to_decode_without_panicking() {
    let bytes = valid().to_bytes();
    for n in 0..bytes.len() {
        assert!(Receipt::from_bytes(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(Receipt::from_bytes(&extra), Err(vouch_codec::DecodeError::TrailingBytes { .. })));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert!(matches!(Receipt::from_bytes(&v2), Err(vouch_codec::DecodeError::UnknownVersion { found: 2, .. })));
}

fn tensor_strategy() -> impl Strategy<Value = Tensor> {
    (prop::collection::vec(0u64..4, 0..4), 0u8..5).prop_flat_map(|(shape, kind)| {
        let n: u64 = shape.iter().product();
        let n = n as usize;
        let data: BoxedStrategy<TensorData> = match kind {
            0 => prop::collection::vec(any::<f32>(), n).prop_map(TensorData::F32).boxed(),
            1 => prop::collection::vec(any::<i64>(), n).prop_map(TensorData::I64).boxed(),
            2 => prop::collection::vec(any::<u8>(), n).prop_map(TensorData::U8).boxed(),
            3 => prop::collection::vec(any::<bool>(), n).prop_map(TensorData::Bool).boxed(),
            _ => prop::collection::vec(".{0,5}", n).prop_map(TensorData::String).boxed(),
        };
        data.prop_map(move |d| Tensor::new(shape.clone(), d).unwrap())
    })
}

proptest! {
    #[test]
    fn random_receipts_round_trip_bytes_and_json_and_verify(
        outputs in prop::collection::btree_map("[a-z]{1,4}", tensor_strategy(), 0..4),
        inputs in prop::collection::btree_map("[a-z]{1,4}", tensor_strategy(), 0..3),
    ) {
        let r = Issuer::new(&key(), "e").with_clock(|| 5).signed(ModelId::of_bytes(b"m"), [1; 32], inputs, true, outputs);
        let bytes = r.to_bytes();
        let back = Receipt::from_bytes(&bytes).unwrap();
        prop_assert_eq!(back.to_bytes(), bytes.clone());
        let text = serde_json::to_string(&r.to_json()).unwrap();
        prop_assert!(verify_json(&text, None).is_ok());
        let json: ReceiptJson = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(json.to_receipt().unwrap().to_bytes(), bytes);
    }

    #[test]
    fn garbage_never_panics_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Receipt::from_bytes(&bytes);
        let mut prefixed = b"VOUCHRCT\x01\x00".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = Receipt::from_bytes(&prefixed);
    }

    #[test]
    fn f32_values_survive_the_json_view_exactly(x in any::<f32>()) {
        let t = Tensor::new(vec![1], TensorData::F32(vec![x])).unwrap();
        let j = serde_json::to_string(&t.to_json()).unwrap();
        let back = Tensor::from_json(&serde_json::from_str(&j).unwrap(), None).unwrap();
        match back.data() {
            TensorData::F32(v) => prop_assert!(v[0].to_bits() == x.to_bits() || (x.is_nan() && v[0].is_nan())),
            _ => prop_assert!(false),
        }
    }
}

/// A `tee` receipt of `key()` with simulated evidence made at `T_S` (the receipt issued one second later), and the
/// root's directory (kept alive by the caller).
const T_S: u64 = 1_764_000_000;

fn tee_evidence(root: &vouch_tee::simulated::SimulatedRoot, key: [u8; 32]) -> vouch_codec::TeeEvidence {
    let mut ev = vouch_codec::TeeEvidence {
        key,
        chain: [4; 32],
        freshness: [5; 32],
        attested_at_ms: T_S * 1000,
        reports: vec![],
    };
    let report = root.report(&[6; 48], &ev.report_data(), T_S);
    ev.reports.push(vouch_codec::PlatformReport { platform: "simulated".into(), report, collateral: vec![] });
    ev
}

fn tee_receipt(ev: vouch_codec::TeeEvidence) -> Receipt {
    let (inputs, outputs) = tensors();
    Issuer::new(&key(), "tract-onnx 0.23.9").with_clock(|| (T_S + 1) * 1000).tee(
        ModelId::of_bytes(b"model"),
        [9; 32],
        inputs,
        true,
        outputs,
        ev,
    )
}

fn allow_simulated() -> VerifyOptions {
    VerifyOptions {
        tee_policy: Some(vouch_tee::Policy { allow_simulated: true, ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn tee_receipt_verifies_and_each_change_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = vouch_tee::simulated::SimulatedRoot::load_or_create(&dir.path().join("root.key")).unwrap();
    let honest = tee_receipt(tee_evidence(&root, key().public_key()));
    let v = verify(&honest, &allow_simulated()).unwrap();
    let t = v.tee.unwrap();
    assert_eq!((v.mode, t.measurement, t.simulated, t.key), (Mode::Tee, vec![6; 48], true, key().public_key()));
    // JSON round trip keeps it verifiable.
    let json = serde_json::to_string(&honest.to_json()).unwrap();
    let opts = allow_simulated();
    assert!(vouch_receipt::verify_json_with(&json, opts).is_ok());

    // Simulated evidence under the default policy.
    assert_eq!(check(&honest).unwrap_err(), ReceiptError::Tee(vouch_tee::TeeError::Simulated));
    // No attestation; two attestations.
    let mut none = honest.clone();
    none.evidence.retain(|e| !matches!(e, Evidence::TeeQuote(_)));
    assert_eq!(verify(&none, &allow_simulated()).unwrap_err(), ReceiptError::TeeEvidenceCount { found: 0 });
    let mut two = honest.clone();
    two.evidence.push(honest.evidence[1].clone());
    assert_eq!(verify(&two, &allow_simulated()).unwrap_err(), ReceiptError::TeeEvidenceCount { found: 2 });
    // Another attestation than the one the signed body binds.
    let mut swapped = honest.clone();
    let Evidence::TeeQuote(ev) = &mut swapped.evidence[1] else { panic!("tee evidence second") };
    *ev = tee_evidence(&root, key().public_key());
    ev.attested_at_ms += 1;
    assert_eq!(verify(&swapped, &allow_simulated()).unwrap_err(), ReceiptError::TeeEvidenceMismatch);
    // An attestation of another key, bound and signed by this one.
    let other = tee_receipt(tee_evidence(&root, [8; 32]));
    assert_eq!(
        verify(&other, &allow_simulated()).unwrap_err(),
        ReceiptError::Tee(vouch_tee::TeeError::KeyMismatch {
            bound: hex::encode([8; 32]),
            signer: hex::encode(key().public_key())
        })
    );
    // A flipped byte of the simulated report.
    let mut flipped = tee_evidence(&root, key().public_key());
    flipped.reports[0].report[50] ^= 1;
    assert!(matches!(
        verify(&tee_receipt(flipped), &allow_simulated()).unwrap_err(),
        ReceiptError::Tee(vouch_tee::TeeError::BadSignature { .. })
    ));
    // Issued after the policy's maximum age.
    let short = VerifyOptions {
        tee_policy: Some(vouch_tee::Policy { allow_simulated: true, max_age_s: 0, ..Default::default() }),
        ..Default::default()
    };
    assert!(matches!(verify(&honest, &short).unwrap_err(), ReceiptError::Tee(vouch_tee::TeeError::TooOld { .. })));
    // A measurement the policy does not allow.
    let pinned = VerifyOptions {
        tee_policy: Some(vouch_tee::Policy {
            allow_simulated: true,
            measurements: vec![hex::encode([7; 48])],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        verify(&honest, &pinned).unwrap_err(),
        ReceiptError::Tee(vouch_tee::TeeError::MeasurementNotAllowed { .. })
    ));
    // Two executors.
    let mut pair = honest.clone();
    pair.body.executors.push([3; 32]);
    resign(&mut pair);
    assert!(matches!(verify(&pair, &allow_simulated()).unwrap_err(), ReceiptError::ExecutorCount { mode: "tee", .. }));
    // TEE evidence on a signed receipt.
    let mut signed = valid();
    signed.evidence.push(honest.evidence[1].clone());
    assert_eq!(check(&signed).unwrap_err(), ReceiptError::UnsupportedEvidence { kind: "tee_quote".into() });
}
