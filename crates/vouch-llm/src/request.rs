//! A completion as receipt tensors, so every mode (signed, quorum) and every verifier treats an LLM call like any
//! other model call:
//!
//! | tensor | dtype | shape | holds |
//! |---|---|---|---|
//! | input `prompt` | u32 | `[n]` | the prompt's token ids, exactly as evaluated (template and BOS applied) |
//! | input `request` | string | `[]` | the canonical sampling parameters ([`Params::canonical`]) |
//! | output `tokens` | u32 | `[m]` | the generated token ids, the final end-of-turn token included |
//! | output `finish_reason` | string | `[]` | `stop` (end of turn or a stop string) or `length` |
//!
//! The receipt's input digest covers both inputs, so the prompt, every sampling parameter, the seed and the limits
//! are bound by the executor's signature; the output digest binds the tokens.

use serde::{Deserialize, Serialize};
use vouch_codec::{DType, Dim, Tensor, TensorData, TensorMap, TensorSpec};

use crate::generate::Finish;

/// Input: the prompt's token ids.
pub const PROMPT: &str = "prompt";
/// Input: the canonical sampling parameters.
pub const REQUEST: &str = "request";
/// Output: the generated token ids.
pub const TOKENS: &str = "tokens";
/// Output: why generation stopped.
pub const FINISH_REASON: &str = "finish_reason";
/// Version of the parameter encoding.
pub const PARAMS_VERSION: u32 = 1;

/// Most completion tokens one request may ask for.
pub const MAX_COMPLETION_TOKENS: u32 = 1 << 16;
/// Most stop strings.
pub const MAX_STOPS: usize = 4;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 256;
/// Most alternatives per position in `top_logprobs`.
pub const MAX_TOP_LOGPROBS: u8 = 20;

/// Why a request's parameters or tensors are refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// A parameter out of its range.
    #[error("{param}: {reason}")]
    Param {
        /// The parameter (OpenAI's name).
        param: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The tensors are not a completion request.
    #[error("not a completion request: {0}")]
    Tensors(String),
    /// The `request` tensor is not in canonical form.
    #[error("the request parameters are not canonical: {0}")]
    NotCanonical(String),
}

fn param(param: &'static str, reason: impl Into<String>) -> RequestError {
    RequestError::Param { param, reason: reason.into() }
}

/// The sampling parameters and limits of one completion: everything besides the prompt that decides its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Encoding version ([`PARAMS_VERSION`]).
    pub v: u32,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0: greedy (ties to the lowest token id); above: sampling at this temperature.
    pub temperature: f64,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f64,
    /// The sampling seed (with the rest of the request it seeds the generator); `None` only when greedy.
    pub seed: Option<u64>,
    /// Generation stops at the first of these strings, which the text does not include.
    pub stop: Vec<String>,
    /// Alternatives reported per position when log-probabilities are asked for (`None`: not asked).
    pub logprobs: Option<u8>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            v: PARAMS_VERSION,
            max_tokens: 16,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            stop: vec![],
            logprobs: None,
        }
    }
}

impl Params {
    /// Checks every parameter's range (the errors name OpenAI's parameter).
    pub fn check(&self) -> Result<(), RequestError> {
        if self.v != PARAMS_VERSION {
            return Err(param("v", format!("parameter encoding {} is not supported (1 is)", self.v)));
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_COMPLETION_TOKENS {
            return Err(param("max_tokens", format!("must be 1 to {MAX_COMPLETION_TOKENS}, got {}", self.max_tokens)));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(param("temperature", format!("must be between 0 and 2, got {}", self.temperature)));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(param("top_p", format!("must be above 0 and at most 1, got {}", self.top_p)));
        }
        if self.temperature > 0.0 && self.seed.is_none() {
            return Err(param("seed", "sampling (temperature > 0) needs a seed"));
        }
        if self.stop.len() > MAX_STOPS {
            return Err(param("stop", format!("at most {MAX_STOPS} stop strings, got {}", self.stop.len())));
        }
        if let Some(s) = self.stop.iter().find(|s| s.is_empty() || s.len() > MAX_STOP_BYTES) {
            return Err(param(
                "stop",
                format!("each stop string must have 1 to {MAX_STOP_BYTES} bytes, got {}", s.len()),
            ));
        }
        if self.logprobs.is_some_and(|k| k > MAX_TOP_LOGPROBS) {
            return Err(param("top_logprobs", format!("must be 0 to {MAX_TOP_LOGPROBS}")));
        }
        Ok(())
    }

    /// The canonical encoding: compact JSON with the fields in declaration order and floats in their shortest
    /// round-trip form. One set of parameters has exactly one encoding ([`Params::from_canonical`] refuses others).
    pub fn canonical(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks a canonical encoding.
    pub fn from_canonical(s: &str) -> Result<Self, RequestError> {
        let p: Params = serde_json::from_str(s).map_err(|e| RequestError::NotCanonical(e.to_string()))?;
        if p.canonical() != s {
            return Err(RequestError::NotCanonical(format!("expected {}", p.canonical())));
        }
        p.check()?;
        Ok(p)
    }
}

/// A completion request: prompt tokens and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// The parameters.
    pub params: Params,
}

impl Completion {
    /// The receipt's input tensors.
    pub fn to_inputs(&self) -> TensorMap {
        let mut m = TensorMap::new();
        // Shapes match the data by construction.
        if let Ok(t) = Tensor::new(vec![self.prompt.len() as u64], TensorData::U32(self.prompt.clone())) {
            m.insert(PROMPT.into(), t);
        }
        if let Ok(t) = Tensor::new(vec![], TensorData::String(vec![self.params.canonical()])) {
            m.insert(REQUEST.into(), t);
        }
        m
    }

    /// Reads a request from receipt input tensors, checking their names, types and the parameters.
    pub fn from_inputs(inputs: &TensorMap) -> Result<Self, RequestError> {
        let names: Vec<&str> = inputs.keys().map(String::as_str).collect();
        if names != [PROMPT, REQUEST] {
            return Err(RequestError::Tensors(format!("expected inputs {PROMPT:?} and {REQUEST:?}, got {names:?}")));
        }
        let prompt = match inputs.get(PROMPT).map(Tensor::data) {
            Some(TensorData::U32(v)) => v.clone(),
            _ => return Err(RequestError::Tensors(format!("{PROMPT:?} must be u32 token ids"))),
        };
        let params = match inputs.get(REQUEST).map(|t| (t.shape(), t.data())) {
            Some(([], TensorData::String(v))) if v.len() == 1 => Params::from_canonical(&v[0])?,
            _ => return Err(RequestError::Tensors(format!("{REQUEST:?} must be one string"))),
        };
        Ok(Self { prompt, params })
    }
}

/// The declared inputs of every GGUF model (the hub records them, so input validation works as for ONNX models).
pub fn input_specs() -> Vec<TensorSpec> {
    vec![
        TensorSpec { name: PROMPT.into(), dtype: DType::U32, shape: Some(vec![Dim::Symbol("prompt_tokens".into())]) },
        TensorSpec { name: REQUEST.into(), dtype: DType::String, shape: Some(vec![]) },
    ]
}

/// The declared outputs of every GGUF model.
pub fn output_specs() -> Vec<TensorSpec> {
    vec![
        TensorSpec { name: FINISH_REASON.into(), dtype: DType::String, shape: Some(vec![]) },
        TensorSpec {
            name: TOKENS.into(),
            dtype: DType::U32,
            shape: Some(vec![Dim::Symbol("completion_tokens".into())]),
        },
    ]
}

/// The receipt's output tensors for generated `tokens`.
pub fn outputs(tokens: &[u32], finish: Finish) -> TensorMap {
    let mut m = TensorMap::new();
    if let Ok(t) = Tensor::new(vec![tokens.len() as u64], TensorData::U32(tokens.to_vec())) {
        m.insert(TOKENS.into(), t);
    }
    if let Ok(t) = Tensor::new(vec![], TensorData::String(vec![finish.name().into()])) {
        m.insert(FINISH_REASON.into(), t);
    }
    m
}

/// Reads the generated tokens and the finish reason from receipt output tensors.
pub fn from_outputs(outputs: &TensorMap) -> Result<(Vec<u32>, Finish), RequestError> {
    let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
    if names != [FINISH_REASON, TOKENS] {
        return Err(RequestError::Tensors(format!("expected outputs {FINISH_REASON:?} and {TOKENS:?}, got {names:?}")));
    }
    let tokens = match outputs.get(TOKENS).map(Tensor::data) {
        Some(TensorData::U32(v)) => v.clone(),
        _ => return Err(RequestError::Tensors(format!("{TOKENS:?} must be u32 token ids"))),
    };
    let finish = match outputs.get(FINISH_REASON).map(|t| (t.shape(), t.data())) {
        Some(([], TensorData::String(v))) if v.len() == 1 => Finish::from_name(&v[0])
            .ok_or_else(|| RequestError::Tensors(format!("unknown finish reason {:?}", v[0])))?,
        _ => return Err(RequestError::Tensors(format!("{FINISH_REASON:?} must be one string"))),
    };
    Ok((tokens, finish))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip_and_refusals() {
        let p = Params {
            max_tokens: 32,
            temperature: 0.7,
            top_p: 0.9,
            seed: Some(42),
            stop: vec!["\n\n".into()],
            ..Params::default()
        };
        let c = p.canonical();
        assert_eq!(
            c,
            r#"{"v":1,"max_tokens":32,"temperature":0.7,"top_p":0.9,"seed":42,"stop":["\n\n"],"logprobs":null}"#
        );
        assert_eq!(Params::from_canonical(&c).unwrap(), p);
        // Another spelling of the same parameters is refused.
        let spaced = c.replace(",\"", ", \"");
        assert!(matches!(Params::from_canonical(&spaced), Err(RequestError::NotCanonical(_))));
        let reordered = c.replace(r#""v":1,"max_tokens":32"#, r#""max_tokens":32,"v":1"#);
        assert!(matches!(Params::from_canonical(&reordered), Err(RequestError::NotCanonical(_))));
        assert!(matches!(Params::from_canonical("{}"), Err(RequestError::NotCanonical(_))));
        let bad = |f: fn(&mut Params)| {
            let mut p = Params::default();
            f(&mut p);
            p.check().unwrap_err()
        };
        assert!(matches!(bad(|p| p.max_tokens = 0), RequestError::Param { param: "max_tokens", .. }));
        assert!(matches!(bad(|p| p.temperature = -0.1), RequestError::Param { param: "temperature", .. }));
        assert!(matches!(bad(|p| p.temperature = f64::NAN), RequestError::Param { param: "temperature", .. }));
        assert!(matches!(bad(|p| p.top_p = 1.5), RequestError::Param { param: "top_p", .. }));
        assert!(matches!(bad(|p| p.top_p = 0.0), RequestError::Param { param: "top_p", .. }));
        assert!(matches!(bad(|p| p.temperature = 1.0), RequestError::Param { param: "seed", .. }));
        assert!(matches!(bad(|p| p.stop = vec![String::new()]), RequestError::Param { param: "stop", .. }));
        assert!(matches!(bad(|p| p.logprobs = Some(21)), RequestError::Param { param: "top_logprobs", .. }));
    }

    #[test]
    fn tensors_round_trip_and_refusals() {
        let c = Completion { prompt: vec![1, 2, 3], params: Params::default() };
        let inputs = c.to_inputs();
        assert_eq!(Completion::from_inputs(&inputs).unwrap(), c);
        let mut extra = inputs.clone();
        extra.insert("x".into(), Tensor::new(vec![], TensorData::U32(vec![1])).unwrap());
        assert!(matches!(Completion::from_inputs(&extra), Err(RequestError::Tensors(_))));
        let mut wrong = inputs.clone();
        wrong.insert(PROMPT.into(), Tensor::new(vec![1], TensorData::I32(vec![1])).unwrap());
        assert!(matches!(Completion::from_inputs(&wrong), Err(RequestError::Tensors(_))));
        let out = outputs(&[5, 6], Finish::Length);
        assert_eq!(from_outputs(&out).unwrap(), (vec![5, 6], Finish::Length));
        let mut bad = out.clone();
        bad.insert(FINISH_REASON.into(), Tensor::new(vec![], TensorData::String(vec!["done".into()])).unwrap());
        assert!(matches!(from_outputs(&bad), Err(RequestError::Tensors(_))));
    }
}
