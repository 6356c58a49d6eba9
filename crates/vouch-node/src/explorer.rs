//! Explorer-friendly JSON views of the ledger: status, blocks, transactions, accounts, executor nodes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};
use vouch_chain::SubmitError;
use vouch_codec::Digest;
use vouch_codec::tx::Address;

use crate::{ApiError, NodeState};

type AppState = State<Arc<NodeState>>;

fn hex_id(what: &'static str, s: &str) -> Result<[u8; 32], ApiError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", format!("{what} is 64 hex characters")))?;
    Ok(out)
}

/// `GET /v1/ledger/status`.
pub(crate) async fn status(State(s): AppState) -> Json<Value> {
    let chain = &s.ledger.running.chain;
    // Before taking the state lock: the count reads the state itself.
    let finalized_txs = chain.finalized_count();
    let st = chain.state();
    let tip = st.tip();
    Json(json!({
        "chain_id": hex::encode(chain.chain_id()),
        "height": st.height,
        "last_block_hash": hex::encode(tip.digest()),
        "last_block_time_ms": tip.timestamp_ms,
        "state_root": st.roots.get(&st.height).map(|r| r.to_hex()),
        "validators": s.ledger.spec.validators,
        "finalized_txs": finalized_txs,
        "mempool": chain.mempool_len(),
        "settled_receipts": st.ledger.receipts.len(),
        "restored_from_snapshot": chain.restored_height(),
    }))
}

/// `GET /v1/ledger/genesis`: the chain spec.
pub(crate) async fn genesis(State(s): AppState) -> Json<Value> {
    Json(serde_json::to_value(&s.ledger.spec).unwrap_or(Value::Null))
}

/// `GET /v1/ledger/blocks/{height}`.
pub(crate) async fn block(State(s): AppState, Path(height): Path<u64>) -> Result<Json<Value>, ApiError> {
    // Only executed blocks: a finalized block the executor has not applied yet has no transaction results.
    if height > s.ledger.running.chain.state().height {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "block_not_found",
            format!("block {height} is not finalized and executed yet"),
        ));
    }
    let block = s.ledger.running.marshal.get_block(commonware_consensus_height(height)).await.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "block_not_found", format!("no finalized block {height}"))
    })?;
    let b = block.inner();
    let h = b.header();
    // Each record lookup takes the state lock itself: none is held here.
    let txs: Vec<Value> = b
        .txs()
        .iter()
        .map(|t| match vouch_codec::tx::SignedTx::from_bytes(t) {
            Ok(stx) => {
                let id = stx.tx.id();
                json!({"id": id.to_hex(), "from": hex::encode(stx.tx.from), "nonce": stx.tx.nonce,
                       "kind": kind_name(&stx.tx.kind),
                       "result": s.ledger.running.chain.tx_record(&id).map(|r| result_json(&r.result))})
            }
            Err(e) => json!({"malformed": e.to_string()}),
        })
        .collect();
    let state_root = s.ledger.running.chain.root_at(h.height).map(|r| r.to_hex());
    Ok(Json(json!({
        "height": h.height, "hash": hex::encode(h.digest()), "parent": hex::encode(h.parent),
        "timestamp_ms": h.timestamp_ms, "tx_root": hex::encode(h.tx_root),
        "state_root": state_root, "txs": txs,
    })))
}

fn commonware_consensus_height(h: u64) -> vouch_chain::validator::Height {
    vouch_chain::validator::Height::new(h)
}

fn kind_name(k: &vouch_codec::tx::TxKind) -> &'static str {
    use vouch_codec::tx::TxKind::*;
    match k {
        Transfer { .. } => "transfer",
        RegisterNode { .. } => "register_node",
        AddStake { .. } => "add_stake",
        RegisterModel { .. } => "register_model",
        SubmitJob { .. } => "submit_job",
        SubmitResult { .. } => "submit_result",
        SettleReceipt { .. } => "settle_receipt",
        Unbond { .. } => "unbond",
    }
}

fn result_json(r: &Result<Vec<vouch_ledger::Event>, String>) -> Value {
    match r {
        Ok(events) => json!({"ok": true, "events": events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>()}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// `GET /v1/ledger/nodes`: executor nodes with stake and slashes.
pub(crate) async fn nodes(State(s): AppState) -> Json<Value> {
    let st = s.ledger.running.chain.state();
    let nodes: Vec<Value> = st
        .ledger
        .nodes
        .iter()
        .map(|(k, n)| {
            let unbonding: Vec<Value> =
                n.unbonding.iter().map(|(h, a)| json!({"release_height": h, "amount": a})).collect();
            json!({"node": hex::encode(k), "operator": hex::encode(n.operator), "endpoint": n.endpoint,
                   "stake": n.stake, "slashed": n.slashed, "unbonding": unbonding})
        })
        .collect();
    Json(json!(nodes))
}

/// `GET /v1/ledger/accounts/{address}`.
pub(crate) async fn account(State(s): AppState, Path(address): Path<String>) -> Result<Json<Value>, ApiError> {
    let a: Address = hex_id("an address", &address)?;
    let st = s.ledger.running.chain.state();
    let acc = st.ledger.accounts.get(&a).cloned().unwrap_or_default();
    let height = st.height;
    drop(st);
    let next_nonce = s.ledger.running.chain.next_nonce(&a);
    Ok(Json(json!({"address": address, "balance": acc.balance, "nonce": acc.nonce, "next_nonce": next_nonce,
                   "height": height})))
}

/// `POST /v1/ledger/txs`: a signed transaction (canonical bytes).
pub(crate) async fn submit_tx(State(s): AppState, body: Bytes) -> Result<Json<Value>, ApiError> {
    let id = s.ledger.submit(body).map_err(submit_error)?;
    Ok(Json(json!({"id": id.to_hex()})))
}

/// The API error for a refused transaction.
pub(crate) fn submit_error(e: SubmitError) -> ApiError {
    let code = match e {
        SubmitError::Malformed(_) => "malformed_tx",
        SubmitError::Invalid(_) => "invalid_tx",
        SubmitError::Rejected(vouch_ledger::TxError::InsufficientBalance { .. }) => "insufficient_balance",
        SubmitError::Rejected(vouch_ledger::TxError::UnknownJob(_)) => "unknown_job",
        SubmitError::Rejected(_) => "rejected_tx",
        SubmitError::StaleNonce { .. } => "stale_nonce",
        SubmitError::AlreadyFinalized(_) => "already_finalized",
        SubmitError::Full(_) => "mempool_full",
    };
    let status =
        if matches!(e, SubmitError::Full(_)) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_REQUEST };
    ApiError::new(status, code, e.to_string())
}

/// `GET /v1/ledger/txs/{id}`: where a transaction was finalized and what it did.
pub(crate) async fn tx(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let d = Digest(hex_id("a transaction id", &id)?);
    match s.ledger.running.chain.tx_record(&d) {
        Some(r) => Ok(Json(json!({"id": id, "height": r.height, "index": r.index, "result": result_json(&r.result)}))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "tx_not_found", format!("transaction {id} is not finalized"))),
    }
}
