//! Correctness against llama.cpp itself: the prebuilt `xllamacpp` wheel (PyPI), run by scripts/llama_reference.py on
//! the same GGUF files and the same prompt token ids (plain attention, as Vouch runs it).
//!
//! - SmolLM2 (llama architecture, Q4_1): the same greedy tokens as Vouch's engine for the first 32 tokens of all 10
//!   prompts.
//! - Gemma 3 (Q4_K_M): the wheel's logits differ from Vouch's build by up to ~0.3 nats on some positions (not a
//!   rounding tie: see BENCHMARKS.md), so greedy paths part on a few prompts after some tokens. This test requires the
//!   first token of every prompt to agree and at least 7 of 10 prompts to agree on all 32 tokens (what this build
//!   measured), and prints where each prompt parts.

use std::path::PathBuf;
use std::process::Command;

use vouch_llm::request::{Completion, Params};
use vouch_llm::{Control, LlamaEngine, LlmEngine, RunOptions, generate};

const PROMPTS: [&str; 10] = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea,",
    "The three laws of thermodynamics are",
    "Translate to German: The weather is nice today.\nGerman:",
    "Q: What is 17 times 23?\nA:",
    "<h1>Welcome</h1>\n<p>This page",
    "Photosynthesis converts",
    "SELECT name, COUNT(*) FROM orders",
    "Les fleurs du printemps",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(name: &str, min_equal: usize) {
    let path = root().join(".cache/models").join(name);
    assert!(path.is_file(), "{} is missing: run scripts/setup-test-env.sh", path.display());
    let model = LlamaEngine::new().load(&path).unwrap();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| model.tokenize(p, true).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.json");
    std::fs::write(&file, serde_json::to_vec(&prompts).unwrap()).unwrap();
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(root().join("scripts/llama_reference.py"))
        .args(["tokens", path.to_str().unwrap(), file.to_str().unwrap(), "32", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "xllamacpp failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference: Vec<Vec<u32>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reference.len(), prompts.len());
    let mut differ = vec![];
    for (i, (prompt, expected)) in prompts.into_iter().zip(reference).enumerate() {
        let c = Completion { prompt, params: Params { max_tokens: 32, temperature: 0.0, ..Params::default() } };
        let g = generate(model.as_ref(), &c, RunOptions { threads: 2, max_context: 4096 }, &mut |_| Control::Continue)
            .unwrap();
        let ours = g.tokens.clone();
        assert!(!expected.is_empty(), "{name}, prompt {i}: llama.cpp generated nothing");
        assert_eq!(ours[0], expected[0], "{name}, prompt {i}: the first greedy token differs from llama.cpp's");
        if ours != expected {
            let at = ours.iter().zip(&expected).take_while(|(a, b)| a == b).count();
            differ.push(format!(
                "prompt {i} ({:?}) from token {at}: ours {:?}, llama.cpp {:?}",
                PROMPTS[i],
                &ours[at..],
                &expected[at..]
            ));
        }
    }
    eprintln!("{name}: {} of 10 prompts equal llama.cpp's 32 greedy tokens\n{}", 10 - differ.len(), differ.join("\n"));
    assert!(
        10 - differ.len() >= min_equal,
        "{name}: Vouch's greedy tokens differ from llama.cpp's on {} of 10 prompts:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn greedy_tokens_equal_llama_cpp_on_smollm2() {
    check("smollm2-135m-instruct-q4_1.gguf", 10);
}

#[test]
fn greedy_tokens_equal_llama_cpp_on_gemma3() {
    check("gemma-3-270m-q4_k_m.gguf", 7);
}
