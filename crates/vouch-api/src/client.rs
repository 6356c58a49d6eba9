//! An async client of the node's HTTP API.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use vouch_codec::ModelId;

use crate::{CalibrationRef, ErrorBody, ErrorDetail, InferRequest, ModelRepo, ModelVersion, NodeStatus, PushOptions};

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached.
    #[error("cannot reach node at {url}: {source}")]
    Connect {
        /// Node URL.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// The node answered with an error.
    #[error("{} ({}, HTTP {status})", detail.message, detail.code)]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error body.
        detail: ErrorDetail,
    },
    /// The response is not what the API promises.
    #[error("unexpected response from node: {0}")]
    Protocol(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Downloaded bytes do not hash to the id asked for.
    #[error("downloaded bytes hash to {actual}, not the requested {expected}; the file was removed")]
    HashMismatch {
        /// Requested id.
        expected: ModelId,
        /// Id of what arrived.
        actual: ModelId,
    },
}

/// Largest JSON response the client reads: a node (or something posing as one) cannot make it allocate more by
/// sending a huge or endless body.
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Largest error body the client reads.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// Reads a response body of at most `cap` bytes (refusing a larger declared length before reading any of it).
async fn read_capped(resp: Response, cap: usize) -> Result<Vec<u8>, ClientError> {
    let too_big = |n: u64| ClientError::Protocol(format!("the response exceeds {cap} bytes ({n} or more)"));
    if let Some(len) = resp.content_length()
        && len > cap as u64
    {
        return Err(too_big(len));
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::Protocol(e.to_string()))?;
        if out.len() + chunk.len() > cap {
            return Err(too_big((out.len() + chunk.len()) as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A node's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: reqwest::Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn connect_err(&self, source: reqwest::Error) -> ClientError {
        ClientError::Connect { url: self.base.clone(), source }
    }

    async fn check(resp: Response) -> Result<Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = read_capped(resp, MAX_ERROR_BYTES).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let detail = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error).unwrap_or(ErrorDetail {
            code: "http_error".into(),
            message: if text.is_empty() { status.to_string() } else { text },
            details: None,
        });
        Err(ClientError::Api { status, detail })
    }

    async fn json<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
        let resp = Self::check(resp).await?;
        let bytes = read_capped(resp, MAX_RESPONSE_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// GETs a JSON document under the node's base URL (e.g. `/v1/ledger/status`).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.http.get(self.url(path)).send().await.map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// Every epoch link the node serves (`GET /v1/ledger/epochs`, page by page), as one `{"links": [...]}`
    /// document: what `vouch verify --epochs` reads.
    pub async fn epoch_links(&self) -> Result<serde_json::Value, ClientError> {
        let mut links = vec![];
        let mut from = 0u64;
        loop {
            let page: serde_json::Value = self.get(&format!("/v1/ledger/epochs?from={from}")).await?;
            links.extend(page["links"].as_array().cloned().unwrap_or_default());
            match page["next"].as_u64() {
                Some(n) if n > from => from = n,
                _ => break,
            }
        }
        Ok(serde_json::json!({ "links": links }))
    }

    /// `GET /v1/node`.
    pub async fn status(&self) -> Result<NodeStatus, ClientError> {
        self.get("/v1/node").await
    }

    /// Streams the file at `path` to the hub as a new version of `name`. `progress` sees bytes sent.
    pub async fn push(
        &self,
        path: &Path,
        name: &str,
        opts: &PushOptions,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<ModelVersion, ClientError> {
        let file_err = |source| ClientError::File { path: path.display().to_string(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let len = file.metadata().await.map_err(file_err)?.len();
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
            if let Ok(c) = &chunk {
                sent += c.len() as u64;
                progress(sent);
            }
            chunk
        });
        let tolerance = opts.tolerance.map(|(a, r)| (a.to_string(), r.to_string()));
        let mut query: Vec<(&str, &str)> = vec![];
        if let Some(v) = &opts.version {
            query.push(("version", v));
        }
        if let Some(d) = &opts.description {
            query.push(("description", d));
        }
        if let Some(c) = &opts.zk_calibration {
            query.push(("zk", "true"));
            query.push(("calibration", c));
            if opts.force {
                query.push(("force", "true"));
            }
            if opts.private_weights {
                query.push(("private_weights", "true"));
            }
        }
        if let Some((abs, rel)) = &tolerance {
            query.push(("tolerance_abs", abs));
            query.push(("tolerance_rel", rel));
        }
        let mut req = self
            .http
            .post(self.url(&format!("/v1/models/{}/versions", urlencode(name))))
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len);
        if let Some(auth) = &opts.auth {
            req = req.header("x-vouch-account", &auth.account).header("x-vouch-signature", &auth.signature);
        }
        let resp = req.body(reqwest::Body::wrap_stream(stream)).send().await.map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// `POST /v1/calibrations`: stores a calibration set (a JSON array of input documents).
    pub async fn upload_calibration(&self, docs: &serde_json::Value) -> Result<CalibrationRef, ClientError> {
        let resp =
            self.http.post(self.url("/v1/calibrations")).json(docs).send().await.map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// `GET /v1/models`.
    pub async fn list(&self) -> Result<Vec<ModelRepo>, ClientError> {
        Ok(self.get::<crate::ModelList>("/v1/models").await?.repos)
    }

    /// `GET /v1/models/{ref}`: `NAME`, `NAME@VERSION` or an id.
    pub async fn show(&self, reference: &str) -> Result<ModelVersion, ClientError> {
        self.get(&format!("/v1/models/{}", urlencode(reference))).await
    }

    /// Streams blob `id` into `out`, checking its hash; removes `out` on any failure.
    pub async fn pull(&self, id: ModelId, out: &Path) -> Result<u64, ClientError> {
        let resp = self.http.get(self.url(&format!("/v1/blobs/{id}"))).send().await.map_err(|e| self.connect_err(e))?;
        let resp = Self::check(resp).await?;
        let r = async {
            let file_err = |source| ClientError::File { path: out.display().to_string(), source };
            let mut file = tokio::fs::File::create(out).await.map_err(file_err)?;
            let mut hasher = blake3::Hasher::new();
            let mut n = 0u64;
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ClientError::Protocol(format!("download interrupted: {e}")))?;
                hasher.update(&chunk);
                n += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(file_err)?;
            }
            file.sync_all().await.map_err(file_err)?;
            let actual = ModelId::from_blake3(*hasher.finalize().as_bytes());
            if actual != id {
                return Err(ClientError::HashMismatch { expected: id, actual });
            }
            Ok(n)
        }
        .await;
        if r.is_err() {
            let _ = tokio::fs::remove_file(out).await;
        }
        r
    }

    /// `POST /v1/ledger/txs`: submits a signed transaction (canonical bytes); returns its id (hex).
    pub async fn submit_tx(&self, tx: Vec<u8>) -> Result<String, ClientError> {
        let resp = self
            .http
            .post(self.url("/v1/ledger/txs"))
            .header("content-type", "application/octet-stream")
            .body(tx)
            .send()
            .await
            .map_err(|e| self.connect_err(e))?;
        let v: serde_json::Value = Self::json(resp).await?;
        v["id"].as_str().map(str::to_owned).ok_or_else(|| ClientError::Protocol("no id in the answer".into()))
    }

    /// `POST /v1/jobs/prepare`: the unsigned `SubmitJob` of a quorum inference, for the requester to sign.
    pub async fn prepare_job(&self, req: &crate::PrepareJobRequest) -> Result<crate::PreparedJob, ClientError> {
        let resp =
            self.http.post(self.url("/v1/jobs/prepare")).json(req).send().await.map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// `POST /v1/jobs/{job}/execute`: asks an assigned executor to run a ledger job.
    pub async fn execute(&self, job: &str, req: &crate::ExecuteRequest) -> Result<crate::ExecuteResponse, ClientError> {
        let resp = self
            .http
            .post(self.url(&format!("/v1/jobs/{job}/execute")))
            .json(req)
            .send()
            .await
            .map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// `POST /v1/infer`; returns the receipt JSON as the node sent it.
    pub async fn infer(&self, req: &InferRequest) -> Result<serde_json::Value, ClientError> {
        let resp = self.http.post(self.url("/v1/infer")).json(req).send().await.map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// `POST /v1/infer` streaming its progress (`Accept: application/x-ndjson`): `progress` sees each progress event
    /// (for zk, one per layer proof); returns the receipt JSON, or the error event as [`ClientError::Api`].
    pub async fn infer_with_progress(
        &self,
        req: &InferRequest,
        mut progress: impl FnMut(&serde_json::Value),
    ) -> Result<serde_json::Value, ClientError> {
        let resp = self
            .http
            .post(self.url("/v1/infer"))
            .header(reqwest::header::ACCEPT, "application/x-ndjson")
            .json(req)
            .send()
            .await
            .map_err(|e| self.connect_err(e))?;
        let resp = Self::check(resp).await?;
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = vec![];
        loop {
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let ev: serde_json::Value = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Protocol(format!("malformed progress line: {e}")))?;
                match ev["event"].as_str() {
                    Some("progress") => progress(&ev),
                    Some("receipt") => return Ok(ev["receipt"].clone()),
                    Some("error") => {
                        let status = ev["status"]
                            .as_u64()
                            .and_then(|s| StatusCode::from_u16(s as u16).ok())
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        let detail: ErrorDetail = serde_json::from_value(ev["error"].clone())
                            .map_err(|e| ClientError::Protocol(format!("malformed error event: {e}")))?;
                        return Err(ClientError::Api { status, detail });
                    }
                    _ => return Err(ClientError::Protocol(format!("unknown event {ev}"))),
                }
            }
            match body.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk.map_err(|e| ClientError::Protocol(e.to_string()))?),
                None => return Err(ClientError::Protocol("the stream ended without a receipt".into())),
            }
        }
    }

    /// POSTs a JSON body and returns the JSON answer (e.g. `/v1/chat/completions`). Errors in OpenAI's shape
    /// (`{"error": {"message", "type", "param", "code"}}`) come back as [`ClientError::Api`] like the node's own.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, ClientError> {
        let resp = self.http.post(self.url(path)).json(body).send().await.map_err(|e| self.connect_err(e))?;
        Self::json(resp).await
    }

    /// POSTs a JSON body to a server-sent-events endpoint (`stream: true`): `on_event` gets each `data:` event's JSON
    /// in order until `data: [DONE]`. An `{"error": ...}` event ends the stream as [`ClientError::Api`].
    pub async fn post_sse(
        &self,
        path: &str,
        body: &serde_json::Value,
        mut on_event: impl FnMut(serde_json::Value),
    ) -> Result<(), ClientError> {
        let resp = self.http.post(self.url(path)).json(body).send().await.map_err(|e| self.connect_err(e))?;
        let resp = Self::check(resp).await?;
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = vec![];
        loop {
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let data: String = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<Vec<_>>()
                    .join("\n");
                if data.is_empty() {
                    continue;
                }
                if data == "[DONE]" {
                    return Ok(());
                }
                let v: serde_json::Value = serde_json::from_str(&data)
                    .map_err(|e| ClientError::Protocol(format!("malformed event {data:?}: {e}")))?;
                if v.get("error").is_some() && v.get("choices").is_none() {
                    let detail: ErrorDetail = serde_json::from_value(v["error"].clone())
                        .map_err(|e| ClientError::Protocol(format!("malformed error event: {e}")))?;
                    return Err(ClientError::Api { status: StatusCode::INTERNAL_SERVER_ERROR, detail });
                }
                on_event(v);
            }
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk.map_err(|e| ClientError::Protocol(e.to_string()))?),
                None => return Err(ClientError::Protocol("the stream ended without [DONE]".into())),
            }
        }
    }

    /// `GET /v1/receipts/{id}`.
    pub async fn receipt(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        self.get(&format!("/v1/receipts/{}", urlencode(id))).await
    }

    /// `GET /v1/settlements/{id}`: where the node settled a receipt in a batch.
    pub async fn settlement(&self, id: &str) -> Result<crate::Settlement, ClientError> {
        self.get(&format!("/v1/settlements/{}", urlencode(id))).await
    }
}

/// Percent-encodes a path segment (names are restricted, but ids and user input pass through here).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
