//! The OpenAI-compatible API on GGUF language models: `POST /v1/chat/completions` and `POST /v1/completions`, with
//! and without `stream` (server-sent events, `stream_options.include_usage`, `data: [DONE]`). Every answer carries a
//! top-level `vouch` object (the receipt and its id; in a stream, in the chunk that has the finish reason), which the
//! `openai` client keeps in `model_extra`. Errors on these paths are OpenAI-shaped:
//! `{"error": {"message", "type", "param", "code"}}`, with `Retry-After` on 429.
//!
//! Request extensions: `"vouch": {"mode": "signed" | "quorum", "quorum": K, "job_tx": HEX, "logit_digests": bool}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use vouch_api::ModelVersion;
use vouch_codec::Receipt;
use vouch_codec::tensor::map_to_json;
use vouch_llm::request::{self, Completion, Params};
use vouch_llm::{Finish, Generation, LlmModel, Message, TokenLogprob};

use super::AppState;
use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::access::{ClientId, Spend};
use crate::service::llm::{self as llm, TokenEvent};
use crate::service::models::GGUF;
use crate::service::{blocking, quorum, replicate};

/// Completion tokens when a chat request names no limit (bounded by the context window).
const DEFAULT_CHAT_MAX_TOKENS: usize = 512;
/// Completion tokens when a legacy completion request names no limit (OpenAI's default).
const DEFAULT_COMPLETION_MAX_TOKENS: usize = 16;

/// An [`ApiError`] answered in OpenAI's error shape.
pub(crate) struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let mut resp = (status, Json(error_json(&self.0))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// `{"error": {"message", "type", "param", "code"}}`, plus `details` when the error has more than its parameter.
pub(crate) fn error_json(e: &ApiError) -> Value {
    let kind = match e.status().as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    let param = e.details.as_ref().and_then(|d| d.get("param")).cloned().unwrap_or(Value::Null);
    let mut error = json!({"message": e.message, "type": kind, "param": param, "code": e.code.as_str()});
    // Vouch's structured details ride along (OpenAI clients ignore unknown fields): a quorum request without its job
    // learns here which inputs the job must cover.
    if let Some(d) = e.details.as_ref().filter(|d| d.as_object().is_some_and(|o| o.keys().any(|k| k != "param"))) {
        error["details"] = d.clone();
    }
    json!({ "error": error })
}

/// Whether a path is served in OpenAI's error shape.
pub(crate) fn is_openai_path(path: &str) -> bool {
    path == "/v1/chat/completions" || path == "/v1/completions"
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidParameter, message).details(json!({ "param": param }))
}

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::UnsupportedParameter, message).details(json!({ "param": param }))
}

/// A request body as a JSON object, its fields taken one by one so every error names its parameter.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        match super::parse_body::<Value>(body)? {
            Value::Object(m) => Ok(Self(m)),
            _ => Err(ApiError::new(Code::InvalidJson, "the body must be a JSON object")),
        }
    }

    fn take<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, ApiError> {
        match self.0.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some).map_err(|e| invalid(key, format!("{key}: {e}"))),
        }
    }

    /// Refuses what a request may not ask of this node yet, ignores what does not change the answer, and refuses
    /// anything else by name.
    fn finish(mut self) -> Result<(), ApiError> {
        let n: Option<u64> = self.take("n")?;
        if n.is_some_and(|n| n != 1) {
            return Err(unsupported("n", "n > 1 is not supported: ask once per completion"));
        }
        for key in ["tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"] {
            if self.0.remove(key).is_some_and(|v| !v.is_null()) {
                return Err(unsupported(key, format!("{key}: tools and function calls are not supported yet")));
            }
        }
        for key in ["frequency_penalty", "presence_penalty"] {
            let v: Option<f64> = self.take(key)?;
            if v.is_some_and(|v| v != 0.0) {
                return Err(unsupported(key, format!("{key}: penalties are not supported yet (0 is)")));
            }
        }
        let bias: Option<Map<String, Value>> = self.take("logit_bias")?;
        if bias.is_some_and(|b| !b.is_empty()) {
            return Err(unsupported("logit_bias", "logit_bias is not supported yet"));
        }
        if let Some(f) = self.0.remove("response_format")
            && f.get("type").and_then(Value::as_str).is_some_and(|t| t != "text")
        {
            return Err(unsupported("response_format", "only the text response format is supported"));
        }
        // Accepted and without effect on the answer.
        for key in [
            "user",
            "metadata",
            "store",
            "service_tier",
            "stream_options",
            "safety_identifier",
            "prompt_cache_key",
            "prompt_cache_retention",
            "prompt_cache_options",
        ] {
            self.0.remove(key);
        }
        match self.0.keys().next() {
            Some(k) => Err(unsupported(k, format!("unknown parameter {k:?}"))),
            None => Ok(()),
        }
    }
}

/// The `vouch` extension of a request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VouchOptions {
    /// `signed` (default) or `quorum`.
    #[serde(default)]
    mode: Option<String>,
    /// Executors in quorum mode.
    #[serde(default)]
    quorum: Option<u8>,
    /// Quorum mode: the requester's signed SubmitJob (hex).
    #[serde(default)]
    job_tx: Option<String>,
    /// Answer the digest of every step's logits too.
    #[serde(default)]
    logit_digests: bool,
}

/// What both endpoints share once their prompt is tokenized.
struct Request {
    reference: String,
    record: ModelVersion,
    model: Arc<dyn LlmModel>,
    completion: Completion,
    stream: bool,
    include_usage: bool,
    vouch: VouchOptions,
    chat: bool,
}

impl Request {
    fn new(
        reference: String,
        record: ModelVersion,
        model: Arc<dyn LlmModel>,
        completion: Completion,
        sm: Sampling,
        chat: bool,
    ) -> Self {
        let Sampling { stream, include_usage, vouch, .. } = sm;
        Self { reference, record, model, completion, stream, include_usage, vouch, chat }
    }
}

/// Sampling fields common to both endpoints (the prompt is taken by the caller).
struct Sampling {
    max_tokens: Option<u32>,
    temperature: f64,
    top_p: f64,
    seed: Option<u64>,
    stop: Vec<String>,
    logprobs: Option<u8>,
    stream: bool,
    include_usage: bool,
    vouch: VouchOptions,
}

fn sampling(f: &mut Fields, chat: bool) -> Result<Sampling, ApiError> {
    let max_completion_tokens: Option<u32> = f.take("max_completion_tokens")?;
    let max_tokens: Option<u32> = f.take("max_tokens")?;
    let max_tokens = max_completion_tokens.or(max_tokens);
    if max_tokens == Some(0) {
        let p = if max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
        return Err(invalid(p, format!("{p} must be at least 1")));
    }
    let temperature: f64 = f.take("temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid("temperature", format!("temperature must be between 0 and 2, got {temperature}")));
    }
    let top_p: f64 = f.take("top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid("top_p", format!("top_p must be above 0 and at most 1, got {top_p}")));
    }
    let seed: Option<u64> = f.take("seed")?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
    }
    let stop = match f.take::<Stop>("stop")? {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let logprobs = if chat {
        let on: bool = f.take("logprobs")?.unwrap_or(false);
        let top: Option<u8> = f.take("top_logprobs")?;
        match (on, top) {
            (false, Some(_)) => return Err(invalid("top_logprobs", "top_logprobs needs logprobs: true")),
            (false, None) => None,
            (true, top) => Some(top.unwrap_or(0)),
        }
    } else {
        f.take::<u8>("logprobs")?
    };
    let stream: bool = f.take("stream")?.unwrap_or(false);
    let include_usage = match f.0.get("stream_options") {
        Some(o) if !o.is_null() => {
            if !stream {
                return Err(invalid("stream_options", "stream_options needs stream: true"));
            }
            o.get("include_usage").and_then(Value::as_bool).unwrap_or(false)
        }
        _ => false,
    };
    let vouch: VouchOptions = f.take("vouch")?.unwrap_or_default();
    if vouch.mode.as_deref() == Some("quorum") && temperature > 0.0 && seed.is_none() {
        // The job's inputs include the seed: the requester fixes it, so the job it signs is the one run.
        return Err(invalid("seed", "sampling in quorum mode needs a seed (the signed job covers it)"));
    }
    Ok(Sampling { max_tokens, temperature, top_p, seed, stop, logprobs, stream, include_usage, vouch })
}

/// The model a request names, which must be a language model, loaded.
async fn language_model(s: &Arc<NodeState>, reference: &str) -> Result<(ModelVersion, Arc<dyn LlmModel>), ApiError> {
    let record = replicate::ensure_model(s, reference).await.map_err(|e| match e.code {
        Code::ModelNotFound => ApiError { details: Some(json!({"param": "model"})), ..e },
        _ => e,
    })?;
    if record.format != GGUF {
        return Err(ApiError::new(
            Code::NotLanguageModel,
            format!("{reference:?} is an {} model: completions need a GGUF language model", record.format),
        )
        .details(json!({"param": "model"})));
    }
    let st = s.clone();
    let r = record.clone();
    let model = blocking(move || {
        let path = st.hub.blob_path(&r.id)?;
        st.llm.model(r.id, &path)
    })
    .await?;
    Ok((record, model))
}

/// Checks the limits and builds the canonical request.
fn completion(
    s: &NodeState,
    model: &dyn LlmModel,
    prompt: Vec<u32>,
    sm: &Sampling,
    default_max: usize,
) -> Result<Completion, ApiError> {
    if prompt.is_empty() {
        return Err(ApiError::new(Code::InvalidPrompt, "the prompt has no tokens").details(json!({"param": "prompt"})));
    }
    let window = s.llm.window(model);
    let max_tokens = match sm.max_tokens {
        Some(m) => m as usize,
        None => default_max.min(window.saturating_sub(prompt.len())).max(1),
    };
    if prompt.len() + max_tokens > window {
        return Err(llm::llm_error(vouch_llm::LlmError::ContextWindow {
            prompt: prompt.len(),
            max_tokens,
            context: window,
        }));
    }
    let params = Params {
        max_tokens: max_tokens as u32,
        temperature: sm.temperature,
        top_p: sm.top_p,
        // Sampling without a seed gets one drawn here; it is in the receipt, so the tokens stay reproducible.
        seed: if sm.temperature > 0.0 { Some(sm.seed.unwrap_or_else(rand::random)) } else { sm.seed },
        stop: sm.stop.clone(),
        logprobs: sm.logprobs,
        ..Params::default()
    };
    params.check().map_err(|e| match e {
        vouch_llm::RequestError::Param { param, reason } => invalid(param, format!("{param}: {reason}")),
        other => invalid("request", other.to_string()),
    })?;
    Ok(Completion { prompt, params })
}

/// Chat messages from the request, checked.
fn messages(v: Option<Value>) -> Result<Vec<Message>, ApiError> {
    let bad = |m: String| ApiError::new(Code::InvalidMessages, m).details(json!({"param": "messages"}));
    let Some(Value::Array(list)) = v else {
        return Err(bad("messages must be a non-empty array of {role, content}".into()));
    };
    if list.is_empty() {
        return Err(bad("messages is empty".into()));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => "system",
                Some("user") => "user",
                Some("assistant") => "assistant",
                Some(r) => {
                    return Err(bad(format!(
                        "messages[{i}]: unknown role {r:?} (system, developer, user and assistant are served)"
                    )));
                }
                None => return Err(bad(format!("messages[{i}] has no role"))),
            };
            let content = match m.get("content") {
                Some(Value::String(t)) => t.clone(),
                Some(Value::Array(parts)) => {
                    let mut t = String::new();
                    for p in parts {
                        match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                            (Some("text"), Some(x)) => t.push_str(x),
                            _ => return Err(bad(format!("messages[{i}]: only text content parts are served"))),
                        }
                    }
                    t
                }
                _ => return Err(bad(format!("messages[{i}] has no text content"))),
            };
            Ok(Message { role: role.into(), content })
        })
        .collect()
}

/// `POST /v1/chat/completions`.
pub(super) async fn chat(
    State(s): AppState,
    Extension(client): Extension<ClientId>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let mut f = Fields::parse(body)?;
    let reference: String = f.take("model")?.ok_or_else(|| invalid("model", "model is required"))?;
    let msgs = messages(f.0.remove("messages"))?;
    let sm = sampling(&mut f, true)?;
    f.finish()?;
    s.access.charge(&client, Spend::Receipt)?;
    let (record, model) = language_model(&s, &reference).await?;
    let info = record.llm.clone().ok_or_else(|| ApiError::internal("a GGUF record without its header facts"))?;
    let m = model.clone();
    let prompt = blocking(move || {
        let text = vouch_llm::template::render(
            info.chat_template.as_deref(),
            &info.architecture,
            &msgs,
            m.bos_text().as_deref(),
            m.eos_text().as_deref(),
        )
        .map_err(|e| ApiError::new(Code::TemplateFailed, e.to_string()).details(json!({"param": "messages"})))?;
        // A template that writes the BOS token itself gets no second one.
        let add_bos = !m.bos_text().is_some_and(|b| !b.is_empty() && text.starts_with(&b));
        m.tokenize(&text, add_bos).map_err(llm::llm_error)
    })
    .await?;
    let completion = completion(&s, model.as_ref(), prompt, &sm, DEFAULT_CHAT_MAX_TOKENS)?;
    Ok(answer(s, Request::new(reference, record, model, completion, sm, true)).await?)
}

/// `POST /v1/completions`: `prompt` is a string or token ids (or a one-element array of either).
pub(super) async fn completions(
    State(s): AppState,
    Extension(client): Extension<ClientId>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let mut f = Fields::parse(body)?;
    let reference: String = f.take("model")?.ok_or_else(|| invalid("model", "model is required"))?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Prompt {
        Text(String),
        Tokens(Vec<u32>),
        Texts(Vec<String>),
        TokenLists(Vec<Vec<u32>>),
    }
    let prompt = match f.take::<Prompt>("prompt")? {
        None => return Err(invalid("prompt", "prompt is required").into()),
        Some(Prompt::Texts(mut v)) if v.len() == 1 => Prompt::Text(v.remove(0)),
        Some(Prompt::TokenLists(mut v)) if v.len() == 1 => Prompt::Tokens(v.remove(0)),
        Some(Prompt::Texts(_) | Prompt::TokenLists(_)) => {
            return Err(unsupported("prompt", "one prompt per request (batches are not supported)").into());
        }
        Some(p) => p,
    };
    if f.take::<bool>("echo")?.unwrap_or(false) {
        return Err(unsupported("echo", "echo is not supported").into());
    }
    if f.take::<String>("suffix")?.is_some() {
        return Err(unsupported("suffix", "suffix is not supported").into());
    }
    if f.take::<u32>("best_of")?.is_some_and(|b| b != 1) {
        return Err(unsupported("best_of", "best_of > 1 is not supported").into());
    }
    let sm = sampling(&mut f, false)?;
    f.finish()?;
    s.access.charge(&client, Spend::Receipt)?;
    let (record, model) = language_model(&s, &reference).await?;
    let prompt = match prompt {
        Prompt::Tokens(t) => t,
        Prompt::Text(text) => {
            let m = model.clone();
            blocking(move || m.tokenize(&text, true).map_err(llm::llm_error)).await?
        }
        Prompt::Texts(_) | Prompt::TokenLists(_) => unreachable!("normalized above"),
    };
    let completion = completion(&s, model.as_ref(), prompt, &sm, DEFAULT_COMPLETION_MAX_TOKENS)?;
    Ok(answer(s, Request::new(reference, record, model, completion, sm, false)).await?)
}

/// Sets the flag when dropped: a handler dropped mid-request (the client left) stops its generation.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What a finished completion is, for the response.
struct Outcome {
    tokens: Vec<u32>,
    finish: Finish,
    text: String,
    logprobs: Vec<TokenLogprob>,
    receipt: Receipt,
    generation: Option<Generation>,
}

async fn answer(s: Arc<NodeState>, req: Request) -> Result<Response, ApiError> {
    let mode = req.vouch.mode.as_deref().unwrap_or("signed");
    match mode {
        "signed" => {}
        // A quorum's answer exists once K nodes agree: a stream gets it in one chunk, and no node's logits are the
        // answer's.
        "quorum" if req.completion.params.logprobs.is_some() => {
            return Err(unsupported("logprobs", "logprobs are not available in quorum mode"));
        }
        "quorum" => {}
        // Checked before any token is generated or streamed: a node without a valid attestation answers 409 at once.
        "tee" => {
            crate::service::tee::evidence(&s)?;
        }
        other => {
            return Err(ApiError::new(
                Code::ModeUnavailable,
                format!("mode {other:?} is not served for completions (signed, tee and quorum are)"),
            )
            .details(json!({"param": "vouch.mode"})));
        }
    }
    if mode != "quorum" && (req.vouch.job_tx.is_some() || req.vouch.quorum.is_some()) {
        return Err(ApiError::new(Code::InvalidJobTx, "vouch.job_tx and vouch.quorum are for quorum mode"));
    }
    if req.stream {
        return Ok(stream(s, req).await);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let outcome = run(&s, &req, None, cancel).await?;
    Ok(Json(response(&s, &req, &outcome)?).into_response())
}

/// Runs the request in its mode.
async fn run(
    s: &Arc<NodeState>,
    req: &Request,
    events: Option<mpsc::Sender<TokenEvent>>,
    cancel: Arc<AtomicBool>,
) -> Result<Outcome, ApiError> {
    if req.vouch.mode.as_deref() == Some("quorum") {
        let doc = serde_json::to_value(map_to_json(&req.completion.to_inputs())).map_err(ApiError::internal)?;
        let receipt = quorum::infer(
            s.clone(),
            req.record.clone(),
            doc.clone(),
            req.vouch.quorum,
            req.vouch.job_tx.clone(),
        )
        .await
        .map_err(|e| match e.code {
            // Tell the requester what its job must cover: the inputs, as its signed SubmitJob digests them.
            Code::JobTxRequired => ApiError {
                message: format!(
                    "{} (prepare it with POST /v1/jobs/prepare for these inputs, sign it, send it as vouch.job_tx)",
                    e.message
                ),
                details: Some(json!({"param": "vouch.job_tx", "inputs": doc})),
                ..e
            },
            _ => e,
        })?;
        let (tokens, finish) =
            request::from_outputs(&receipt.outputs).map_err(|e| ApiError::internal(format!("quorum outputs: {e}")))?;
        let text = llm::render(req.model.as_ref(), &tokens, &req.completion.params.stop)?;
        if let Some(tx) = events {
            let _ = tx.send(TokenEvent { text: text.clone(), logprob: None }).await;
        }
        return Ok(Outcome { tokens, finish, text, logprobs: vec![], receipt, generation: None });
    }
    let tee = req.vouch.mode.as_deref() == Some("tee");
    let done = llm::complete(s, &req.record, &req.completion, events, cancel, tee).await?;
    let g = done.generation;
    Ok(Outcome {
        tokens: g.tokens.clone(),
        finish: g.finish,
        text: g.text.clone(),
        logprobs: g.logprobs.clone(),
        receipt: done.receipt,
        generation: Some(g),
    })
}

fn now_secs() -> u64 {
    crate::now_ms() / 1000
}

fn fingerprint(s: &NodeState) -> String {
    format!("fp_{}", &blake3::hash(s.llm.engine_id().as_bytes()).to_hex()[..12])
}

/// The `vouch` object: the receipt, its id, and the logits digest of the run.
fn vouch_object(req: &Request, o: &Outcome) -> Result<Value, ApiError> {
    let mut v = json!({
        "receipt_id": o.receipt.id().to_hex(),
        "receipt": serde_json::to_value(o.receipt.to_json()).map_err(ApiError::internal)?,
        "model_id": req.record.id.to_string(),
        "mode": o.receipt.body.mode.name(),
        "engine": o.receipt.body.engine,
    });
    if let Some(g) = &o.generation {
        v["logits_digest"] = json!(hex::encode(g.logits_digest()));
        if req.vouch.logit_digests {
            v["step_logits_digests"] = json!(g.step_digests.iter().map(hex::encode).collect::<Vec<_>>());
        }
    }
    Ok(v)
}

fn usage(req: &Request, o: &Outcome) -> Value {
    let p = req.completion.prompt.len();
    json!({"prompt_tokens": p, "completion_tokens": o.tokens.len(), "total_tokens": p + o.tokens.len()})
}

fn token_json(model: &dyn LlmModel, t: u32, lp: f64) -> Value {
    let text = model.token_text(t).unwrap_or_default();
    json!({"token": text, "logprob": lp, "bytes": text.as_bytes()})
}

/// Chat logprobs: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
fn chat_logprobs(model: &dyn LlmModel, lps: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = lps
        .iter()
        .map(|l| {
            let mut e = token_json(model, l.token, l.logprob);
            e["top_logprobs"] = json!(l.top.iter().map(|&(t, lp)| token_json(model, t, lp)).collect::<Vec<_>>());
            e
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// Legacy completion logprobs: `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}`.
fn completion_logprobs(model: &dyn LlmModel, lps: &[TokenLogprob], start: usize) -> Value {
    let mut offset = start;
    let mut tokens = vec![];
    let mut token_logprobs = vec![];
    let mut top = vec![];
    let mut offsets = vec![];
    for l in lps {
        let text = model.token_text(l.token).unwrap_or_default();
        offsets.push(offset);
        offset += text.len();
        tokens.push(text);
        token_logprobs.push(l.logprob);
        let mut m = Map::new();
        for &(t, lp) in &l.top {
            m.insert(model.token_text(t).unwrap_or_default(), json!(lp));
        }
        top.push(Value::Object(m));
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets})
}

fn response(s: &NodeState, req: &Request, o: &Outcome) -> Result<Value, ApiError> {
    let id = o.receipt.id().to_hex();
    let wants_logprobs = req.completion.params.logprobs.is_some();
    let choice = if req.chat {
        let lp = if wants_logprobs { chat_logprobs(req.model.as_ref(), &o.logprobs) } else { Value::Null };
        json!({"index": 0, "message": {"role": "assistant", "content": o.text, "refusal": null},
               "logprobs": lp, "finish_reason": o.finish.name()})
    } else {
        let lp = if wants_logprobs { completion_logprobs(req.model.as_ref(), &o.logprobs, 0) } else { Value::Null };
        json!({"index": 0, "text": o.text, "logprobs": lp, "finish_reason": o.finish.name()})
    };
    Ok(json!({
        "id": format!("{}-{id}", if req.chat { "chatcmpl" } else { "cmpl" }),
        "object": if req.chat { "chat.completion" } else { "text_completion" },
        "created": now_secs(),
        "model": req.reference,
        "system_fingerprint": fingerprint(s),
        "choices": [choice],
        "usage": usage(req, o),
        "vouch": vouch_object(req, o)?,
    }))
}

/// A server-sent event line.
fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The streamed answer: a chunk per token with text, then the chunk with the finish reason and the `vouch` object,
/// then the usage chunk when asked for, then `data: [DONE]`. An error after the stream started is sent as an
/// `{"error": ...}` event before `[DONE]`. A client that goes away stops the generation.
async fn stream(s: Arc<NodeState>, req: Request) -> Response {
    let (line_tx, line_rx) = mpsc::channel::<Bytes>(64);
    let (ev_tx, mut ev_rx) = mpsc::channel::<TokenEvent>(64);
    let req = Arc::new(req);
    let cancel = Arc::new(AtomicBool::new(false));
    let job = {
        let (s, req, cancel) = (s.clone(), req.clone(), cancel.clone());
        tokio::spawn(async move { run(&s, &req, Some(ev_tx), cancel).await })
    };
    tokio::spawn(async move {
        let created = now_secs();
        let fp = fingerprint(&s);
        let chunk_id =
            format!("{}-{}", if req.chat { "chatcmpl" } else { "cmpl" }, hex::encode(rand::random::<[u8; 12]>()));
        let object = if req.chat { "chat.completion.chunk" } else { "text_completion" };
        let frame = |choices: Value| {
            json!({"id": chunk_id, "object": object, "created": created, "model": req.reference,
                   "system_fingerprint": fp, "choices": choices})
        };
        let wants_logprobs = req.completion.params.logprobs.is_some();
        let delta = |text: &str, lp: Option<&TokenLogprob>, first: bool, offset: usize| {
            let logprobs = match (wants_logprobs, lp) {
                (true, Some(l)) if req.chat => chat_logprobs(req.model.as_ref(), std::slice::from_ref(l)),
                (true, Some(l)) => completion_logprobs(req.model.as_ref(), std::slice::from_ref(l), offset),
                _ => Value::Null,
            };
            if req.chat {
                let mut d = json!({"content": text});
                if first {
                    d["role"] = json!("assistant");
                }
                json!([{"index": 0, "delta": d, "logprobs": logprobs, "finish_reason": null}])
            } else {
                json!([{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": null}])
            }
        };
        let mut sent = String::new();
        let mut first = true;
        let mut gone = false;
        if req.chat {
            first = false;
            gone = line_tx.send(sse(&frame(delta("", None, true, 0)))).await.is_err();
        }
        while !gone && let Some(ev) = ev_rx.recv().await {
            if ev.text.is_empty() && !(wants_logprobs && ev.logprob.is_some()) {
                continue;
            }
            let chunk = frame(delta(&ev.text, ev.logprob.as_ref(), first, sent.len()));
            first = false;
            sent.push_str(&ev.text);
            if line_tx.send(sse(&chunk)).await.is_err() {
                gone = true;
            }
        }
        // Dropping the receiver stops a generation whose client left (its next token finds nobody).
        drop(ev_rx);
        let outcome = match job.await {
            Ok(r) => r,
            Err(e) => Err(ApiError::from(e)),
        };
        if gone {
            return;
        }
        match outcome {
            Ok(o) => {
                let tail = o.text.strip_prefix(sent.as_str()).unwrap_or("").to_owned();
                let mut last = if req.chat {
                    let d = if tail.is_empty() { json!({}) } else { json!({"content": tail}) };
                    frame(json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": o.finish.name()}]))
                } else {
                    frame(json!([{"index": 0, "text": tail, "logprobs": null, "finish_reason": o.finish.name()}]))
                };
                match vouch_object(&req, &o) {
                    Ok(v) => last["vouch"] = v,
                    Err(e) => last["vouch"] = json!({"error": e.message}),
                }
                let _ = line_tx.send(sse(&last)).await;
                if req.include_usage {
                    let mut u = frame(json!([]));
                    u["usage"] = usage(&req, &o);
                    let _ = line_tx.send(sse(&u)).await;
                }
            }
            Err(e) => {
                let _ = line_tx.send(sse(&error_json(&e))).await;
            }
        }
        let _ = line_tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let body = futures_util::stream::unfold(line_rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(line), rx))
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(body))
        .into_response()
}

/// `GET /v1/models`: the OpenAI list of every model version, and the hub's repositories.
pub(super) async fn list(State(s): AppState) -> Result<Json<vouch_api::ModelList>, ApiError> {
    let repos = blocking(move || Ok(s.hub.list()?)).await?;
    let data = repos
        .iter()
        .flat_map(|r| r.versions.iter())
        .map(|v| vouch_api::ListedModel {
            id: format!("{}@{}", v.name, v.version),
            object: "model".into(),
            created: v.created_at_ms / 1000,
            owned_by: v.owner.clone().unwrap_or_else(|| "vouch".into()),
            model_id: v.id,
            format: v.format.clone(),
        })
        .collect();
    Ok(Json(vouch_api::ModelList { object: "list".into(), data, repos }))
}
