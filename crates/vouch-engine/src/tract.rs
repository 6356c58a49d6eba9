//! The tract backend: ONNX models loaded, typed with symbolic dimensions, optimised once, run many times.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use vouch_codec::{Dim, TensorMap};

use crate::convert::{from_tract, to_tract};
use crate::{CompiledModel, Engine, EngineError, ModelInfo, contain};

/// The tract version this build links (recorded in receipts).
pub const TRACT_VERSION: &str = "0.23.9";

/// Inference with tract-onnx.
#[derive(Debug, Default, Clone)]
pub struct TractEngine;

struct TractModel {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Idle run states, reused to skip per-run state set-up. Only for plans whose ops keep no state between
    /// runs (checked at compile time), so a reused state can never carry one request into the next.
    idle: Option<std::sync::Mutex<Vec<TypedSimpleState>>>,
}

impl Engine for TractEngine {
    fn id(&self) -> String {
        format!("tract-onnx {TRACT_VERSION}")
    }

    fn compile(
        &self,
        path: &Path,
        info: &ModelInfo,
        shapes: Option<&[Vec<u64>]>,
    ) -> Result<Arc<dyn CompiledModel>, EngineError> {
        contain(|| {
            let c = |e: TractError| EngineError::Compile(format!("{e:#}"));
            let mut model = tract_onnx::onnx().model_for_path(path).map_err(c)?;
            if model.input_outlets().map_err(c)?.len() != info.inputs.len() {
                return Err(EngineError::Compile(format!(
                    "engine sees {} inputs, the signature declares {}",
                    model.input_outlets().map_err(c)?.len(),
                    info.inputs.len()
                )));
            }
            // Dimensions the file leaves unnamed become fresh symbols, so the model is typed once for
            // every size and each request binds them to its own.
            for (ix, spec) in info.inputs.iter().enumerate() {
                let fact = model.input_fact(ix).map_err(c)?.clone();
                let dt = fact
                    .datum_type()
                    .ok_or_else(|| EngineError::Compile(format!("input {} has no type", spec.name)))?;
                if let Some(concrete) = shapes.and_then(|s| s.get(ix)) {
                    let dims: TVec<TDim> = concrete.iter().map(|d| TDim::Val(*d as i64)).collect();
                    model.set_input_fact(ix, InferenceFact::dt_shape(dt, dims)).map_err(c)?;
                    continue;
                }
                let Some(shape) = &spec.shape else { continue };
                let dims: TVec<TDim> = shape
                    .iter()
                    .enumerate()
                    .map(|(axis, d)| match d {
                        Dim::Fixed(n) => TDim::Val(*n as i64),
                        Dim::Symbol(_) | Dim::Unknown => {
                            match fact.shape.dims().nth(axis).and_then(|f| f.concretize()) {
                                Some(known) => known,
                                None => model.symbols.new_with_prefix(&format!("in{ix}_{axis}_")).to_dim(),
                            }
                        }
                    })
                    .collect();
                model.set_input_fact(ix, InferenceFact::dt_shape(dt, dims)).map_err(c)?;
            }
            let plan = model.into_optimized().map_err(c)?.into_runnable().map_err(c)?;
            let inputs = info.inputs.iter().map(|s| s.name.clone()).collect();
            let outputs = info.outputs.iter().map(|s| s.name.clone()).collect();
            let probe = plan.spawn().map_err(c)?;
            let stateless = probe.op_states.iter().all(Option::is_none);
            let idle = stateless.then(|| std::sync::Mutex::new(vec![probe]));
            Ok(Arc::new(TractModel { plan, inputs, outputs, idle }) as Arc<dyn CompiledModel>)
        })
    }
}

impl CompiledModel for TractModel {
    fn run(&self, inputs: &TensorMap) -> Result<TensorMap, EngineError> {
        contain(|| {
            let values: TVec<TValue> = self
                .inputs
                .iter()
                .map(|name| {
                    let t = inputs.get(name).ok_or_else(|| EngineError::Run(format!("missing input {name:?}")))?;
                    Ok(to_tract(name, t)?.into_tvalue())
                })
                .collect::<Result<_, EngineError>>()?;
            let run_err = |e: TractError| EngineError::Run(format!("{e:#}"));
            let out = match &self.idle {
                Some(idle) => {
                    let reused = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let mut state = match reused {
                        Some(s) => s,
                        None => self.plan.spawn().map_err(run_err)?,
                    };
                    let out = state.run(values).map_err(run_err)?;
                    idle.lock().unwrap_or_else(|p| p.into_inner()).push(state);
                    out
                }
                None => self.plan.run(values).map_err(run_err)?,
            };
            if out.len() != self.outputs.len() {
                return Err(EngineError::Run(format!(
                    "engine returned {} outputs, expected {}",
                    out.len(),
                    self.outputs.len()
                )));
            }
            self.outputs.iter().zip(out.iter()).map(|(name, t)| Ok((name.clone(), from_tract(name, t)?))).collect()
        })
    }
}
