//! Verifiable LLM serving.
//!
//! - [`gguf`]: a bounded inspection of a GGUF header (what a pushed model is, read without trusting the file).
//! - [`engine`]: the seam to inference backends ([`LlmEngine`], [`LlmModel`], [`Session`]); [`llama`] is the
//!   llama.cpp backend.
//! - [`request`]: a completion as receipt tensors: the prompt's token ids and the canonical sampling parameters in,
//!   the output token ids and the finish reason out.
//! - [`generate`]: the decode loop every backend shares, where the determinism rules live (one sequence per forward
//!   pass, a fixed prefill chunk, no cache across requests, greedy ties to the lowest id, sampling seeded by the
//!   request digest), and [`sample`] its samplers.
//! - [`text`]: tokens to text (stop strings, UTF-8 across token boundaries) the same way online and offline.
//! - [`template`]: chat messages to a prompt, with the GGUF's Jinja template or the architecture's turn format.

pub mod engine;
pub mod generate;
pub mod gguf;
pub mod llama;
pub mod request;
pub mod sample;
pub mod template;
pub mod text;

pub use engine::{LlmEngine, LlmModel, Session, SessionOptions};
pub use generate::{Control, Finish, Generation, RunOptions, Step, TokenLogprob, generate};
pub use gguf::{GgufError, GgufInfo, inspect};
pub use llama::LlamaEngine;
pub use request::{Completion, Params, RequestError};
pub use template::{Message, TemplateError};

/// Failures of an engine or of a generation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The engine could not load the model.
    #[error("model cannot be loaded: {0}")]
    Load(String),
    /// The engine could not set up a context for the request.
    #[error("cannot create an inference context: {0}")]
    Context(String),
    /// A forward pass failed.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// A token id outside the vocabulary.
    #[error("token {token} is outside the vocabulary of {vocab} tokens")]
    Token {
        /// The id.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The prompt and the completion do not fit the context window.
    #[error(
        "the prompt has {prompt} tokens and max_tokens is {max_tokens}: {} tokens, above the context window of {context} tokens",
        prompt + max_tokens
    )]
    ContextWindow {
        /// Prompt tokens.
        prompt: usize,
        /// Completion tokens asked for.
        max_tokens: usize,
        /// The window.
        context: usize,
    },
    /// The prompt is empty.
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    /// The engine returned logits of the wrong length or with NaN.
    #[error("the engine returned invalid logits: {0}")]
    Logits(String),
    /// The engine panicked; the panic was contained.
    #[error("engine fault (contained): {0}")]
    Panic(String),
}

/// Runs `f`, turning a panic into [`LlmError::Panic`]: a third-party engine must not bring the node down.
pub(crate) fn contain<T>(f: impl FnOnce() -> Result<T, LlmError>) -> Result<T, LlmError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(LlmError::Panic(msg))
        }
    }
}
