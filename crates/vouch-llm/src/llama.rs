//! The llama.cpp backend (`llama-cpp-2`, which vendors llama.cpp and builds it with cmake for the host's
//! instruction set). Weights are memory-mapped, so a loaded model costs page cache, not heap, and is shared by every
//! session. Each session is a fresh context holding one sequence; contexts are created one at a time (llama.cpp
//! mutates the model while it creates one).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use crate::engine::{LlmEngine, LlmModel, Session, SessionOptions};
use crate::generate::PREFILL_CHUNK;
use crate::{LlmError, contain};

/// The llama.cpp sources this build compiles (the `llama-cpp-sys-2` release that vendors them; Cargo.lock pins it).
pub const LLAMA_CPP_SYS_VERSION: &str = "0.1.161";

fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp's log lines go to tracing (target `llama-cpp-2`), not to stderr.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Load(format!("llama.cpp backend: {e}")))
}

/// The CPU kernel tier llama.cpp runs here: the host's instruction-set extensions up to AVX2 (`.cargo/config.toml`
/// builds llama.cpp for the host less AVX-512, AVX-VNNI and AMX), which decide its kernels and so its rounding.
pub fn kernel_tier() -> String {
    let mut f: Vec<&str> = vec![std::env::consts::ARCH];
    macro_rules! feature {
        ($($name:literal),*) => {$(if cfg!(target_feature = $name) { f.push($name); })*};
    }
    feature!("sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "neon", "dotprod", "i8mm", "sve");
    f.join("+")
}

/// The llama.cpp engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct LlamaEngine;

impl LlamaEngine {
    /// The engine (initializes llama.cpp's backend once per process on first use).
    pub fn new() -> Self {
        Self
    }
}

impl LlmEngine for LlamaEngine {
    fn id(&self) -> String {
        format!("llama.cpp (llama-cpp-sys-2 {LLAMA_CPP_SYS_VERSION}) cpu {}", kernel_tier())
    }

    fn load(&self, path: &Path) -> Result<Arc<dyn LlmModel>, LlmError> {
        load(path, false)
    }

    fn load_vocab(&self, path: &Path) -> Result<Arc<dyn LlmModel>, LlmError> {
        load(path, true)
    }
}

fn load(path: &Path, vocab_only: bool) -> Result<Arc<dyn LlmModel>, LlmError> {
    let backend = backend()?;
    contain(|| {
        let params = LlamaModelParams::default().with_use_mmap(true).with_vocab_only(vocab_only);
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| LlmError::Load(e.to_string()))?;
        let vocab = usize::try_from(model.n_vocab()).map_err(|_| LlmError::Load("negative vocabulary size".into()))?;
        let context = model.n_ctx_train();
        let v = model.vocab();
        let text = |t: LlamaToken| {
            (t.0 >= 0 && (t.0 as usize) < vocab)
                .then(|| String::from_utf8_lossy(&v.token_to_piece(t, true, None)).into_owned())
        };
        let bos = text(v.bos());
        let eos = text(v.eos());
        let add_bos = v.should_add_bos();
        Ok(Arc::new(Llama { model, vocab, context, bos, eos, add_bos, vocab_only, create: Mutex::new(()) })
            as Arc<dyn LlmModel>)
    })
}

struct Llama {
    model: LlamaModel,
    vocab: usize,
    context: u32,
    bos: Option<String>,
    eos: Option<String>,
    add_bos: bool,
    vocab_only: bool,
    /// Held while a context is created.
    create: Mutex<()>,
}

impl Llama {
    fn token(&self, token: u32) -> Result<LlamaToken, LlmError> {
        if (token as usize) < self.vocab {
            Ok(LlamaToken(token as i32))
        } else {
            Err(LlmError::Token { token, vocab: self.vocab })
        }
    }
}

impl LlmModel for Llama {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn context_length(&self) -> u32 {
        self.context
    }

    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, LlmError> {
        contain(|| {
            let tokens = self.model.vocab().tokenize(text.as_bytes(), add_special && self.add_bos, true);
            tokens
                .into_iter()
                .map(|t| u32::try_from(t.0).map_err(|_| LlmError::Token { token: 0, vocab: self.vocab }))
                .collect()
        })
    }

    fn piece(&self, token: u32) -> Result<Vec<u8>, LlmError> {
        let t = self.token(token)?;
        contain(|| Ok(self.model.vocab().token_to_piece(t, false, None)))
    }

    fn token_text(&self, token: u32) -> Result<String, LlmError> {
        let t = self.token(token)?;
        contain(|| Ok(String::from_utf8_lossy(&self.model.vocab().token_to_piece(t, true, None)).into_owned()))
    }

    fn is_end(&self, token: u32) -> bool {
        self.token(token).is_ok_and(|t| self.model.vocab().is_eog(t))
    }

    fn bos_text(&self) -> Option<String> {
        self.bos.clone()
    }

    fn eos_text(&self) -> Option<String> {
        self.eos.clone()
    }

    fn run(
        &self,
        opts: SessionOptions,
        f: &mut dyn FnMut(&mut dyn Session) -> Result<(), LlmError>,
    ) -> Result<(), LlmError> {
        if self.vocab_only {
            return Err(LlmError::Context("this model was loaded for its vocabulary only".into()));
        }
        let backend = backend()?;
        let threads = i32::try_from(opts.threads.clamp(1, 256)).unwrap_or(1);
        let n_ctx = std::num::NonZeroU32::new(opts.n_ctx.max(1));
        let params = LlamaContextParams::default()
            .with_n_ctx(n_ctx)
            .with_n_batch(PREFILL_CHUNK as u32)
            .with_n_ubatch(PREFILL_CHUNK as u32)
            .with_n_seq_max(1)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            // Flash attention's CPU kernel splits a decode step's keys into one chunk per thread and merges the
            // partial sums (from 512 cached tokens on), so its logits depend on the thread count. The plain
            // attention path computes every output element in one thread: the same bits with 1 or 16 threads.
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
        let ctx = {
            let _one_at_a_time = self.create.lock().unwrap_or_else(|p| p.into_inner());
            contain(|| self.model.new_context(backend, params).map_err(|e| LlmError::Context(e.to_string())))?
        };
        let mut session = LlamaSession { model: self, ctx, batch: LlamaBatch::new(PREFILL_CHUNK, 1), pos: 0 };
        f(&mut session)
    }
}

struct LlamaSession<'m> {
    model: &'m Llama,
    ctx: llama_cpp_2::context::LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    pos: i32,
}

impl Session for LlamaSession<'_> {
    fn eval(&mut self, tokens: &[u32]) -> Result<&[f32], LlmError> {
        if tokens.is_empty() || tokens.len() > PREFILL_CHUNK {
            return Err(LlmError::Decode(format!(
                "a forward pass takes 1 to {PREFILL_CHUNK} tokens, got {}",
                tokens.len()
            )));
        }
        if self.pos as usize + tokens.len() > self.ctx.n_ctx() as usize {
            return Err(LlmError::Decode(format!("position {} is past the context of {}", self.pos, self.ctx.n_ctx())));
        }
        self.batch.clear();
        let last = tokens.len() - 1;
        for (i, &t) in tokens.iter().enumerate() {
            let token = self.model.token(t)?;
            self.batch.add(token, self.pos + i as i32, &[0], i == last).map_err(|e| LlmError::Decode(e.to_string()))?;
        }
        let (ctx, batch) = (&mut self.ctx, &mut self.batch);
        contain(|| ctx.decode(batch).map_err(|e| LlmError::Decode(e.to_string())))?;
        self.pos += tokens.len() as i32;
        let ctx = &self.ctx;
        contain(|| Ok(ctx.get_logits_ith(last as i32).len()))?;
        Ok(self.ctx.get_logits_ith(last as i32))
    }
}
