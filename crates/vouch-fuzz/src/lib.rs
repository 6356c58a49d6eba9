//! Fuzz targets for every Vouch parser and decoder, and a bounded mutation fuzzer that runs them in CI.
//!
//! Each target takes arbitrary bytes and must never panic; where a decoder accepts the bytes, its re-encoding must
//! decode to the same value. [`run`] drives a target for a bounded time from a corpus (the seeds in `corpus/<target>/`
//! and the valid artefacts [`seeds`] builds), mutating inputs with byte flips, interesting values, length-field
//! rewrites, insertions, deletions, duplications and splices, each run under `catch_unwind`. The mutator is not
//! coverage-guided (a stable toolchain has no sanitizer coverage); the same target functions can be driven by a
//! coverage-guided fuzzer unchanged.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use vouch_codec::tx::{SignedTx, Tx};
use vouch_codec::{Canonical, Receipt, Tensor};

/// A fuzz target: arbitrary bytes in, no panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its corpus folder).
pub const TARGETS: &[(&str, Target)] = &[
    ("receipt_bytes", receipt_bytes),
    ("receipt_json", receipt_json),
    ("tensor_bytes", tensor_bytes),
    ("tensor_json", tensor_json),
    ("onnx_inspect", onnx_inspect),
    ("onnx_quant_parse", onnx_quant_parse),
    ("transaction", transaction),
    ("zk_public_evidence", zk_public_evidence),
    ("zk_private_evidence", zk_private_evidence),
    ("chain_block", chain_block),
    ("gguf_header", gguf_header),
    ("tee_evidence", tee_evidence),
    ("epoch_link", epoch_link),
];

/// The validator params and the genesis set the epoch-link target checks against.
fn epoch_fixture() -> (vouch_ledger::ValidatorParams, Vec<[u8; 32]>) {
    let params = vouch_ledger::ValidatorParams { epoch_length: 10, ..Default::default() };
    // A consensus key of a seed is the ed25519 key of that seed, as a node key is.
    let mut set: Vec<[u8; 32]> = (1..=4u8).map(|i| vouch_crypto::NodeKey::from_secret([i; 32]).public_key()).collect();
    set.sort_unstable();
    (params, set)
}

/// An epoch link as `vouch verify --epochs` reads it from a file: decoded, its re-encoding round-trips, and it is
/// checked against the set before it (header, Merkle path, certificate).
pub fn epoch_link(data: &[u8]) {
    if let Ok(link) = vouch_chain::epoch::EpochLink::from_canonical(data) {
        round_trip(&link);
        let (params, set) = epoch_fixture();
        let _ = vouch_chain::epoch::ValidatorSets::from_links(&params, &set, std::slice::from_ref(&link));
    }
    if let Ok(change) = vouch_chain::epoch::EpochChange::from_canonical(data) {
        round_trip(&change);
    }
}

/// A link whose header, change and Merkle path are those of a real boundary block (its certificate is not a
/// finalization, so it is refused there), and the change alone.
fn epoch_seeds() -> Vec<Vec<u8>> {
    let (params, set) = epoch_fixture();
    let change = vouch_chain::epoch::EpochChange { epoch: 1, state_root: [5; 32], validators: set };
    let block = vouch_chain::Block::new(
        [8; 32],
        params.last_height(0),
        1_764_000_000_123,
        vec![bytes::Bytes::from(change.to_canonical())],
    );
    let link = vouch_chain::epoch::EpochLink {
        header: *block.header(),
        change: change.clone(),
        index: 0,
        inclusion: block.inclusion_proof(0).unwrap_or_default(),
        certificate: vec![7; 200],
    };
    vec![link.to_canonical(), change.to_canonical()]
}

/// TEE evidence as a receipt or an `Attest` transaction carries it: decoded, then fully verified (the platform's
/// vendor chain, report-data binding, the default policy) at a time inside the fixtures' validity.
pub fn tee_evidence(data: &[u8]) {
    if let Ok(ev) = vouch_codec::TeeEvidence::from_canonical(data) {
        let _ =
            vouch_tee::verify_evidence(&ev, vouch_tee::Expect::default(), &vouch_tee::Policy::default(), 1_751_328_000);
    }
}

/// Evidence around each real vendor report of `vouch-tee`'s fixtures (it verifies up to the report-data binding).
fn tee_seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vouch-tee/tests/fixtures");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_default();
    let snp = hex::decode(String::from_utf8_lossy(&read("report_milan.hex")).trim()).unwrap_or_default();
    [
        ("tdx", read("tdx_quote"), read("tdx_quote_collateral.json")),
        ("sev-snp", snp, read("vcek_milan.der")),
        ("nitro", read("attestation.cose"), vec![]),
    ]
    .into_iter()
    .map(|(platform, report, collateral)| {
        vouch_codec::TeeEvidence {
            key: [1; 32],
            chain: [2; 32],
            freshness: [3; 32],
            attested_at_ms: 1_751_328_000_000,
            reports: vec![vouch_codec::PlatformReport { platform: platform.into(), report, collateral }],
        }
        .to_canonical()
    })
    .collect()
}

/// A GGUF file through the bounded header inspection the node runs at push (nothing allocated beyond the input).
pub fn gguf_header(data: &[u8]) {
    let _ = vouch_llm::inspect(std::io::Cursor::new(data), data.len() as u64);
}

/// A small valid GGUF v3 file: a llama architecture, a context length, a 4-token vocabulary, a chat template and
/// one 8x4 F32 tensor.
fn gguf_seed() -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut kv = vec![];
    for (k, v) in
        [("general.architecture", "llama"), ("tokenizer.ggml.model", "gpt2"), ("tokenizer.chat_template", "{{ x }}")]
    {
        string(&mut kv, k);
        kv.extend_from_slice(&8u32.to_le_bytes());
        string(&mut kv, v);
    }
    string(&mut kv, "llama.context_length");
    kv.extend_from_slice(&4u32.to_le_bytes());
    kv.extend_from_slice(&2048u32.to_le_bytes());
    string(&mut kv, "tokenizer.ggml.tokens");
    kv.extend_from_slice(&9u32.to_le_bytes());
    kv.extend_from_slice(&8u32.to_le_bytes());
    kv.extend_from_slice(&4u64.to_le_bytes());
    for t in ["a", "b", "c", "d"] {
        string(&mut kv, t);
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&5u64.to_le_bytes());
    out.extend_from_slice(&kv);
    string(&mut out, "w");
    out.extend_from_slice(&2u32.to_le_bytes());
    for d in [8u64, 4] {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.extend(std::iter::repeat_n(0u8, 8 * 4 * 4));
    out
}

/// A decoded value's encoding decodes, to a value with the same encoding (bytes, not `==`: NaN elements).
fn round_trip<T: Canonical>(v: &T) {
    let bytes = v.to_canonical();
    let back = T::from_canonical(&bytes).expect("a decoded value's encoding decodes");
    assert!(back.to_canonical() == bytes, "encode(decode(encode(v))) != encode(v)");
}

/// Canonical receipt bytes: decode; a decoded receipt round-trips and goes through the offline verifier.
pub fn receipt_bytes(data: &[u8]) {
    if let Ok(r) = Receipt::from_bytes(data) {
        round_trip(&r);
        let _ = vouch_receipt::verify(&r, &Default::default());
    }
}

/// A receipt's JSON text through `vouch verify`'s path.
pub fn receipt_json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vouch_receipt::verify_json(text, None);
    }
}

/// One canonical tensor.
pub fn tensor_bytes(data: &[u8]) {
    if let Ok(t) = Tensor::from_canonical(data) {
        round_trip(&t);
        let json = serde_json::to_value(t.to_json()).expect("a tensor serializes");
        let parsed: vouch_codec::tensor::TensorJson = serde_json::from_value(json).expect("its JSON parses");
        let map = std::collections::BTreeMap::from([("t".to_owned(), parsed)]);
        let back = vouch_codec::tensor::map_from_json(&map).expect("its JSON view is a tensor");
        assert_eq!(back["t"].to_canonical(), t.to_canonical(), "JSON view round trip");
    }
}

/// An input document, as `POST /v1/infer` parses it.
pub fn tensor_json(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = vouch_codec::tensor::parse_input_doc(&v, |_| Some(vouch_codec::DType::F32));
    }
}

/// The streaming ONNX inspection every push runs.
pub fn onnx_inspect(data: &[u8]) {
    let _ = vouch_engine::inspect::inspect_reader(Cursor::new(data), data.len() as u64);
}

/// The zk path's ONNX parser.
pub fn onnx_quant_parse(data: &[u8]) {
    let _ = vouch_quant::parse(data);
}

/// Signed and unsigned transactions; a decoded one round-trips and goes through the stateless checks.
pub fn transaction(data: &[u8]) {
    if let Ok(stx) = SignedTx::from_bytes(data) {
        round_trip(&stx);
        let _ = vouch_ledger::check_stateless(&stx.tx.chain, &stx);
    }
    if let Ok(tx) = Tx::from_bytes(data) {
        round_trip(&tx);
    }
}

/// The zk targets' input: `u16 len ‖ commitment ‖ u16 n ‖ n × i16 output ‖ evidence` (little-endian), so a seed
/// is a whole statement that verifies and mutations reach every check.
pub fn zk_case(commitment: &[u8], y: &[i16], evidence: &[u8]) -> Vec<u8> {
    let mut out = (commitment.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(commitment);
    out.extend_from_slice(&(y.len() as u16).to_le_bytes());
    y.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out.extend_from_slice(evidence);
    out
}

fn take(d: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (d.len() >= n).then(|| d.split_at(n))
}

fn split_zk(data: &[u8]) -> Option<(&[u8], Vec<i16>, &[u8])> {
    let (len, rest) = take(data, 2)?;
    let (commitment, rest) = take(rest, usize::from(u16::from_le_bytes([len[0], len[1]])))?;
    let (n, rest) = take(rest, 2)?;
    let (y, evidence) = take(rest, 2 * usize::from(u16::from_le_bytes([n[0], n[1]])))?;
    Some((commitment, y.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect(), evidence))
}

/// A public-activation proof: its commitment and evidence, for the output given and the input the evidence states.
pub fn zk_public_evidence(data: &[u8]) {
    let Some((commitment, y, evidence)) = split_zk(data) else { return };
    let x = vouch_zk::Evidence::from_bytes(evidence)
        .ok()
        .and_then(|e| e.proof.activations.first().cloned())
        .unwrap_or_default();
    let _ = vouch_zk::verify_evidence(commitment, evidence, &x, &y);
}

/// A private-input proof: its commitment and evidence, for the output given and the input commitment the proof
/// states.
pub fn zk_private_evidence(data: &[u8]) {
    let Some((commitment, y, evidence)) = split_zk(data) else { return };
    let input = vouch_zk::private::PrivateEvidence::from_bytes(evidence)
        .map(|e| e.proof.input)
        .unwrap_or(vouch_zk::private::InputCommitment([0; 4]));
    let _ =
        vouch_zk::private::verify_private_evidence(vouch_zk::private::PRIVATE_SYSTEM, commitment, evidence, &input, &y);
}

/// A block (its commonware encoding).
pub fn chain_block(data: &[u8]) {
    if let Ok(b) = vouch_chain::Block::from_canonical(data) {
        round_trip(&b);
    }
}

/// What a fuzzing run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs run.
    pub execs: u64,
    /// Corpus entries started from.
    pub corpus: usize,
    /// Inputs that panicked (each kept as a file).
    pub crashes: Vec<std::path::PathBuf>,
}

/// A small xorshift generator: runs are reproducible from their seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break decoders: boundaries of lengths and counts.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    15,
    16,
    31,
    32,
    64,
    127,
    128,
    255,
    256,
    4096,
    65535,
    65536,
    1 << 24,
    1 << 31,
    u32::MAX as u64,
    u64::MAX,
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                // An interesting value written over a (little-endian) length or count field.
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let w = [1, 2, 4, 8][rng.below(4)];
                let i = rng.below(len);
                for (k, b) in v.iter().take(w).enumerate() {
                    if let Some(x) = input.get_mut(i + k) {
                        *x = *b;
                    }
                }
            }
            3 if len > 0 => input.truncate(rng.below(len)),
            4 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                input.drain(a..b);
            }
            5 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            6 if len > 0 => {
                // Duplicate a chunk in place (repeated fields, repeated evidence).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = input[a..b].to_vec();
                input.splice(b..b, chunk);
            }
            7 if !corpus.is_empty() => {
                // Splice: the head of this input with the tail of another.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
}

/// Runs `target` on mutations of `corpus` for `budget`; a panicking input is written to `crash_dir`.
pub fn run(
    name: &str,
    target: Target,
    corpus: &[Vec<u8>],
    budget: Duration,
    seed: u64,
    crash_dir: &std::path::Path,
) -> Report {
    let mut report = Report { corpus: corpus.len(), ..Report::default() };
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    // Every corpus entry once as it is, then mutations.
    let mut originals = corpus.iter();
    while start.elapsed() < budget {
        let input = match originals.next() {
            Some(c) => c.clone(),
            None => {
                let mut input = if corpus.is_empty() { vec![] } else { corpus[rng.below(corpus.len())].clone() };
                mutate(&mut rng, &mut input, corpus);
                input
            }
        };
        report.execs += 1;
        if std::panic::catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let path = crash_dir.join(format!("{name}-{}.bin", &blake3::hash(&input).to_hex()[..16]));
            let _ = std::fs::create_dir_all(crash_dir);
            let _ = std::fs::write(&path, &input);
            report.crashes.push(path);
        }
    }
    report
}

/// Valid artefacts to start each target from (beyond the stored corpus), built fresh: receipts of every kind,
/// tensors, input documents, transactions, a block, and (from `models`, the bench models) ONNX files and zk proofs.
pub fn seeds(name: &str, models: &std::path::Path) -> Vec<Vec<u8>> {
    use vouch_codec::{ModelId, TensorData, TensorMap};
    let key = vouch_crypto::NodeKey::from_secret([3; 32]);
    let issuer = vouch_receipt::Issuer::new(&key, "tract-onnx 0.23.9").with_clock(|| 1_764_000_000_000);
    let tensor = |shape: Vec<u64>, data: TensorData| Tensor::new(shape, data).expect("valid seed tensor");
    let tensors = [
        tensor(vec![1, 3], TensorData::F32(vec![0.5, -1.25, f32::NAN])),
        tensor(vec![2], TensorData::I64(vec![-7, 1 << 40])),
        tensor(vec![], TensorData::String(vec!["cat".into()])),
        tensor(vec![2, 1, 2], TensorData::Bool(vec![true, false, true, true])),
    ];
    let map = |t: &Tensor| TensorMap::from([("x".to_owned(), t.clone())]);
    let signed = issuer.signed(ModelId::of_bytes(b"m"), [9; 32], map(&tensors[0]), true, map(&tensors[1]));
    let zk = || {
        let g = vouch_quant::parse(&std::fs::read(models.join("mlp_small.onnx")).ok()?).ok()?;
        let (q, _) = vouch_quant::quantize(&g, &vouch_quant::seeded_inputs(16, 8, 1)).ok()?;
        let x = q.quantize_input(&vouch_quant::seeded_inputs(16, 1, 2)[0]);
        let prover = vouch_zk::Prover::new(q.clone()).ok()?;
        let proof = prover.prove(&x).ok()?;
        let y = proof.activations.last().cloned()?;
        let public = zk_case(
            &prover.commitment().to_bytes(),
            &y,
            &vouch_zk::Evidence { structure: vouch_zk::public_structure(&q), proof }.to_bytes(),
        );
        let private = prover.private().ok()?;
        let (y, proof) = private.prove(&x, &vouch_zk::private::Salt([1, 2, 3, 4])).ok()?;
        let evidence = vouch_zk::private::PrivateEvidence { structure: vouch_zk::public_structure(&q), proof };
        Some((public, zk_case(&private.commitment().to_bytes(), &y, &evidence.to_bytes())))
    };
    let txs = || {
        use vouch_codec::tx::TxKind;
        let kinds = vec![
            TxKind::Transfer { to: [4; 32], amount: 5 },
            TxKind::SettleReceipt { receipt: vouch_codec::Digest([5; 32]) },
            TxKind::SettleBatch { root: vouch_codec::Digest([5; 32]), count: 4096 },
            TxKind::BondValidator { key: [6; 32], p2p: "10.0.0.1:9000".into(), stake: 10_000, key_signature: [7; 64] },
            TxKind::UnbondValidator { key: [6; 32] },
            TxKind::Unbond { node: [6; 32], amount: 9 },
            TxKind::SetEngine { node: [6; 32], engine: "tract 0.23.9; llama.cpp cpu x86_64+avx2".into() },
            TxKind::Attest {
                node: [6; 32],
                evidence: vouch_codec::TeeEvidence {
                    key: [6; 32],
                    chain: [7; 32],
                    freshness: [8; 32],
                    attested_at_ms: 1,
                    reports: vec![vouch_codec::PlatformReport {
                        platform: "simulated".into(),
                        report: vec![9; 16],
                        collateral: vec![],
                    }],
                },
            },
            TxKind::RegisterModel {
                model: ModelId::of_bytes(b"m"),
                name: "m@1.0".into(),
                commitment: vec![1, 2],
                rule: vouch_codec::AgreementRule::Tolerance { abs: 1e-3, rel: 0.0 },
            },
        ];
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| {
                let tx = Tx { chain: [7; 32], from: key.public_key(), nonce: i as u64, fee: 1, kind };
                SignedTx { signature: key.sign(vouch_codec::domain::TX_SIGNATURE, &tx.id().0), tx }
            })
            .collect::<Vec<_>>()
    };
    match name {
        "receipt_bytes" => vec![signed.to_bytes()],
        "receipt_json" => vec![serde_json::to_vec(&signed.to_json()).unwrap_or_default()],
        "tensor_bytes" => tensors.iter().map(Canonical::to_canonical).collect(),
        "tensor_json" => vec![
            br#"{"inputs": {"x": {"dtype": "f32", "shape": [1, 2], "data": [0.5, "NaN"]}}}"#.to_vec(),
            br#"{"x": [[1, 2, 3], [4, 5, 6]], "y": [[[true]]]}"#.to_vec(),
        ],
        "onnx_inspect" | "onnx_quant_parse" => ["mlp_small", "lenet_small"]
            .iter()
            .filter_map(|m| std::fs::read(models.join(format!("{m}.onnx"))).ok())
            .collect(),
        "transaction" => txs().iter().flat_map(|t| [t.to_bytes(), t.tx.to_bytes()]).collect(),
        "zk_public_evidence" => zk().map(|z| vec![z.0]).unwrap_or_default(),
        "zk_private_evidence" => zk().map(|z| vec![z.1]).unwrap_or_default(),
        "gguf_header" => vec![gguf_seed()],
        "tee_evidence" => tee_seeds(),
        "epoch_link" => epoch_seeds(),
        "chain_block" => {
            let txs: Vec<bytes::Bytes> = txs().iter().map(|t| t.to_bytes().into()).collect();
            vec![vouch_chain::Block::new([8; 32], 12, 1_764_000_000_123, txs).to_canonical()]
        }
        _ => vec![],
    }
}
