//! Runs every fuzz target for a bounded time (`VOUCH_FUZZ_SECS` per target, default 8; `VOUCH_FUZZ_SEED` picks the
//! mutations, fixed by default so every CI run checks the same inputs): from the stored corpus
//! (`corpus/<target>/`) and freshly built valid artefacts. Any panic fails the test and keeps the input under the
//! test's temp folder; a crash found is added to the corpus as a regression.

use std::path::{Path, PathBuf};
use std::time::Duration;

fn budget() -> Duration {
    Duration::from_secs(std::env::var("VOUCH_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(8))
}

fn seed() -> u64 {
    std::env::var("VOUCH_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20_261_129)
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(name);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/models");
    let mut corpus: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    let seeds = vouch_fuzz::seeds(name, &models);
    // VOUCH_FUZZ_WRITE_CORPUS=1 keeps the small seeds in the repository's corpus (zk proofs are rebuilt each run).
    if std::env::var_os("VOUCH_FUZZ_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for s in seeds.iter().filter(|s| s.len() <= 64 << 10) {
            std::fs::write(dir.join(format!("seed-{}.bin", &blake3::hash(s).to_hex()[..16])), s).unwrap();
        }
    }
    corpus.extend(seeds);
    corpus
}

fn fuzz(name: &str) {
    let target = vouch_fuzz::TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).expect("a target");
    let corpus = corpus(name);
    assert!(!corpus.is_empty(), "{name}: no corpus");
    // The target's own panics are caught and counted; keep their messages out of the test output.
    let crash_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let report = vouch_fuzz::run(name, target, &corpus, budget(), seed(), &crash_dir);
    eprintln!("{name}: {} inputs from a corpus of {}, {} crashes", report.execs, report.corpus, report.crashes.len());
    assert!(report.crashes.is_empty(), "{name}: inputs that panic: {:?}", report.crashes);
}

#[test]
fn receipt_bytes() {
    fuzz("receipt_bytes");
}

#[test]
fn receipt_json() {
    fuzz("receipt_json");
}

#[test]
fn tensor_bytes() {
    fuzz("tensor_bytes");
}

#[test]
fn tensor_json() {
    fuzz("tensor_json");
}

#[test]
fn onnx_inspect() {
    fuzz("onnx_inspect");
}

#[test]
fn onnx_quant_parse() {
    fuzz("onnx_quant_parse");
}

#[test]
fn transaction() {
    fuzz("transaction");
}

#[test]
fn zk_public_evidence() {
    fuzz("zk_public_evidence");
}

#[test]
fn zk_private_evidence() {
    fuzz("zk_private_evidence");
}

#[test]
fn chain_block() {
    fuzz("chain_block");
}

#[test]
fn gguf_header() {
    // The seed is a valid file, so mutations start from inputs that reach every check.
    for seed in vouch_fuzz::seeds("gguf_header", Path::new(".")) {
        let info = vouch_llm::inspect(std::io::Cursor::new(&seed), seed.len() as u64).expect("a valid seed");
        assert_eq!((info.architecture.as_str(), info.vocab_size), ("llama", 4));
    }
    fuzz("gguf_header");
}

#[test]
fn tee_evidence() {
    // The TDX and SEV-SNP seeds pass every vendor check and stop at the report-data binding, so mutations start from
    // inputs that reach the deepest checks.
    use vouch_codec::Canonical;
    let seeds = vouch_fuzz::seeds("tee_evidence", Path::new("."));
    assert_eq!(seeds.len(), 3);
    for seed in &seeds[..2] {
        let ev = vouch_codec::TeeEvidence::from_canonical(seed).expect("a valid seed");
        let r = vouch_tee::verify_evidence(&ev, Default::default(), &Default::default(), 1_751_328_000);
        assert!(matches!(r, Err(vouch_tee::TeeError::ReportDataMismatch { .. })), "{r:?}");
    }
    fuzz("tee_evidence");
}

/// Every target has a test above.
#[test]
fn every_target_is_run() {
    let src = include_str!("fuzz.rs");
    for (name, _) in vouch_fuzz::TARGETS {
        assert!(src.contains(&format!("fuzz(\"{name}\")")), "{name} has no test");
    }
}

/// Runs one saved input again, uncaught, for its panic's backtrace: `VOUCH_FUZZ_REPLAY=FILE` (the file name starts
/// with the target's name). Without the variable it does nothing.
#[test]
fn replay() {
    let Some(path) = std::env::var_os("VOUCH_FUZZ_REPLAY").map(PathBuf::from) else { return };
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_owned();
    let (_, target) = vouch_fuzz::TARGETS.iter().find(|(n, _)| file.starts_with(n)).expect("a target's input");
    target(&std::fs::read(&path).unwrap());
}

#[test]
fn epoch_link() {
    fuzz("epoch_link");
}
