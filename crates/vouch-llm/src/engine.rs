//! The seam to LLM backends. A backend loads a GGUF file into an [`LlmModel`] (shared by concurrent requests) and
//! runs one [`Session`] per request: one sequence, a fresh context, nothing carried over from another request. The
//! decode loop above it ([`crate::generate`]) is the same for every backend, so the determinism rules do not depend on
//! which one runs.

use std::path::Path;
use std::sync::Arc;

use crate::LlmError;

/// An LLM inference backend.
pub trait LlmEngine: Send + Sync {
    /// The engine string recorded in receipts: the engine build and its CPU kernel tier. Quorum executors are drawn
    /// only among nodes that advertise the same string, since another build or tier may round differently.
    fn id(&self) -> String;
    /// Loads a GGUF model for inference (weights memory-mapped where the platform allows).
    fn load(&self, path: &Path) -> Result<Arc<dyn LlmModel>, LlmError>;
    /// Loads only the tokenizer of a GGUF model (to detokenize a receipt offline); [`LlmModel::run`] then fails.
    fn load_vocab(&self, path: &Path) -> Result<Arc<dyn LlmModel>, LlmError>;
}

/// How a session is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Context window of the session, in tokens (prompt and completion).
    pub n_ctx: u32,
    /// Threads of each forward pass (results do not depend on it).
    pub threads: usize,
}

/// A loaded model: its tokenizer, and sessions to run it.
pub trait LlmModel: Send + Sync {
    /// Tokens in the vocabulary; every id below it is valid.
    fn vocab_size(&self) -> usize;
    /// The context the model was trained for.
    fn context_length(&self) -> u32;
    /// Tokenizes `text`, with the model's leading special tokens (BOS) when `add_special`; special tokens written in
    /// the text (`<|im_start|>`) are parsed as such.
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, LlmError>;
    /// The bytes a token stands for in generated text (empty for control tokens such as end-of-turn).
    fn piece(&self, token: u32) -> Result<Vec<u8>, LlmError>;
    /// The token's own text, control tokens included (the `token` of a logprob entry).
    fn token_text(&self, token: u32) -> Result<String, LlmError>;
    /// Whether the token ends the generation (end of sequence or of turn).
    fn is_end(&self, token: u32) -> bool;
    /// The beginning-of-sequence token's text, if the model has one (templates refer to it).
    fn bos_text(&self) -> Option<String>;
    /// The end-of-sequence token's text, if the model has one.
    fn eos_text(&self) -> Option<String>;
    /// Runs one session: `f` evaluates tokens on a fresh context that is dropped when it returns.
    fn run(
        &self,
        opts: SessionOptions,
        f: &mut dyn FnMut(&mut dyn Session) -> Result<(), LlmError>,
    ) -> Result<(), LlmError>;
}

/// One sequence on one context.
pub trait Session {
    /// Evaluates `tokens` at the next positions in one forward pass and returns the logits after the last one
    /// (`vocab_size` values). The caller bounds how many tokens one pass takes (the prefill chunk).
    fn eval(&mut self, tokens: &[u32]) -> Result<&[f32], LlmError>;
}
