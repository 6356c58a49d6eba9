//! Language models: loaded GGUF models (memory-mapped, shared by every request, a bounded LRU), the generation
//! scheduler (at most `llm_parallel` generations at once, at most `llm_queue` waiting, more answered `429`), and
//! completions with their receipts.
//!
//! A completion is a model call like any other: its receipt's inputs are the prompt's token ids and the canonical
//! sampling parameters, its outputs the generated token ids and the finish reason ([`vouch_llm::request`]), so the
//! signed and quorum modes, the ledger and `vouch verify` treat it as they treat an ONNX inference.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use vouch_api::ModelVersion;
use vouch_codec::{ModelId, Receipt, TensorMap};
use vouch_llm::request::{self, Completion};
use vouch_llm::{Control, Generation, LlmEngine, LlmError, LlmModel, RunOptions, TokenLogprob};

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::execution::{Settle, finish};

type Loaded = Result<Arc<dyn LlmModel>, LlmError>;

/// The node's language-model runtime.
pub(crate) struct Llm {
    engine: Arc<dyn LlmEngine>,
    engine_id: String,
    models: Mutex<LruCache<ModelId, Arc<OnceLock<Loaded>>>>,
    running: Arc<Semaphore>,
    parallel: usize,
    waiting: Arc<AtomicUsize>,
    queue: usize,
    threads: usize,
    max_context: usize,
}

/// A place among the running generations; while held, one generation runs.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Llm {
    pub fn new(engine: Arc<dyn LlmEngine>, config: &crate::NodeConfig) -> Self {
        let cores = std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1);
        let parallel = if config.llm_parallel == 0 { cores } else { config.llm_parallel };
        Self {
            engine_id: engine.id(),
            engine,
            models: Mutex::new(LruCache::new(NonZeroUsize::new(config.llm_model_cache).unwrap_or(NonZeroUsize::MIN))),
            running: Arc::new(Semaphore::new(parallel)),
            parallel,
            waiting: Arc::new(AtomicUsize::new(0)),
            queue: config.llm_queue,
            threads: if config.llm_threads == 0 { cores } else { config.llm_threads },
            max_context: config.llm_max_context.max(1),
        }
    }

    /// The engine string of this node's LLM receipts.
    pub fn engine_id(&self) -> &str {
        &self.engine_id
    }

    /// The loaded model `id` (stored at `path`), loading it on first use; concurrent first requests wait for one
    /// load. Blocking: call from a blocking thread. A failed load is remembered (the bytes under an id never change).
    pub fn model(&self, id: ModelId, path: &Path) -> Result<Arc<dyn LlmModel>, ApiError> {
        let slot = {
            let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
            models.get_or_insert(id, || Arc::new(OnceLock::new())).clone()
        };
        slot.get_or_init(|| {
            let started = std::time::Instant::now();
            let r = self.engine.load(path);
            tracing::info!(model = %id, ok = r.is_ok(), ms = started.elapsed().as_millis() as u64, "llm.load");
            r
        })
        .clone()
        .map_err(|e| ApiError::new(Code::ModelNotRunnable, e.to_string()))
    }

    /// Waits for a place to generate: at once when one is free, else in the queue; a full queue is `429
    /// queue_full` (the client retries after a second).
    pub async fn slot(&self) -> Result<Slot, ApiError> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(Slot { _permit: p });
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                Code::QueueFull,
                format!(
                    "{} generations are running and {} waiting, this node's limit; retry shortly",
                    self.parallel, self.queue
                ),
            ));
        }
        let _waiting = Waiting(self.waiting.clone());
        let p = self.running.clone().acquire_owned().await.map_err(ApiError::internal)?;
        Ok(Slot { _permit: p })
    }

    /// How a generation starting now runs: the cores shared among the generations running.
    pub fn run_options(&self) -> RunOptions {
        let active = self.parallel.saturating_sub(self.running.available_permits()).max(1);
        RunOptions { threads: (self.threads / active).max(1), max_context: self.max_context }
    }

    /// The longest prompt plus completion a model runs with on this node.
    pub fn window(&self, model: &dyn LlmModel) -> usize {
        (model.context_length() as usize).min(self.max_context)
    }
}

/// One generated token, for a client that streams.
#[derive(Debug, Clone)]
pub(crate) struct TokenEvent {
    /// Text that became final with it.
    pub text: String,
    /// Its log-probabilities, when asked for.
    pub logprob: Option<TokenLogprob>,
}

/// A finished completion and its stored receipt.
pub(crate) struct Completed {
    pub generation: Generation,
    pub receipt: Receipt,
}

/// Generates a completion on the blocking pool. Tokens go to `events` as they come; the generation stops when
/// `events`' receiver is gone or `cancel` is set (the client left).
pub(crate) async fn generate(
    s: &Arc<NodeState>,
    record: &ModelVersion,
    completion: &Completion,
    events: Option<mpsc::Sender<TokenEvent>>,
    cancel: Arc<AtomicBool>,
) -> Result<Generation, ApiError> {
    let _slot = s.llm.slot().await?;
    if cancel.load(Ordering::SeqCst) || events.as_ref().is_some_and(mpsc::Sender::is_closed) {
        s.metrics.llm_cancelled.inc();
        return Err(ApiError::new(Code::Cancelled, "the client left before the completion started"));
    }
    let st = s.clone();
    let record = record.clone();
    let completion = completion.clone();
    let generation = tokio::task::spawn_blocking(move || {
        let path = st.hub.blob_path(&record.id)?;
        let model = st.llm.model(record.id, &path)?;
        let run = st.llm.run_options();
        let _span = tracing::debug_span!("llm.generate", model = %record.id, threads = run.threads).entered();
        let mut on_step = |step: vouch_llm::Step<'_>| {
            if cancel.load(Ordering::SeqCst) {
                return Control::Cancel;
            }
            if let Some(tx) = &events {
                let ev = TokenEvent { text: step.text.to_owned(), logprob: step.logprob.cloned() };
                if tx.blocking_send(ev).is_err() {
                    return Control::Cancel;
                }
            }
            Control::Continue
        };
        let g = vouch_llm::generate(model.as_ref(), &completion, run, &mut on_step).map_err(llm_error)?;
        st.metrics.llm_tokens.inc_by(g.tokens.len() as u64);
        st.metrics.llm_prefill_seconds.observe(g.prefill_seconds);
        if g.tokens.len() > 1 {
            st.metrics.llm_decode_seconds_per_token.observe(g.decode_seconds / (g.tokens.len() - 1) as f64);
        }
        Ok::<_, ApiError>(g)
    })
    .await??;
    if generation.cancelled {
        s.metrics.llm_cancelled.inc();
        return Err(ApiError::new(Code::Cancelled, "the client left; generation stopped and no receipt was issued"));
    }
    Ok(generation)
}

/// A `signed` (or, with `tee`, a `tee`) completion: generated here, its receipt signed, stored and settled.
pub(crate) async fn complete(
    s: &Arc<NodeState>,
    record: &ModelVersion,
    completion: &Completion,
    events: Option<mpsc::Sender<TokenEvent>>,
    cancel: Arc<AtomicBool>,
    tee: bool,
) -> Result<Completed, ApiError> {
    let evidence = if tee { Some(crate::service::tee::evidence(s)?) } else { None };
    let generation = generate(s, record, completion, events, cancel).await?;
    let outputs = request::outputs(&generation.tokens, generation.finish);
    // The prompt is what the answer is about: an LLM receipt always carries it.
    let issuer = s.issuer_for(record);
    let receipt = match evidence {
        Some(ev) => {
            let r = issuer.tee(record.id, rand::random(), completion.to_inputs(), true, outputs, ev);
            crate::service::tee::self_check(s, &r)?;
            r
        }
        None => issuer.signed(record.id, rand::random(), completion.to_inputs(), true, outputs),
    };
    let receipt = finish(s, receipt, Settle::Here).await?;
    s.metrics.llm_completions.inc();
    Ok(Completed { generation, receipt })
}

/// Runs a completion given as receipt inputs (a quorum executor's share): the generated outputs.
pub(crate) async fn run_inputs(
    s: &Arc<NodeState>,
    record: &ModelVersion,
    inputs: &TensorMap,
) -> Result<TensorMap, ApiError> {
    let completion = Completion::from_inputs(inputs).map_err(|e| ApiError::new(Code::InvalidTensor, e.to_string()))?;
    let g = generate(s, record, &completion, None, Arc::new(AtomicBool::new(false))).await?;
    Ok(request::outputs(&g.tokens, g.finish))
}

/// The text of generated `tokens` under `stops` (what the client was sent).
pub(crate) fn render(model: &dyn LlmModel, tokens: &[u32], stops: &[String]) -> Result<String, ApiError> {
    let mut pieces = Vec::with_capacity(tokens.len());
    for &t in tokens {
        if !model.is_end(t) {
            pieces.push(model.piece(t).map_err(llm_error)?);
        }
    }
    Ok(vouch_llm::text::render(pieces.iter().map(Vec::as_slice), stops))
}

/// An engine or generation failure as an API error.
pub(crate) fn llm_error(e: LlmError) -> ApiError {
    let code = match &e {
        LlmError::ContextWindow { .. } => Code::ContextLengthExceeded,
        LlmError::EmptyPrompt | LlmError::Token { .. } => Code::InvalidPrompt,
        LlmError::Load(_) => Code::ModelNotRunnable,
        LlmError::Panic(_) => Code::EngineFault,
        LlmError::Context(_) | LlmError::Decode(_) | LlmError::Logits(_) => Code::InferenceFailed,
    };
    let details = match &e {
        LlmError::ContextWindow { prompt, max_tokens, context } => Some(serde_json::json!({
            "prompt_tokens": prompt, "max_tokens": max_tokens, "context_window": context, "param": "messages"
        })),
        _ => None,
    };
    ApiError { code, message: e.to_string(), details }
}
