//! Explorer-friendly JSON views of the ledger: status, blocks, transactions, accounts, executor nodes; and
//! transaction submission.

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde_json::{Value, json};
use vouch_codec::Digest;
use vouch_codec::tx::Address;

use super::{AppState, hex_id};
use crate::error::{ApiError, Code};

/// `GET /v1/ledger/status`.
pub(super) async fn status(State(s): AppState) -> Json<Value> {
    let chain = s.chain.chain();
    let finalized_txs = chain.finalized_count();
    let tip = chain.tip();
    // The newest block a TEE attestation may name as its freshness value (only blocks with transactions are
    // recorded, so this can lag the tip on an idle chain).
    let tee_freshness = chain
        .freshness()
        .map(|(height, hash, time_ms)| json!({ "height": height, "hash": hex::encode(hash), "time_ms": time_ms }));
    Json(json!({
        "chain_id": hex::encode(chain.chain_id()),
        "height": tip.height,
        "last_block_hash": hex::encode(tip.digest()),
        "last_block_time_ms": tip.timestamp_ms,
        "state_root": chain.root_at(tip.height).map(|r| r.to_hex()),
        "validators": s.chain.spec.validators,
        "finalized_txs": finalized_txs,
        "mempool": chain.mempool_len(),
        "settled_receipts": chain.settled_count(),
        "restored_from_snapshot": chain.restored_height(),
        "state_synced_at": chain.synced_height(),
        "state_store": chain.store_status(),
        "tee_freshness": tee_freshness,
    }))
}

/// `GET /v1/ledger/genesis`: the chain spec.
pub(super) async fn genesis(State(s): AppState) -> Json<Value> {
    Json(serde_json::to_value(&s.chain.spec).unwrap_or(Value::Null))
}

/// `GET /v1/ledger/blocks/{height}`.
pub(super) async fn block(State(s): AppState, Path(height): Path<u64>) -> Result<Json<Value>, ApiError> {
    let chain = s.chain.chain();
    // Only executed blocks: a finalized block the executor has not applied yet has no transaction results.
    if height > chain.height() {
        return Err(ApiError::new(Code::BlockNotFound, format!("block {height} is not finalized and executed yet")));
    }
    let b = s
        .chain
        .block(height)
        .await
        .ok_or_else(|| ApiError::new(Code::BlockNotFound, format!("no finalized block {height}")))?;
    let h = b.header();
    let txs: Vec<Value> = b
        .txs()
        .iter()
        .map(|t| match vouch_codec::tx::SignedTx::from_bytes(t) {
            Ok(stx) => {
                let mut v = tx_json(&stx);
                v["result"] = json!(chain.tx_record(&stx.tx.id()).map(|r| result_json(&r.result)));
                v
            }
            Err(e) => match <vouch_chain::epoch::EpochChange as vouch_codec::Canonical>::from_canonical(t) {
                Ok(c) => json!({"epoch_change": {"epoch": c.epoch, "state_root": hex::encode(c.state_root),
                    "validators": c.validators.iter().map(hex::encode).collect::<Vec<_>>()}}),
                Err(_) => json!({"malformed": e.to_string()}),
            },
        })
        .collect();
    let state_root = chain.root_at(h.height).map(|r| r.to_hex());
    Ok(Json(json!({
        "height": h.height, "hash": hex::encode(h.digest()), "parent": hex::encode(h.parent),
        "timestamp_ms": h.timestamp_ms, "tx_root": hex::encode(h.tx_root),
        "state_root": state_root, "txs": txs,
    })))
}

/// `GET /v1/ledger/validators`: how the validator set changes, the sets fixed, and the bonded keys.
pub(super) async fn validators(State(s): AppState) -> Json<Value> {
    let chain = s.chain.chain();
    let p = chain.genesis().params.validators.clone();
    let height = chain.height();
    let epoch = p.epoch_of(height + 1);
    let sets: Vec<Value> = match p.epochs() {
        true => chain
            .fixed_validator_sets()
            .into_iter()
            .map(|(e, set)| json!({"epoch": e, "validators": set.iter().map(hex::encode).collect::<Vec<_>>()}))
            .collect(),
        false => vec![
            json!({"epoch": 0, "validators": chain.genesis().validators.iter().map(hex::encode).collect::<Vec<_>>()}),
        ],
    };
    let bonded: Vec<Value> = chain
        .validator_records()
        .into_iter()
        .map(|(k, v)| {
            let unbonding: Vec<Value> =
                v.unbonding.iter().map(|(h, a)| json!({"release_height": h, "amount": a})).collect();
            json!({"key": hex::encode(k), "operator": hex::encode(v.operator), "p2p": v.p2p, "stake": v.stake,
                   "unbonding": unbonding})
        })
        .collect();
    Json(json!({
        "epochs": p.epochs(), "epoch_length": p.epoch_length, "min_stake": p.min_stake,
        "max_validators": p.max_validators, "unbonding_blocks": p.unbonding_blocks,
        "height": height, "epoch": epoch, "epoch_ends_at": p.epochs().then(|| p.last_height(epoch)),
        "sets": sets, "bonded": bonded,
    }))
}

/// Query of `GET /v1/ledger/epochs`.
#[derive(serde::Deserialize)]
pub(super) struct EpochsQuery {
    /// First epoch whose boundary link to include (default 0).
    #[serde(default)]
    from: u64,
}

/// Most epoch links in one answer (each reads a block and a certificate from the archive).
const EPOCH_LINKS_PAGE: u64 = 256;

/// `GET /v1/ledger/epochs?from=K`: the links proving the validator sets of epochs `K + 1` up to the current one,
/// each the canonical bytes of an `EpochLink` in hex, for `vouch verify --epochs`; at most 256 per answer, `next`
/// names the `from` of the next page (null on the last).
pub(super) async fn epochs(
    State(s): AppState,
    axum::extract::Query(q): axum::extract::Query<EpochsQuery>,
) -> Result<Json<Value>, ApiError> {
    use vouch_codec::Canonical as _;
    let chain = s.chain.chain();
    let p = chain.genesis().params.validators.clone();
    // A chain whose set is fixed needs no links: its genesis set certifies every block.
    let current = p.epoch_of(chain.height() + 1);
    if !p.epochs() || current == 0 || q.from >= current {
        return Ok(Json(json!({"from": q.from, "links": [], "next": null})));
    }
    let to = (current - 1).min(q.from.saturating_add(EPOCH_LINKS_PAGE - 1));
    let links = s.chain.epoch_links(q.from, to).await.map_err(|e| {
        ApiError::new(
            Code::EpochLinkUnavailable,
            format!("the boundary block of epoch {e} or its finalization is not stored here"),
        )
    })?;
    let hex_links: Vec<String> = links.iter().map(|l| hex::encode(l.to_canonical())).collect();
    let next = (to + 1 < current).then_some(to + 1);
    Ok(Json(json!({"from": q.from, "links": hex_links, "next": next})))
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
        SettleBatch { .. } => "settle_batch",
        Unbond { .. } => "unbond",
        SetEngine { .. } => "set_engine",
        Attest { .. } => "attest",
        BondValidator { .. } => "bond_validator",
        UnbondValidator { .. } => "unbond_validator",
    }
}

/// A transaction's action, decoded for people: its fields, with addresses and digests in hex and opaque payloads
/// (signatures, receipt bodies, attestation evidence) as their sizes.
fn action_json(k: &vouch_codec::tx::TxKind) -> Value {
    use vouch_codec::tx::TxKind::*;
    let mut v = match k {
        Transfer { to, amount } => json!({"to": hex::encode(to), "amount": amount}),
        RegisterNode { node, endpoint, stake, .. } => {
            json!({"node": hex::encode(node), "endpoint": endpoint, "stake": stake})
        }
        AddStake { node, amount } | Unbond { node, amount } => json!({"node": hex::encode(node), "amount": amount}),
        RegisterModel { model, name, commitment, rule } => {
            json!({"model": model.to_string(), "name": name, "commitment_bytes": commitment.len(), "rule": rule})
        }
        SubmitJob { model, input_digest, mode, quorum, fee_per_executor } => json!({"model": model.to_string(),
            "input_digest": input_digest.to_hex(), "mode": mode.name(), "quorum": quorum,
            "fee_per_executor": fee_per_executor}),
        SubmitResult { job, node, body, .. } => {
            json!({"job": job.to_hex(), "node": hex::encode(node), "body_bytes": body.len()})
        }
        SettleReceipt { receipt } => json!({"receipt": receipt.to_hex()}),
        SettleBatch { root, count } => json!({"root": root.to_hex(), "count": count}),
        SetEngine { node, engine } => json!({"node": hex::encode(node), "engine": engine}),
        Attest { node, evidence } => json!({"node": hex::encode(node), "attested_at_ms": evidence.attested_at_ms,
            "reports": evidence.reports.len()}),
        BondValidator { key, p2p, stake, .. } => json!({"key": hex::encode(key), "p2p": p2p, "stake": stake}),
        UnbondValidator { key } => json!({"key": hex::encode(key)}),
    };
    v["kind"] = kind_name(k).into();
    v
}

/// A transaction's sender, nonce, fee and action.
fn tx_json(stx: &vouch_codec::tx::SignedTx) -> Value {
    json!({"id": stx.tx.id().to_hex(), "from": hex::encode(stx.tx.from), "nonce": stx.tx.nonce, "fee": stx.tx.fee,
           "kind": kind_name(&stx.tx.kind), "action": action_json(&stx.tx.kind)})
}

fn result_json(r: &Result<Vec<vouch_ledger::Event>, String>) -> Value {
    match r {
        Ok(events) => json!({"ok": true, "events": events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>()}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// `GET /v1/ledger/nodes`: executor nodes with stake and slashes.
pub(super) async fn nodes(State(s): AppState) -> Json<Value> {
    let nodes: Vec<Value> = s
        .chain
        .chain()
        .nodes()
        .iter()
        .map(|(k, n)| {
            let unbonding: Vec<Value> =
                n.unbonding.iter().map(|(h, a)| json!({"release_height": h, "amount": a})).collect();
            let attestation = n.attestation.as_ref().map(|a| {
                json!({"platform": a.platform, "measurement": hex::encode(&a.measurement), "tcb_status": a.tcb_status,
                       "expires_at_ms": a.expires_at_ms, "height": a.height, "evidence": hex::encode(a.evidence),
                       "valid": a.valid_at(crate::now_ms())})
            });
            json!({"node": hex::encode(k), "operator": hex::encode(n.operator), "endpoint": n.endpoint,
                   "engine": n.engine, "stake": n.stake, "slashed": n.slashed, "unbonding": unbonding,
                   "attestation": attestation})
        })
        .collect();
    Json(json!(nodes))
}

/// `GET /v1/ledger/accounts/{address}`.
pub(super) async fn account(State(s): AppState, Path(address): Path<String>) -> Result<Json<Value>, ApiError> {
    let a: Address = hex_id("an address", &address)?;
    let chain = s.chain.chain();
    let height = chain.height();
    let acc = chain.account(&a);
    let next_nonce = chain.next_nonce(&a);
    Ok(Json(json!({"address": address, "balance": acc.balance, "nonce": acc.nonce, "next_nonce": next_nonce,
                   "height": height})))
}

/// `POST /v1/ledger/txs`: a signed transaction (canonical bytes).
pub(super) async fn submit_tx(State(s): AppState, body: Bytes) -> Result<Json<Value>, ApiError> {
    let id = s.chain.submit(body)?;
    Ok(Json(json!({"id": id.to_hex()})))
}

/// `GET /v1/ledger/txs/{id}`: where a transaction was finalized and what it did; with its sender, nonce, fee and
/// action while its block is in this node's archive.
pub(super) async fn tx(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let d = Digest(hex_id("a transaction id", &id)?);
    let Some(r) = s.chain.chain().tx_record(&d) else {
        return Err(ApiError::new(Code::TxNotFound, format!("transaction {id} is not finalized")));
    };
    let mut v = json!({"id": id, "height": r.height, "index": r.index, "result": result_json(&r.result)});
    let decoded = s.chain.block(r.height).await.and_then(|b| {
        let bytes = b.txs().get(r.index as usize)?;
        vouch_codec::tx::SignedTx::from_bytes(bytes).ok().filter(|stx| stx.tx.id() == d)
    });
    if let Some(stx) = decoded
        && let (Value::Object(dst), Value::Object(src)) = (&mut v, tx_json(&stx))
    {
        for (k, x) in src {
            dst.entry(k).or_insert(x);
        }
    }
    Ok(Json(v))
}
