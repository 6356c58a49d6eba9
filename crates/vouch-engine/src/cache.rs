//! A bounded cache of compiled models: each model is compiled once (concurrent first requests wait for the
//! same compilation rather than repeating it) and the least recently used is evicted past the capacity.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;
use vouch_codec::ModelId;

use crate::{CompiledModel, Engine, EngineError, ModelInfo};

type Slot = Arc<OnceLock<Result<Arc<dyn CompiledModel>, EngineError>>>;

/// Compiled models by id, at most `capacity` of them.
pub struct ModelCache {
    engine: Arc<dyn Engine>,
    slots: Mutex<LruCache<ModelId, Slot>>,
}

impl ModelCache {
    /// A cache holding at most `capacity` compiled models.
    pub fn new(engine: Arc<dyn Engine>, capacity: NonZeroUsize) -> Self {
        Self { engine, slots: Mutex::new(LruCache::new(capacity)) }
    }

    /// The engine's id (for receipts).
    pub fn engine_id(&self) -> String {
        self.engine.id()
    }

    /// The compiled model for `id`, compiling it from `path` on first use. Blocking: call from a
    /// blocking thread. A failed compilation is remembered too (model bytes never change under an id).
    pub fn get(&self, id: ModelId, path: &Path, info: &ModelInfo) -> Result<Arc<dyn CompiledModel>, EngineError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get_or_insert(id, || Arc::new(OnceLock::new())).clone()
        };
        slot.get_or_init(|| {
            let _span = tracing::info_span!("engine.compile", model = %id).entered();
            let started = std::time::Instant::now();
            let r = self.engine.compile(path, info);
            tracing::info!(ok = r.is_ok(), ms = started.elapsed().as_millis() as u64, "compiled");
            r
        })
        .clone()
    }

    /// How many models are cached.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
