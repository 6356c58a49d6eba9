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

/// Inference with tract-onnx. Every tensor a run produces is bounded by `max_elements`.
#[derive(Debug, Clone)]
pub struct TractEngine {
    max_elements: u64,
}

impl Default for TractEngine {
    fn default() -> Self {
        Self { max_elements: DEFAULT_MAX_ELEMENTS }
    }
}

/// The default bound on any tensor of a run: 64 Mi elements (256 MiB of f32).
pub const DEFAULT_MAX_ELEMENTS: u64 = 1 << 26;

impl TractEngine {
    /// An engine whose runs refuse any tensor of more than `max_elements` elements.
    pub fn with_max_elements(max_elements: u64) -> Self {
        Self { max_elements }
    }
}

/// A tensor over the limit, as the run's error (told apart from other failures after the run).
#[derive(Debug)]
struct OverLimit {
    node: String,
    elements: u64,
    max: u64,
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {:?} would produce {} elements (limit {})", self.node, self.elements, self.max)
    }
}

impl std::error::Error for OverLimit {}

/// The element count of an output fact once the run's symbols are bound, if it follows from them.
fn known_elements(fact: &TypedFact, symbols: &SymbolValues) -> Option<u64> {
    fact.shape.iter().try_fold(1u64, |n, d| {
        let v = d.eval(symbols).to_i64().ok()?;
        n.checked_mul(u64::try_from(v).ok()?)
    })
}

/// The length a `Range` node will produce, from its (scalar) start, end and step.
fn range_len(node: &TypedNode, inputs: &[TValue]) -> Option<u64> {
    node.op_as::<tract_onnx::tract_core::ops::array::Range>()?;
    let [start, end, step] = inputs else { return None };
    let f = |t: &TValue| t.cast_to_scalar::<f64>().ok();
    let (start, end, step) = (f(start)?, f(end)?, f(step)?);
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
        return None;
    }
    Some(((end - start) / step).ceil().max(0.0).min(u64::MAX as f64) as u64)
}

/// Evaluates one node, refusing first any output whose size is known (from the bound symbols, or a `Range`'s
/// inputs) and above `max`, and after the fact any output that turned out larger (sizes that depend on other
/// ops' input values).
fn bounded_eval(
    max: u64,
    ctx: &tract_onnx::tract_core::plan::EvalContext,
    state: Option<&mut (dyn tract_onnx::tract_core::ops::OpState + 'static)>,
    node: &TypedNode,
    inputs: TVec<TValue>,
) -> TractResult<TVec<TValue>> {
    let over = |elements| OverLimit { node: node.name.clone(), elements, max };
    for out in &node.outputs {
        if let Some(n) = known_elements(&out.fact, ctx.symbols).or_else(|| range_len(node, &inputs))
            && n > max
        {
            return Err(over(n).into());
        }
    }
    let outputs = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs)?;
    if let Some(big) = outputs.iter().find(|t| t.len() as u64 > max) {
        return Err(over(big.len() as u64).into());
    }
    Ok(outputs)
}

/// [`bounded_eval`] with its limit, as the plan's node evaluator.
fn evaluator(
    max: u64,
) -> impl for<'a, 'b, 'c> FnMut(
    &'a tract_onnx::tract_core::plan::EvalContext<'a>,
    Option<&'b mut (dyn tract_onnx::tract_core::ops::OpState + 'static)>,
    &'c TypedNode,
    TVec<TValue>,
) -> TractResult<TVec<TValue>> {
    move |ctx, state, node, inputs| bounded_eval(max, ctx, state, node, inputs)
}

struct TractModel {
    plan: Arc<TypedRunnableModel>,
    max_elements: u64,
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
            let max_elements = self.max_elements;
            Ok(Arc::new(TractModel { plan, max_elements, inputs, outputs, idle }) as Arc<dyn CompiledModel>)
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
            let run_err = |e: TractError| match e.downcast_ref::<OverLimit>() {
                Some(o) => EngineError::TooLarge { node: o.node.clone(), elements: o.elements, max: o.max },
                None => EngineError::Run(format!("{e:#}")),
            };
            let max = self.max_elements;
            let eval = evaluator(max);
            let reused = self.idle.as_ref().and_then(|idle| idle.lock().unwrap_or_else(|p| p.into_inner()).pop());
            let mut state = match reused {
                Some(s) => s,
                None => self.plan.spawn().map_err(run_err)?,
            };
            let out = state.run_plan_with_eval(values, eval).map_err(run_err)?;
            if let Some(idle) = &self.idle {
                idle.lock().unwrap_or_else(|p| p.into_inner()).push(state);
            }
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
