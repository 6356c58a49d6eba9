//! One greedy completion through Vouch's decode loop (`vouch_llm::generate`: fixed prefill chunks, a fresh context,
//! per-step logit digests, detokenization), timed the way `scripts/llama_reference.py bench` times llama.cpp, so
//! `scripts/bench_llm.py` can put the two side by side in one run.
//!
//! `cargo build --release -p vouch-llm --bench llm` builds it; `llm-HASH MODEL.gguf PROMPT_TOKENS N THREADS` prints one
//! JSON object: prefill tokens/s, decode tokens/s, time to first token (ms, from the request to the first sampled
//! token: context creation and prefill included), tokens generated. End-of-generation tokens are ignored so every run
//! decodes N.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use vouch_llm::request::{Completion, Params};
use vouch_llm::{Control, LlamaEngine, LlmEngine, LlmError, LlmModel, RunOptions, Session, SessionOptions};

/// The model with no end-of-generation token, so a benchmark decodes exactly the tokens it asks for.
struct NoEnd(Arc<dyn LlmModel>);

impl LlmModel for NoEnd {
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn context_length(&self) -> u32 {
        self.0.context_length()
    }
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, LlmError> {
        self.0.tokenize(text, add_special)
    }
    fn piece(&self, token: u32) -> Result<Vec<u8>, LlmError> {
        self.0.piece(token)
    }
    fn token_text(&self, token: u32) -> Result<String, LlmError> {
        self.0.token_text(token)
    }
    fn is_end(&self, _token: u32) -> bool {
        false
    }
    fn bos_text(&self) -> Option<String> {
        self.0.bos_text()
    }
    fn eos_text(&self) -> Option<String> {
        self.0.eos_text()
    }
    fn run(
        &self,
        opts: SessionOptions,
        f: &mut dyn FnMut(&mut dyn Session) -> Result<(), LlmError>,
    ) -> Result<(), LlmError> {
        self.0.run(opts, f)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` appends `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [model, prompt_tokens, n, threads] = args.as_slice() else {
        return Err("usage: llm MODEL.gguf PROMPT_TOKENS N THREADS".into());
    };
    let (prompt_tokens, n, threads): (usize, u32, usize) = (prompt_tokens.parse()?, n.parse()?, threads.parse()?);
    let model: Arc<dyn LlmModel> = Arc::new(NoEnd(LlamaEngine::new().load(Path::new(model))?));
    let run = RunOptions { threads, max_context: 1 << 20 };
    let request = |prompt: Vec<u32>, max_tokens: u32| Completion {
        prompt,
        params: Params { max_tokens, temperature: 0.0, ..Params::default() },
    };
    // The same prompt as the reference: ids 100..150 repeated.
    let prompt: Vec<u32> = (0..prompt_tokens).map(|i| 100 + (i % 50) as u32).collect();
    vouch_llm::generate(model.as_ref(), &request(prompt[..8].to_vec(), 4), run, &mut |_| Control::Continue)?;
    let started = Instant::now();
    let mut first = None;
    let g = vouch_llm::generate(model.as_ref(), &request(prompt, n), run, &mut |_| {
        first.get_or_insert_with(|| started.elapsed());
        Control::Continue
    })?;
    let wall = started.elapsed().as_secs_f64();
    let decoded = g.tokens.len().saturating_sub(1);
    let report = serde_json::json!({
        "prefill_tok_s": prompt_tokens as f64 / g.prefill_seconds,
        "decode_tok_s": decoded as f64 / g.decode_seconds,
        "ttft_ms": first.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        "tokens": g.tokens.len(),
        "wall_s": wall,
    });
    println!("{report}");
    Ok(())
}
