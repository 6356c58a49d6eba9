//! The `/v1` HTTP API.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use vouch_api::{ErrorDetail, InferRequest, ModelVersion, NodeStatus, VerifyResponse};
use vouch_codec::tensor::parse_input_doc;
use vouch_codec::{AgreementRule, Digest, Mode, ModelId};
use vouch_engine::{ModelInfo, validate_inputs};
use vouch_hub::{NewVersion, Version, validate_name};

use crate::error::ApiError;
use crate::metrics::HttpLabels;
use crate::{NodeState, now_ms};

type AppState = State<Arc<NodeState>>;

const OPENAPI: &str = include_str!("openapi.json");

pub(crate) fn router(state: Arc<NodeState>) -> Router {
    let json_limit = state.config.max_request_bytes;
    Router::new()
        .route("/v1/health", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/v1/node", get(node_status))
        .route(
            "/v1/models/{name}/versions",
            // Uploads stream to disk under the hub's own size limit, so the JSON body limit does not apply.
            post(push).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/models", get(list_models))
        .route("/v1/calibrations", post(upload_calibration))
        .route("/v1/models/{reference}", get(show_model))
        .route("/v1/blobs/{id}", get(download))
        .route("/v1/infer", post(infer))
        .route("/v1/receipts/{id}", get(get_receipt))
        .route("/v1/jobs/prepare", post(prepare_job))
        .route("/v1/jobs/{job}/execute", post(execute_job))
        .route("/v1/verify", post(verify))
        .route("/v1/ledger/status", get(crate::explorer::status))
        .route("/v1/ledger/genesis", get(crate::explorer::genesis))
        .route("/v1/ledger/blocks/{height}", get(crate::explorer::block))
        .route("/v1/ledger/nodes", get(crate::explorer::nodes))
        .route("/v1/ledger/accounts/{address}", get(crate::explorer::account))
        .route("/v1/ledger/txs", post(crate::explorer::submit_tx))
        .route("/v1/ledger/txs/{id}", get(crate::explorer::tx))
        .route("/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
        })
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request handler failed").into_response()
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn count_requests(State(s): AppState, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    s.metrics.http_requests.get_or_create(&HttpLabels { route, method, status: resp.status().as_u16() }).inc();
    resp
}

/// Parses a JSON body ourselves so every failure is our error envelope, with 413 for oversized bodies.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body exceeds the node's limit")
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", r.body_text())
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("invalid JSON: {e}")))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

async fn node_status(State(s): AppState) -> Result<Json<NodeStatus>, ApiError> {
    let st = s.clone();
    let (models, receipts) = blocking(move || Ok((st.hub.version_count()?, st.receipts.count()?))).await?;
    Ok(Json(NodeStatus {
        node_id: hex::encode(s.key.public_key()),
        version: env!("CARGO_PKG_VERSION").into(),
        engine: s.cache.engine_id(),
        network: hex::encode(s.ledger.running.chain.chain_id()),
        modes: vec!["signed".into(), "zk".into(), "quorum".into()],
        models,
        receipts,
        cached_models: s.cache.len() as u64,
        uptime_s: s.started.elapsed().as_secs(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushQuery {
    version: Option<String>,
    description: Option<String>,
    /// Quantize for the zk path.
    #[serde(default)]
    zk: bool,
    /// Calibration set id (with `zk`).
    calibration: Option<String>,
    /// Accept a quantization that changes the argmax on more than 1% of calibration inputs.
    #[serde(default)]
    force: bool,
    /// A float model's quorum tolerance (both or neither).
    tolerance_abs: Option<f64>,
    tolerance_rel: Option<f64>,
}

enum Chunk {
    Data(Bytes),
    End,
}

async fn push(
    State(s): AppState,
    Path(name): Path<String>,
    query: Result<Query<PushQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<(StatusCode, Json<ModelVersion>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    validate_name(&name)?;
    let version = q.version.as_deref().map(str::parse::<Version>).transpose()?;
    if q.zk != q.calibration.is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "zk=true and calibration=ID go together"));
    }
    let agreement = match (q.tolerance_abs, q.tolerance_rel) {
        (None, None) => AgreementRule::Exact,
        (Some(abs), Some(rel)) => AgreementRule::Tolerance { abs, rel },
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "tolerance_abs and tolerance_rel go together",
            ));
        }
    };
    agreement.check().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_tolerance", e))?;

    // The body streams through a bounded channel to a blocking writer that hashes and writes it; only an
    // explicit end marker lets the writer finish, so a dropped connection never yields a blob.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let hub = s.hub.clone();
    let limit = s.config.max_model_bytes;
    let writer = tokio::task::spawn_blocking(move || {
        let mut up = hub.begin_upload(limit)?;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Data(b) => up.write(&b)?,
                Chunk::End => return Ok(up.finish()?),
            }
        }
        Err(ApiError::new(StatusCode::BAD_REQUEST, "upload_interrupted", "the upload ended before all bytes arrived"))
    });
    let mut stream = body.into_data_stream();
    let mut interrupted = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => {
                if tx.send(Chunk::Data(b)).await.is_err() {
                    break; // the writer stopped (e.g. size limit); its error is the answer
                }
            }
            Err(e) => {
                interrupted = Some(e);
                break;
            }
        }
    }
    if let Some(e) = interrupted {
        drop(tx);
        let _ = writer.await;
        tracing::info!(error = %e, "hub.put: upload interrupted; nothing stored");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "upload_interrupted", format!("upload interrupted: {e}")));
    }
    let _ = tx.send(Chunk::End).await;
    drop(tx);
    let staged = writer.await??;
    s.metrics.upload_bytes.inc_by(staged.size);

    let st = s.clone();
    let record = blocking(move || {
        let info = vouch_engine::inspect(staged.path())?;
        if staged.size <= st.config.compile_on_push_max_bytes {
            st.cache.check(staged.id, staged.path(), &info)?;
        }
        let zk = match &q.calibration {
            Some(c) => {
                let (mut info, prover) =
                    crate::zk::quantize_model(staged.path(), staged.size, &st.calibrations, c, q.force)?;
                crate::zk::record_private(&mut info, &prover);
                st.zk_provers.lock().unwrap_or_else(|p| p.into_inner()).insert(staged.id, Arc::new(prover));
                Some(info)
            }
            None => None,
        };
        let template = ModelVersion {
            id: staged.id,
            name: name.clone(),
            version: String::new(),
            size: staged.size,
            description: String::new(),
            format: "onnx".into(),
            inputs: info.inputs,
            outputs: info.outputs,
            ops: info.ops,
            opsets: info.opsets,
            producer: info.producer,
            created_at_ms: 0,
            zk,
            agreement,
        };
        let new = NewVersion { name, version, description: q.description.unwrap_or_default(), template };
        Ok(st.hub.commit(staged, new)?)
    })
    .await?;
    // Record the model on the ledger (its id, name and agreement rule); finalization is not awaited.
    if let Err(e) = crate::quorum::register_model(&s, &record) {
        tracing::warn!(model = %record.id, error = %e.message, "ledger.register_model failed");
    }
    Ok((StatusCode::CREATED, Json(record)))
}

async fn upload_calibration(
    State(s): AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<vouch_api::CalibrationRef>), ApiError> {
    let docs: serde_json::Value = parse_body(body)?;
    let (id, samples) = blocking(move || s.calibrations.put(&docs)).await?;
    Ok((StatusCode::CREATED, Json(vouch_api::CalibrationRef { id, samples })))
}

async fn list_models(State(s): AppState) -> Result<Json<Vec<vouch_api::ModelRepo>>, ApiError> {
    Ok(Json(blocking(move || Ok(s.hub.list()?)).await?))
}

async fn show_model(State(s): AppState, Path(reference): Path<String>) -> Result<Json<ModelVersion>, ApiError> {
    Ok(Json(blocking(move || Ok(s.hub.resolve(&reference)?)).await?))
}

async fn download(State(s): AppState, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: ModelId = id.parse().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{e}")))?;
    let st = s.clone();
    let path = blocking(move || Ok(st.hub.blob_path(&id)?)).await?;
    let file = tokio::fs::File::open(&path).await.map_err(ApiError::internal)?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    s.metrics.download_bytes.inc_by(len);
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_LENGTH, len.to_string())],
        body,
    )
        .into_response())
}

/// Progress events of one inference, for a client that streams them.
pub(crate) type ProgressTx = tokio::sync::mpsc::UnboundedSender<serde_json::Value>;

/// `POST /v1/infer`. With `Accept: application/x-ndjson` the answer streams: one JSON object per line, progress
/// events (`{"event": "progress", ...}`; zk proofs report each layer proof) and then exactly one of
/// `{"event": "receipt", "receipt": ...}` or `{"event": "error", "status": 422, "error": {...}}`.
async fn infer(
    State(s): AppState,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|m| m.trim().starts_with("application/x-ndjson")));
    if !streaming {
        return Ok(Json(infer_inner(s, body, None).await?).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let task = tokio::spawn(infer_inner(s, body, Some(tx.clone())));
    // The outcome is the last line; the stream ends when every sender is gone.
    tokio::spawn(async move {
        let last = match task.await {
            Ok(Ok(receipt)) => serde_json::json!({"event": "receipt", "receipt": receipt}),
            Ok(Err(e)) => serde_json::json!({"event": "error", "status": e.status.as_u16(),
                "error": ErrorDetail { code: e.code.into(), message: e.message, details: e.details }}),
            Err(e) => serde_json::json!({"event": "error", "status": 500,
                "error": {"code": "internal", "message": e.to_string()}}),
        };
        let _ = tx.send(last);
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = rx.recv().await?;
        let mut line = serde_json::to_vec(&ev).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(Bytes::from(line)), rx))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

async fn infer_inner(
    s: Arc<NodeState>,
    body: Result<Bytes, BytesRejection>,
    progress: Option<ProgressTx>,
) -> Result<serde_json::Value, ApiError> {
    let req: InferRequest = parse_body(body)?;
    let mode: Mode = req.mode.parse().map_err(|e: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_mode", e))?;
    if !matches!(mode, Mode::Signed | Mode::Zk | Mode::Quorum) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "mode_unavailable",
            format!("mode {} is not available on this node yet; it serves: signed, zk, quorum", mode.name()),
        ));
    }
    let record = crate::replicate::ensure_model(&s, &req.model).await?;
    if mode == Mode::Quorum {
        return crate::quorum::infer(s, record, req.inputs, req.quorum, req.job_tx).await;
    }
    if req.job_tx.is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_job_tx", "job_tx is for quorum mode"));
    }
    let private = match (&req.private_input, mode) {
        (None, _) => None,
        (Some(p), Mode::Zk) => Some(
            vouch_zk::private::Salt::from_hex(&p.salt)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_private_input", e.to_string()))?,
        ),
        (Some(_), _) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_private_input",
                "private_input is for zk mode",
            ));
        }
    };
    let inputs = parse_input_doc(&req.inputs, |n| record.inputs.iter().find(|i| i.name == n).map(|i| i.dtype))
        .map_err(|(name, e)| {
            if !name.is_empty() && record.inputs.iter().all(|i| i.name != name) {
                let expected = record.inputs.iter().map(|s| s.describe()).collect::<Vec<_>>().join(", ");
                return vouch_engine::InputError::Unknown { name, expected }.into();
            }
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_tensor", format!("input {name:?}: {e}"))
                .details(serde_json::json!({ "input": name }))
        })?;
    validate_inputs(&record.inputs, &inputs)?;
    if mode == Mode::Zk {
        return infer_zk(s, record, inputs, private, progress).await;
    }

    let outputs = run_model(&s, &record, &inputs).await?;
    let receipt = vouch_receipt::issue_signed(
        &s.key,
        record.id,
        s.cache.engine_id(),
        rand::random(),
        now_ms(),
        inputs,
        s.config.disclose_inputs,
        outputs,
    );
    s.receipts.put(&receipt, true).await?;
    s.metrics.receipts_issued.inc();
    crate::settlement::settle(&s, receipt.id());
    serde_json::to_value(receipt.to_json()).map_err(ApiError::internal)
}

/// Runs a model on inputs with this node's engine (compiled plans cached), on the blocking pool behind the
/// inference semaphore.
pub(crate) async fn run_model(
    s: &Arc<NodeState>,
    record: &ModelVersion,
    inputs: &vouch_codec::TensorMap,
) -> Result<vouch_codec::TensorMap, ApiError> {
    let _permit = s.infer_slots.acquire().await.map_err(ApiError::internal)?;
    let st = s.clone();
    let record = record.clone();
    let inputs = inputs.clone();
    blocking(move || {
        let path = st.hub.blob_path(&record.id)?;
        let info = ModelInfo {
            ir_version: 0,
            opsets: record.opsets.clone(),
            producer: record.producer.clone(),
            inputs: record.inputs.clone(),
            outputs: record.outputs.clone(),
            ops: record.ops.clone(),
        };
        let model = st.cache.get(record.id, &path, &info, &inputs)?;
        let _span = tracing::debug_span!("engine.run", model = %record.id).entered();
        let started = Instant::now();
        let outputs = model.run(&inputs)?;
        st.metrics.inference_seconds.observe(started.elapsed().as_secs_f64());
        Ok(outputs)
    })
    .await
}

async fn infer_zk(
    s: Arc<NodeState>,
    record: ModelVersion,
    inputs: vouch_codec::TensorMap,
    private: Option<vouch_zk::private::Salt>,
    progress: Option<ProgressTx>,
) -> Result<serde_json::Value, ApiError> {
    let zk = record.zk.clone().ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "not_zk_model", "this model version was not pushed with --zk")
    })?;
    let commitment = hex::decode(zk.commitment.as_deref().unwrap_or_default()).map_err(ApiError::internal)?;
    let _permit = s.infer_slots.acquire().await.map_err(ApiError::internal)?;
    let st = s.clone();
    let receipt = blocking(move || {
        let cached = st.zk_provers.lock().unwrap_or_else(|p| p.into_inner()).get(&record.id).cloned();
        let prover = match cached {
            Some(p) => p,
            None => {
                let path = st.hub.blob_path(&record.id)?;
                let (_, p) = crate::zk::quantize_model(&path, record.size, &st.calibrations, &zk.calibration, true)?;
                let p = Arc::new(p);
                st.zk_provers.lock().unwrap_or_else(|p| p.into_inner()).insert(record.id, p.clone());
                p
            }
        };
        let graph = prover.graph();
        let (name, tensor) = inputs.iter().next().ok_or_else(|| ApiError::internal("validated inputs are empty"))?;
        let vouch_codec::TensorData::F32(x) = tensor.data() else {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "dtype_mismatch", "the zk path takes an f32 input"));
        };
        let xq = graph.quantize_input(x);
        let _span = tracing::info_span!("zk.prove", model = %record.id, private = private.is_some()).entered();
        if let Some(salt) = private {
            return prove_private(&st, &prover, &record, &xq, &salt, progress.as_ref());
        }
        let report = |p: vouch_zk::Progress| {
            if let Some(tx) = &progress {
                let _ = tx.send(serde_json::json!({"event": "progress", "stage": "prove", "layer": p.layer,
                    "done": p.done, "total": p.total, "rows": p.rows}));
            }
        };
        let proof = prover
            .prove_with_progress(&xq, report)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "proof_failed", e.to_string()))?;
        let mut proof = proof;
        if st.config.fault_corrupt_proofs
            && let Some(last) = proof.activations.last_mut()
        {
            crate::zk::corrupt(last);
        }
        let y = proof.activations.last().cloned().unwrap_or_default();
        let shape = |s: &[usize]| s.iter().map(|d| *d as u64).collect::<Vec<u64>>();
        let mut qin = vouch_codec::TensorMap::new();
        qin.insert(
            name.clone(),
            vouch_codec::Tensor::new(shape(&graph.shapes[0]), vouch_codec::TensorData::I16(xq))
                .map_err(ApiError::internal)?,
        );
        let qout = zk_output(&record, graph, y)?;
        let evidence = vouch_zk::Evidence { structure: vouch_zk::public_structure(graph), proof }.to_bytes();
        let receipt = vouch_receipt::issue_zk(
            &st.key,
            record.id,
            vouch_zk::SYSTEM.into(),
            rand::random(),
            now_ms(),
            qin,
            qout,
            commitment,
            evidence,
        );
        crate::zk::self_check(&st.metrics, &receipt, graph)?;
        Ok(receipt)
    })
    .await?;
    drop(_permit);
    s.receipts.put(&receipt, true).await?;
    s.metrics.receipts_issued.inc();
    crate::settlement::settle(&s, receipt.id());
    serde_json::to_value(receipt.to_json()).map_err(ApiError::internal)
}

/// A zk receipt's output: the proven int16 tensor, under the model's output name.
fn zk_output(
    record: &ModelVersion,
    graph: &vouch_quant::QGraph,
    y: Vec<i16>,
) -> Result<vouch_codec::TensorMap, ApiError> {
    let shape = graph.shapes.last().expect("output shape").iter().map(|d| *d as u64).collect();
    let name = record.outputs.first().map(|o| o.name.clone()).unwrap_or_else(|| "y".into());
    let mut out = vouch_codec::TensorMap::new();
    out.insert(name, vouch_codec::Tensor::new(shape, vouch_codec::TensorData::I16(y)).map_err(ApiError::internal)?);
    Ok(out)
}

/// A private-input zk receipt: one hiding batch proof; the input never leaves this function.
fn prove_private(
    st: &NodeState,
    prover: &vouch_zk::Prover,
    record: &ModelVersion,
    xq: &[i16],
    salt: &vouch_zk::private::Salt,
    progress: Option<&ProgressTx>,
) -> Result<vouch_codec::Receipt, ApiError> {
    let private = prover
        .private()
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "private_input_unsupported", e.to_string()))?;
    let commitment = private.commitment().to_bytes();
    let recorded = record.zk.as_ref().and_then(|z| z.private_commitment.as_deref());
    if recorded.is_some_and(|c| c != hex::encode(&commitment)) {
        return Err(ApiError::internal("the private-input commitment recomputed here is not the recorded one"));
    }
    let send = |done: usize| {
        if let Some(tx) = progress {
            let _ = tx.send(serde_json::json!({"event": "progress", "stage": "prove", "layer": 0,
                "done": done, "total": 1, "rows": 0}));
        }
    };
    send(0);
    let (mut y, proof) = private
        .prove(xq, salt)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "proof_failed", e.to_string()))?;
    if st.config.fault_corrupt_proofs {
        crate::zk::corrupt(&mut y);
    }
    send(1);
    let graph = prover.graph();
    let input = proof.input;
    let qout = zk_output(record, graph, y)?;
    let evidence =
        vouch_zk::private::PrivateEvidence { structure: vouch_zk::public_structure(graph), proof }.to_bytes();
    let receipt = vouch_receipt::issue_zk_private(
        &st.key,
        record.id,
        vouch_zk::private::PRIVATE_SYSTEM.into(),
        rand::random(),
        now_ms(),
        input,
        qout,
        commitment,
        evidence,
    );
    crate::zk::self_check(&st.metrics, &receipt, graph)?;
    Ok(receipt)
}

async fn prepare_job(
    State(s): AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::PreparedJob>, ApiError> {
    let req: vouch_api::PrepareJobRequest = parse_body(body)?;
    Ok(Json(crate::quorum::prepare(s, req).await?))
}

async fn execute_job(
    State(s): AppState,
    Path(job): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::ExecuteResponse>, ApiError> {
    let job: Digest = job
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "a job id is 64 hex characters"))?;
    let req: vouch_api::ExecuteRequest = parse_body(body)?;
    Ok(Json(crate::quorum::execute(s, job, req).await?))
}

async fn get_receipt(State(s): AppState, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let digest: Digest = id
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "a receipt id is 64 hex characters"))?;
    let st = s.clone();
    let receipt = blocking(move || Ok(st.receipts.get(&digest)?)).await?;
    let Some(mut r) = receipt else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "receipt_not_found", format!("no receipt {id}")));
    };
    if r.anchor.is_none()
        && let Some(anchor) = s.ledger.anchor(&digest).await
    {
        r.anchor = Some(anchor);
        s.receipts.put(&r, false).await?;
    }
    Ok(Json(serde_json::to_value(r.to_json()).map_err(ApiError::internal)?))
}

async fn verify(body: Result<Bytes, BytesRejection>) -> Result<Json<VerifyResponse>, ApiError> {
    let value: serde_json::Value = parse_body(body)?;
    let text = value.to_string();
    let resp = match vouch_receipt::verify_json(&text, None) {
        Ok(v) => VerifyResponse { valid: true, id: Some(v.id.to_hex()), reason: None },
        Err(e) => VerifyResponse { valid: false, id: None, reason: Some(e.to_string()) },
    };
    Ok(Json(resp))
}

async fn metrics(State(s): AppState) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
}
