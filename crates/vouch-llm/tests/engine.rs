//! The llama.cpp backend through the shared decode loop, on the real test models: greedy decoding is bitwise
//! repeatable (the same tokens and the same digest of every step's logits) across runs and thread counts, sampling
//! with a seed is too, stop strings and limits end generations as documented, and bad requests fail cleanly.

use std::path::PathBuf;
use std::sync::Arc;

use vouch_llm::request::{Completion, Params};
use vouch_llm::{Control, Finish, LlamaEngine, LlmEngine, LlmError, LlmModel, RunOptions, generate};

fn model_path(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/models").join(name);
    assert!(p.is_file(), "{} is missing: run scripts/setup-test-env.sh", p.display());
    p
}

fn load(name: &str) -> Arc<dyn LlmModel> {
    LlamaEngine::new().load(&model_path(name)).unwrap()
}

fn run(model: &dyn LlmModel, c: &Completion, threads: usize) -> vouch_llm::Generation {
    generate(model, c, RunOptions { threads, max_context: 8192 }, &mut |_| Control::Continue).unwrap()
}

fn greedy(prompt: Vec<u32>, max_tokens: u32) -> Completion {
    Completion { prompt, params: Params { max_tokens, temperature: 0.0, ..Params::default() } }
}

#[test]
fn greedy_decoding_is_bitwise_repeatable_across_runs_and_threads() {
    for name in ["smollm2-135m-instruct-q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"] {
        let m = load(name);
        let prompt = m.tokenize("The capital of France is", true).unwrap();
        let c = greedy(prompt, 24);
        let first = run(m.as_ref(), &c, 1);
        assert_eq!(first.tokens.len(), 24, "{name}: {:?}", first.finish);
        assert_eq!(first.step_digests.len(), 24);
        for threads in [1, 2, 1] {
            let again = run(m.as_ref(), &c, threads);
            assert_eq!(again.tokens, first.tokens, "{name}, {threads} threads");
            assert_eq!(again.step_digests, first.step_digests, "{name}, {threads} threads");
        }
        assert!(!first.text.is_empty(), "{name}");
    }
}

#[test]
fn long_prompts_are_prefilled_in_fixed_chunks_the_same_way_each_time() {
    let m = load("smollm2-135m-instruct-q4_1.gguf");
    // 600 tokens: three prefill passes (256, 256, 88).
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(60);
    let prompt = m.tokenize(&text, true).unwrap();
    assert!(prompt.len() > 512, "{}", prompt.len());
    let c = greedy(prompt, 8);
    let a = run(m.as_ref(), &c, 2);
    let b = run(m.as_ref(), &c, 1);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.step_digests, b.step_digests);
}

#[test]
fn seeded_sampling_is_reproducible_and_the_seed_matters() {
    let m = load("smollm2-135m-instruct-q4_1.gguf");
    let prompt = m.tokenize("Once upon a time", true).unwrap();
    let sampled = |seed| Completion {
        prompt: prompt.clone(),
        params: Params { max_tokens: 24, temperature: 1.0, top_p: 0.95, seed: Some(seed), ..Params::default() },
    };
    let a = run(m.as_ref(), &sampled(1), 1);
    let b = run(m.as_ref(), &sampled(1), 2);
    assert_eq!(a.tokens, b.tokens);
    let others: Vec<Vec<u32>> = (2..6).map(|s| run(m.as_ref(), &sampled(s), 1).tokens).collect();
    assert!(others.iter().any(|t| *t != a.tokens), "four other seeds all gave the same tokens");
}

#[test]
fn stops_limits_logprobs_and_cancellation() {
    let m = load("smollm2-135m-instruct-q4_1.gguf");
    let prompt = m.tokenize("Count: 1, 2, 3, 4,", true).unwrap();
    let full = run(m.as_ref(), &greedy(prompt.clone(), 12), 1);
    assert_eq!(full.finish, Finish::Length);
    // Stop at a string the greedy text contains: the text ends before it and generation ends with "stop".
    let stop = full.text.trim_start().chars().take(2).collect::<String>();
    assert!(!stop.is_empty());
    let mut c = greedy(prompt.clone(), 12);
    c.params.stop = vec![stop.clone()];
    let stopped = run(m.as_ref(), &c, 1);
    assert_eq!(stopped.finish, Finish::Stop);
    assert!(!stopped.text.contains(&stop), "{:?} contains {stop:?}", stopped.text);
    assert!(full.text.starts_with(&stopped.text));
    assert_eq!(stopped.tokens, full.tokens[..stopped.tokens.len()]);
    // Logprobs: the greedy token is the most likely, and probabilities are at most 1.
    let mut c = greedy(prompt.clone(), 4);
    c.params.logprobs = Some(3);
    let g = run(m.as_ref(), &c, 1);
    assert_eq!(g.logprobs.len(), 4);
    for (lp, t) in g.logprobs.iter().zip(&g.tokens) {
        assert_eq!(lp.token, *t);
        assert_eq!(lp.top.len(), 3);
        assert_eq!(lp.top[0].0, *t);
        assert!(lp.logprob <= 0.0 && lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    // A caller that stops after two tokens gets two, marked cancelled.
    let g = generate(m.as_ref(), &greedy(prompt.clone(), 12), RunOptions { threads: 1, max_context: 8192 }, &mut |s| {
        if s.index == 1 { Control::Cancel } else { Control::Continue }
    })
    .unwrap();
    assert!(g.cancelled);
    assert_eq!(g.tokens, full.tokens[..2]);
    // Bad requests.
    let err = |c: Completion, max_context| {
        generate(m.as_ref(), &c, RunOptions { threads: 1, max_context }, &mut |_| Control::Continue).unwrap_err()
    };
    assert_eq!(err(greedy(vec![], 4), 8192), LlmError::EmptyPrompt);
    assert_eq!(err(greedy(vec![1, 999_999], 4), 8192), LlmError::Token { token: 999_999, vocab: 49152 });
    assert_eq!(
        err(greedy(prompt.clone(), 100), 64),
        LlmError::ContextWindow { prompt: prompt.len(), max_tokens: 100, context: 64 }
    );
    assert_eq!(
        err(greedy(prompt.clone(), 9000), 1 << 20),
        LlmError::ContextWindow { prompt: prompt.len(), max_tokens: 9000, context: 8192 }
    );
}

#[test]
fn tokenizer_round_trip_and_vocab_only_loading() {
    let engine = LlamaEngine::new();
    let v = engine.load_vocab(&model_path("smollm2-135m-instruct-q4_1.gguf")).unwrap();
    let text = "Hello, world! Ünïcödé ✓";
    let tokens = v.tokenize(text, false).unwrap();
    let back: Vec<u8> = tokens.iter().flat_map(|&t| v.piece(t).unwrap()).collect();
    assert_eq!(String::from_utf8(back).unwrap(), text);
    assert!(v.is_end(v.tokenize("<|im_end|>", false).unwrap()[0]));
    assert_eq!(v.piece(1 << 30), Err(LlmError::Token { token: 1 << 30, vocab: 49152 }));
    // A vocabulary-only model cannot run.
    let e = generate(v.as_ref(), &greedy(tokens, 1), RunOptions { threads: 1, max_context: 8192 }, &mut |_| {
        Control::Continue
    });
    assert!(matches!(e, Err(LlmError::Context(_) | LlmError::ContextWindow { context: 0, .. })), "{e:?}");
    // Files llama.cpp cannot load are errors, not crashes.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    assert!(matches!(engine.load(&junk), Err(LlmError::Load(_))));
}
