//! A bounded cache of compiled models: each model is compiled once (concurrent first requests wait for the
//! same compilation rather than repeating it) and the least recently used is evicted past the capacity.
//!
//! A model is first compiled for every input size (open dimensions symbolic). Some models cannot be typed
//! that way (an op whose output rank depends on a runtime shape); for those, one plan is compiled per
//! distinct set of concrete input shapes, on demand, under the same bound.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;
use vouch_codec::{Dim, ModelId, TensorMap};

use crate::{CompiledModel, Engine, EngineError, ModelInfo};

type Compiled = Result<Arc<dyn CompiledModel>, EngineError>;
type Slot = Arc<OnceLock<Compiled>>;
/// A model, and the concrete input shapes its plan is specialised to (`None`: symbolic, any size).
type Key = (ModelId, Option<Vec<Vec<u64>>>);

/// Compiled models by id, at most `capacity` plans.
pub struct ModelCache {
    engine: Arc<dyn Engine>,
    slots: Mutex<LruCache<Key, Slot>>,
}

fn has_open_dims(info: &ModelInfo) -> bool {
    info.inputs.iter().any(|s| s.shape.as_ref().is_none_or(|d| d.iter().any(|d| !matches!(d, Dim::Fixed(_)))))
}

impl ModelCache {
    /// A cache holding at most `capacity` compiled plans.
    pub fn new(engine: Arc<dyn Engine>, capacity: NonZeroUsize) -> Self {
        Self { engine, slots: Mutex::new(LruCache::new(capacity)) }
    }

    /// The engine's id (for receipts).
    pub fn engine_id(&self) -> String {
        self.engine.id()
    }

    fn slot(&self, key: Key, path: &Path, info: &ModelInfo) -> Compiled {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get_or_insert(key.clone(), || Arc::new(OnceLock::new())).clone()
        };
        slot.get_or_init(|| {
            let _span = tracing::info_span!("engine.compile", model = %key.0, specialised = key.1.is_some()).entered();
            let started = std::time::Instant::now();
            let r = self.engine.compile(path, info, key.1.as_deref());
            tracing::info!(ok = r.is_ok(), ms = started.elapsed().as_millis() as u64, "compiled");
            r
        })
        .clone()
    }

    /// The plan to run `inputs` (already validated against `info`) on model `id`, compiling it from `path` on
    /// first use. Blocking: call from a blocking thread. Failed compilations are remembered too (the bytes
    /// under an id never change).
    pub fn get(&self, id: ModelId, path: &Path, info: &ModelInfo, inputs: &TensorMap) -> Compiled {
        match self.slot((id, None), path, info) {
            Ok(m) => Ok(m),
            Err(e) if has_open_dims(info) => {
                let shapes = info
                    .inputs
                    .iter()
                    .map(|s| inputs.get(&s.name).map(|t| t.shape().to_vec()).unwrap_or_default())
                    .collect();
                self.slot((id, Some(shapes)), path, info).map_err(|_| e)
            }
            Err(e) => Err(e),
        }
    }

    /// Checks that the engine can run the model at all: compiled for any size, or else for the smallest
    /// size (every open dimension 1). Warms the cache as a side effect.
    pub fn check(&self, id: ModelId, path: &Path, info: &ModelInfo) -> Result<(), EngineError> {
        match self.slot((id, None), path, info) {
            Ok(_) => Ok(()),
            Err(e) if has_open_dims(info) => {
                let ones = info
                    .inputs
                    .iter()
                    .map(|s| s.shape.iter().flatten().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect())
                    .collect();
                self.slot((id, Some(ones)), path, info).map(drop).map_err(|_| e)
            }
            Err(e) => Err(e),
        }
    }

    /// How many plans are cached.
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
