//! The GGUF inspection on real files (the test models from PyPI, fetched by scripts/setup-test-env.sh) and on
//! hostile headers built here: each refused with its exact error, no allocation beyond the file, never a panic.

use std::io::Cursor;
use std::path::PathBuf;

use vouch_llm::gguf::{GgufError, inspect};

fn model(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/models").join(name);
    assert!(p.is_file(), "{} is missing: run scripts/setup-test-env.sh", p.display());
    p
}

fn inspect_file(p: &PathBuf) -> Result<vouch_llm::GgufInfo, GgufError> {
    let f = std::fs::File::open(p).unwrap();
    let len = f.metadata().unwrap().len();
    inspect(std::io::BufReader::new(f), len)
}

/// A GGUF v3 header writer.
#[derive(Default)]
struct Builder {
    kv: Vec<u8>,
    n_kv: u64,
    tensors: Vec<u8>,
    n_tensors: u64,
}

impl Builder {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn kv_str(mut self, k: &str, v: &str) -> Self {
        Self::string(&mut self.kv, k);
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        Self::string(&mut self.kv, v);
        self.n_kv += 1;
        self
    }
    fn kv_u32(mut self, k: &str, v: u32) -> Self {
        Self::string(&mut self.kv, k);
        self.kv.extend_from_slice(&4u32.to_le_bytes());
        self.kv.extend_from_slice(&v.to_le_bytes());
        self.n_kv += 1;
        self
    }
    fn kv_tokens(mut self, n: u64) -> Self {
        Self::string(&mut self.kv, "tokenizer.ggml.tokens");
        self.kv.extend_from_slice(&9u32.to_le_bytes());
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        self.kv.extend_from_slice(&n.to_le_bytes());
        for i in 0..n {
            Self::string(&mut self.kv, &format!("t{i}"));
        }
        self.n_kv += 1;
        self
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        Self::string(&mut self.tensors, name);
        self.tensors.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend_from_slice(&d.to_le_bytes());
        }
        self.tensors.extend_from_slice(&ty.to_le_bytes());
        self.tensors.extend_from_slice(&offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    fn valid() -> Self {
        Builder::default()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.context_length", 2048)
            .kv_str("tokenizer.ggml.model", "gpt2")
            .kv_tokens(4)
            .tensor("w", &[8, 4], 0, 0)
    }
    fn build(&self, data: usize) -> Vec<u8> {
        self.build_with_counts(self.n_tensors, self.n_kv, data)
    }
    fn build_with_counts(&self, n_tensors: u64, n_kv: u64, data: usize) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&n_tensors.to_le_bytes());
        out.extend_from_slice(&n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.tensors);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }
}

fn check(bytes: &[u8]) -> Result<vouch_llm::GgufInfo, GgufError> {
    inspect(Cursor::new(bytes), bytes.len() as u64)
}

#[test]
fn real_models_are_described() {
    let s = inspect_file(&model("smollm2-135m-instruct-q4_1.gguf")).unwrap();
    assert_eq!(s.architecture, "llama");
    assert_eq!(s.vocab_size, 49152);
    assert_eq!(s.context_length, 8192);
    assert_eq!(s.tokenizer, "gpt2");
    assert!(s.chat_template.as_deref().is_some_and(|t| t.contains("<|im_start|>")));
    assert!(s.tensor_types.contains_key("Q4_1"), "{:?}", s.tensor_types);
    assert!((130_000_000..140_000_000).contains(&s.parameters), "{}", s.parameters);
    let g = inspect_file(&model("gemma-3-270m-q4_k_m.gguf")).unwrap();
    assert_eq!(g.architecture, "gemma3");
    assert_eq!(g.vocab_size, 262144);
    assert!(g.chat_template.is_none());
    assert!(g.tensor_types.contains_key("Q4_K"), "{:?}", g.tensor_types);
    assert!((260_000_000..300_000_000).contains(&g.parameters), "{}", g.parameters);
}

#[test]
fn a_valid_header_and_each_hostile_change() {
    let ok = Builder::valid().build(128);
    let info = check(&ok).unwrap();
    assert_eq!((info.architecture.as_str(), info.vocab_size, info.parameters), ("llama", 4, 32));

    // Garbage, and another version.
    assert_eq!(check(b"not a gguf file at all"), Err(GgufError::NotGguf(*b"not ")));
    let mut v9 = ok.clone();
    v9[4] = 9;
    assert_eq!(check(&v9), Err(GgufError::Version(9)));

    // Every truncation of the header is refused (never a panic).
    for cut in 0..ok.len() - 128 {
        assert!(check(&ok[..cut]).is_err(), "cut at {cut}");
    }

    // Counts far beyond what the file could hold are refused before anything is allocated.
    let huge = Builder::valid().build_with_counts(u64::MAX, 5, 128);
    assert!(matches!(check(&huge), Err(GgufError::Bounds(m)) if m.starts_with("tensor count")));
    let huge_kv = Builder::valid().build_with_counts(1, 1 << 40, 128);
    assert!(matches!(check(&huge_kv), Err(GgufError::Bounds(m)) if m.starts_with("metadata count")));
    let huge_vocab = {
        let mut b = Builder::valid();
        // Claim 2^40 tokens in the array header of a 4-token vocabulary.
        let key = b.kv.windows(21).position(|w| w == b"tokenizer.ggml.tokens").unwrap();
        let at = key + 21 + 8;
        b.kv[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        b.build(128)
    };
    assert!(matches!(check(&huge_vocab), Err(GgufError::Bounds(m)) if m.contains("tokenizer.ggml.tokens")));
    let huge_string = {
        let mut b = Builder::valid();
        b.kv[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        b.build(128)
    };
    assert!(matches!(check(&huge_string), Err(GgufError::Bounds(m)) if m.starts_with("metadata key")));

    // Tensor data past the end of the file, by offset or by size.
    let past = Builder::valid().tensor("x", &[32], 0, 1 << 40).build(128);
    assert!(matches!(check(&past), Err(GgufError::Bounds(m)) if m.contains("runs past the end")));
    let big = Builder::valid().tensor("x", &[1 << 20, 1 << 20], 0, 128).build(128);
    assert!(matches!(check(&big), Err(GgufError::Bounds(_))));
    let overflow = Builder::valid().tensor("x", &[u64::MAX, 2], 0, 128).build(128);
    assert!(matches!(check(&overflow), Err(GgufError::Bounds(_))));
    let rank = Builder::valid().tensor("x", &[1; 9], 0, 128).build(128);
    assert!(matches!(check(&rank), Err(GgufError::Bounds(m)) if m.contains("rank 9")));
    let misaligned = Builder::valid().tensor("x", &[8], 0, 3).build(128);
    assert!(matches!(check(&misaligned), Err(GgufError::Malformed(m)) if m.contains("not aligned")));
    let unknown_type = Builder::valid().tensor("x", &[8], 99, 128).build(128);
    assert!(matches!(check(&unknown_type), Err(GgufError::Malformed(m)) if m.contains("unknown type 99")));

    // Metadata every model has, and what the engine runs.
    let no_arch = Builder::default().kv_str("tokenizer.ggml.model", "gpt2").kv_tokens(4).build(0);
    assert_eq!(check(&no_arch), Err(GgufError::Missing("general.architecture")));
    let bert = Builder::default()
        .kv_str("general.architecture", "bert")
        .kv_str("tokenizer.ggml.model", "bert")
        .kv_tokens(4)
        .build(0);
    assert_eq!(check(&bert), Err(GgufError::Architecture("bert".into())));
    let adapter = Builder::valid().kv_str("general.type", "adapter").build(128);
    assert_eq!(check(&adapter), Err(GgufError::NotAModel("adapter".into())));
    let twice = Builder::valid().kv_u32("llama.context_length", 1).build(128);
    assert!(matches!(check(&twice), Err(GgufError::Malformed(m)) if m.contains("twice")));
}

#[test]
fn truncated_real_model_is_refused() {
    let bytes = std::fs::read(model("smollm2-135m-instruct-q4_1.gguf")).unwrap();
    // Inside the header (the vocabulary) and inside the tensor data.
    for cut in [100, 1 << 20, bytes.len() / 2, bytes.len() - 1] {
        let e = check(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, GgufError::Truncated(_) | GgufError::Bounds(_)), "cut {cut}: {e}");
    }
}
