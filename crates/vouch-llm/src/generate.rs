//! The decode loop every backend shares, and where the determinism rules live:
//!
//! - one sequence per forward pass, on a fresh context (no prompt cache across requests);
//! - the prompt is evaluated in chunks of exactly [`PREFILL_CHUNK`] tokens (the last one shorter), whatever the
//!   hardware: another chunking changes the logits;
//! - the context is the prompt plus `max_tokens`, rounded up to [`CONTEXT_ROUNDING`] (a function of the request, not
//!   of the node);
//! - greedy decoding breaks ties to the lowest token id; sampling is seeded by the request's digest
//!   ([`crate::sample`]).
//!
//! Each step's logits are hashed (blake3 of their little-endian bytes), so runs can be compared bit for bit.

use vouch_codec::Digest;
use vouch_codec::tensor::digest_map;

use crate::LlmError;
use crate::engine::{LlmModel, SessionOptions};
use crate::request::Completion;
use crate::sample;
use crate::text::TextStream;

/// Tokens per prefill forward pass.
pub const PREFILL_CHUNK: usize = 256;
/// Context windows are multiples of this.
pub const CONTEXT_ROUNDING: usize = 256;

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl Finish {
    /// OpenAI's name.
    pub fn name(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }

    /// From OpenAI's name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "stop" => Some(Finish::Stop),
            "length" => Some(Finish::Length),
            _ => None,
        }
    }
}

/// A token's log-probability and the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token.
    pub token: u32,
    /// Its natural-log probability under the model (temperature 1).
    pub logprob: f64,
    /// The most likely tokens at this position, most likely first, with their log-probabilities.
    pub top: Vec<(u32, f64)>,
}

/// One generated token, as the loop hands it to its caller.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    /// Position in the completion (0-based).
    pub index: usize,
    /// The token.
    pub token: u32,
    /// Text that became final with this token (may be empty).
    pub text: &'a str,
    /// Its log-probabilities, when asked for.
    pub logprob: Option<&'a TokenLogprob>,
}

/// What the caller wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now (the client left): the generation returns what it has with `cancelled` set.
    Cancel,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated token ids (an end-of-turn token included).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub finish: Finish,
    /// The text (stop string excluded).
    pub text: String,
    /// Per generated token, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// blake3 of each step's logits (the prompt's last position first, then one per generated token but the last).
    pub step_digests: Vec<[u8; 32]>,
    /// Whether the caller stopped it early (then `tokens` is a prefix and no receipt may be issued).
    pub cancelled: bool,
    /// Seconds spent evaluating the prompt.
    pub prefill_seconds: f64,
    /// Seconds spent generating after the first token.
    pub decode_seconds: f64,
}

impl Generation {
    /// One digest over every step's logits digest.
    pub fn logits_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("VOUCH_LLM_LOGITS_V1");
        for d in &self.step_digests {
            h.update(d);
        }
        *h.finalize().as_bytes()
    }
}

/// The context window a request runs in.
pub fn context_size(prompt: usize, max_tokens: usize) -> usize {
    (prompt + max_tokens).div_ceil(CONTEXT_ROUNDING) * CONTEXT_ROUNDING
}

fn check_logits(logits: &[f32], vocab: usize) -> Result<(), LlmError> {
    if logits.len() != vocab {
        return Err(LlmError::Logits(format!("{} values for a vocabulary of {vocab}", logits.len())));
    }
    Ok(())
}

/// How a generation runs (neither changes its tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Threads of each forward pass.
    pub threads: usize,
    /// The longest prompt plus completion this node takes (at most the model's trained context).
    pub max_context: usize,
}

/// Runs a completion on `model`, calling `on_step` after each generated token.
pub fn generate(
    model: &dyn LlmModel,
    req: &Completion,
    run: RunOptions,
    on_step: &mut dyn FnMut(Step<'_>) -> Control,
) -> Result<Generation, LlmError> {
    let vocab = model.vocab_size();
    let p = &req.params;
    if req.prompt.is_empty() {
        return Err(LlmError::EmptyPrompt);
    }
    if let Some(&token) = req.prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(LlmError::Token { token, vocab });
    }
    let max_tokens = p.max_tokens as usize;
    let window = (model.context_length() as usize).min(run.max_context);
    if req.prompt.len() + max_tokens > window {
        return Err(LlmError::ContextWindow { prompt: req.prompt.len(), max_tokens, context: window });
    }
    // A function of the request alone (never of this node's limits), so every node runs the same context.
    let n_ctx = context_size(req.prompt.len(), max_tokens);
    let seed = request_digest(req);
    let mut out = Generation {
        tokens: Vec::with_capacity(max_tokens),
        finish: Finish::Length,
        text: String::new(),
        logprobs: vec![],
        step_digests: Vec::with_capacity(max_tokens),
        cancelled: false,
        prefill_seconds: 0.0,
        decode_seconds: 0.0,
    };
    let mut text = TextStream::new(&p.stop);
    let opts = SessionOptions { n_ctx: n_ctx as u32, threads: run.threads.max(1) };
    model.run(opts, &mut |session| {
        let started = std::time::Instant::now();
        let mut logits: Vec<f32> = vec![];
        for chunk in req.prompt.chunks(PREFILL_CHUNK) {
            let l = session.eval(chunk)?;
            check_logits(l, vocab)?;
            logits.clear();
            logits.extend_from_slice(l);
        }
        out.prefill_seconds = started.elapsed().as_secs_f64();
        let decode_started = std::time::Instant::now();
        for index in 0..max_tokens {
            out.step_digests.push(digest_logits(&logits));
            let token = if p.temperature == 0.0 {
                sample::greedy(&logits)
            } else {
                sample::sample(&logits, p.temperature, p.top_p, sample::uniform(&seed, index as u32))
            };
            let lp = p.logprobs.map(|k| {
                let lp = sample::log_softmax(&logits);
                TokenLogprob {
                    token,
                    logprob: lp(token),
                    top: sample::top_k(&logits, k.into()).into_iter().map(|t| (t, lp(t))).collect(),
                }
            });
            out.tokens.push(token);
            let end = model.is_end(token);
            let delta = if end { text.finish() } else { text.push(&model.piece(token)?) };
            if let Some(lp) = lp {
                out.logprobs.push(lp);
            }
            let control = on_step(Step { index, token, text: &delta, logprob: out.logprobs.last() });
            if end || text.stopped() {
                out.finish = Finish::Stop;
                break;
            }
            if control == Control::Cancel {
                out.cancelled = true;
                break;
            }
            if index + 1 == max_tokens {
                break;
            }
            let l = session.eval(&[token])?;
            check_logits(l, vocab)?;
            logits.clear();
            logits.extend_from_slice(l);
        }
        out.decode_seconds = decode_started.elapsed().as_secs_f64();
        Ok(())
    })?;
    out.text = text.text();
    Ok(out)
}

fn digest_logits(logits: &[f32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for v in logits {
        h.update(&v.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// The digest that seeds a request's sampling (the receipt's input digest).
pub fn request_digest(req: &Completion) -> Digest {
    digest_map(&req.to_inputs())
}
