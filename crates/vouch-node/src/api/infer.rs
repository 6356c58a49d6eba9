//! Inference, receipts and verification.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use vouch_api::{InferRequest, VerifyResponse};
use vouch_codec::Digest;

use super::{AppState, hex_id, parse_body};
use crate::error::{ApiError, Code};
use crate::service::access::{ClientId, Spend};
use crate::service::{blocking, inference};

/// `POST /v1/infer`. With `Accept: application/x-ndjson` the answer streams: one JSON object per line, progress
/// events (`{"event": "progress", ...}`; zk proofs report each layer proof) and then exactly one of
/// `{"event": "receipt", "receipt": ...}` or `{"event": "error", "status": 422, "error": {...}}`.
pub(super) async fn infer(
    State(s): AppState,
    Extension(client): Extension<ClientId>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Every receipt costs the node a settlement: charged against the client's quota before any work.
    s.access.charge(&client, Spend::Receipt)?;
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|m| m.trim().starts_with("application/x-ndjson")));
    if !streaming {
        let req: InferRequest = parse_body(body)?;
        let receipt = inference::infer(s, req, None).await?;
        return Ok(Json(receipt.to_json()).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let progress = tx.clone();
    let task = tokio::spawn(async move {
        let req: InferRequest = parse_body(body)?;
        inference::infer(s, req, Some(progress)).await
    });
    // The outcome is the last line; the stream ends when every sender is gone.
    tokio::spawn(async move {
        let last = match task.await {
            Ok(Ok(receipt)) => serde_json::json!({"event": "receipt", "receipt": receipt.to_json()}),
            Ok(Err(e)) => serde_json::json!({"event": "error", "status": e.status().as_u16(), "error": e.body().error}),
            Err(e) => serde_json::json!({"event": "error", "status": 500,
                "error": {"code": Code::Internal.as_str(), "message": e.to_string()}}),
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

/// `GET /v1/receipts/{id}`: a stored receipt, with its ledger anchor once the settlement is finalized (the anchor is
/// stored with it the first time it is found).
pub(super) async fn get_receipt(
    State(s): AppState,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let digest = Digest(hex_id("a receipt id", &id)?);
    let st = s.clone();
    let receipt = blocking(move || Ok(st.receipts.get(&digest)?)).await?;
    let Some(mut r) = receipt else {
        return Err(ApiError::new(Code::ReceiptNotFound, format!("no receipt {id}")));
    };
    if r.anchor.is_none()
        && let Some(anchor) = crate::service::settlement::anchor(&s, &r.body).await
    {
        r.anchor = Some(anchor);
        s.receipts.put(&r, false).await?;
    }
    Ok(Json(serde_json::to_value(r.to_json()).map_err(ApiError::internal)?))
}

/// `GET /v1/settlements/{id}`: where a receipt this node settled sits in its batch (the batch root, the leaf index
/// and the Merkle path), so that another node serving the receipt can build its anchor.
pub(super) async fn settlement(
    State(s): AppState,
    Path(id): Path<String>,
) -> Result<Json<vouch_api::Settlement>, ApiError> {
    let digest = Digest(hex_id("a receipt id", &id)?);
    let st = s.clone();
    blocking(move || {
        crate::service::settlement::place(&st, &digest)?.ok_or_else(|| crate::service::settlement::not_found(&digest))
    })
    .await
    .map(Json)
}

/// `POST /v1/verify`: the offline verifier, run by the node on a receipt's JSON (its body limit is
/// [`MAX_VERIFY_BYTES`]), and a ledger anchor checked against this node's chain (its validator sets); each check is
/// listed. The work runs on the blocking pool behind the inference slots, never on the async workers.
pub(super) async fn verify(
    State(s): AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let value: serde_json::Value = parse_body(body)?;
    let _permit = s.infer_slots.acquire().await.map_err(ApiError::internal)?;
    let st = s.clone();
    let resp = blocking(move || Ok(verify_checks(&st, &value.to_string()))).await?;
    Ok(Json(resp))
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> vouch_api::VerifyCheck {
    vouch_api::VerifyCheck { check: name.into(), ok, detail: detail.into() }
}

/// The checks of `POST /v1/verify`: the receipt's own (id, signatures, proof, attestation), then its anchor.
fn verify_checks(s: &crate::NodeState, text: &str) -> VerifyResponse {
    let v = match vouch_receipt::verify_json(text, None) {
        Ok(v) => v,
        Err(e) => {
            let reason = e.to_string();
            return VerifyResponse {
                valid: false,
                id: None,
                checks: vec![check("receipt", false, &reason)],
                reason: Some(reason),
            };
        }
    };
    let mut checks = vec![
        check("receipt", true, format!("well formed; its body hashes to its id {}", v.id)),
        check(
            "signatures",
            true,
            format!("{} executor signature(s) over the body verified ({} mode)", v.signers.len(), v.mode.name()),
        ),
    ];
    match (&v.private_input, v.zk_layers) {
        (Some(c), _) => checks.push(check(
            "zk proof",
            true,
            format!(
                "private-input proof verified ({}); the input is committed as {c}",
                vouch_zk::private::SYSTEM_DESCRIPTION
            ),
        )),
        (None, Some(n)) => checks.push(check(
            "zk proof",
            true,
            format!("{n} layer STARKs verified ({})", vouch_zk::SYSTEM_DESCRIPTION),
        )),
        (None, None) => {}
    }
    if let Some(t) = &v.tee {
        checks.push(check(
            "attestation",
            true,
            format!(
                "{}{} attestation binds the signer; measurement {}; TCB {}",
                t.platform,
                if t.simulated { " (simulated, not a TEE)" } else { "" },
                hex::encode(&t.measurement),
                t.tcb_status
            ),
        ));
    }
    let receipt = serde_json::from_str::<vouch_codec::ReceiptJson>(text).ok().and_then(|j| j.to_receipt().ok());
    let mut reason = None;
    if let Some(r) = receipt
        && let Some(anchor) = &r.anchor
    {
        match s.chain.verify_anchor(anchor, &r.body) {
            Ok(()) => checks.push(check(
                "anchor",
                true,
                format!(
                    "settled at height {}; the finalization certificate verifies against this chain's validators",
                    anchor.height
                ),
            )),
            Err(e) => {
                let why = format!("anchor: {e}");
                checks.push(check("anchor", false, &why));
                reason = Some(why);
            }
        }
    }
    VerifyResponse { valid: reason.is_none(), id: Some(v.id.to_hex()), reason, checks }
}

/// Largest receipt `POST /v1/verify` takes (a private-input zk receipt of the bench models is 1-2 MiB).
pub(super) const MAX_VERIFY_BYTES: usize = 16 << 20;
