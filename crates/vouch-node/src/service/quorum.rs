//! `quorum` mode. The entry node submits a job to the ledger, which assigns K distinct executors (stake-weighted,
//! seeded by the finalized parent block hash). Each executor re-runs the inputs, signs one deterministic receipt
//! body (same model, job, time = the job block's timestamp, input and output digests, the assigned executor list)
//! and submits its result to the ledger itself. Agreement: the entry node returns one receipt with K signatures over
//! the same id, and the ledger settles and pays. Disagreement: the ledger opens a dispute; the entry node hands the
//! inputs to the dispute set, whose results decide on the ledger (losers slashed, winners paid).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use vouch_api::{ExecuteRequest, ExecuteResponse, ModelVersion, PreparedJob};
use vouch_codec::tensor::{TensorJson, digest_map, map_from_json, map_to_json};
use vouch_codec::tx::{Address, SignedTx, Tx, TxKind};
use vouch_codec::{AgreementRule, Canonical, Digest, Evidence, Mode, Receipt, ReceiptBody, TensorMap, domain};
use vouch_ledger::{Event, JobStatus};

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::execution::{self, Settle, parse_inputs, run_model};
use crate::service::{models, replicate};

const LEDGER_WAIT: Duration = Duration::from_secs(30);
/// How long an executor waits for a job it is asked about to reach its own ledger when the request names no height.
const EXECUTOR_WAIT: Duration = Duration::from_secs(10);
/// How long an executor waits for its ledger to reach the height the request names.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);
/// The furthest ahead of this node's tip a request's height may be for the executor to wait for it (an honest entry
/// node is at most a few blocks ahead; a node far behind answers at once and catches up meanwhile).
const MAX_HEIGHT_AHEAD: u64 = 256;

/// An executor's signed result: the body every honest executor of the round signs, its signature, the outputs.
pub(crate) struct Executed {
    pub body: ReceiptBody,
    pub signature: [u8; 64],
    pub outputs: TensorMap,
}

impl Executed {
    /// The wire form (`POST /v1/jobs/{job}/execute`).
    pub fn to_response(&self, me: &Address) -> Result<ExecuteResponse, ApiError> {
        Ok(ExecuteResponse {
            public_key: hex::encode(me),
            body: hex::encode(self.body.to_bytes()),
            signature: hex::encode(self.signature),
            outputs: serde_json::to_value(map_to_json(&self.outputs)).map_err(ApiError::internal)?,
        })
    }
}

/// Parses the candidates an asking node offers (JSON output maps), refusing a malformed one with its position.
pub(crate) fn parse_candidates(candidates: &[serde_json::Value]) -> Result<Vec<TensorMap>, ApiError> {
    candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c: BTreeMap<String, TensorJson> = serde_json::from_value(c.clone())
                .map_err(|e| ApiError::new(Code::InvalidCandidate, format!("candidate {i}: {e}")))?;
            map_from_json(&c)
                .map_err(|(n, e)| ApiError::new(Code::InvalidCandidate, format!("candidate {i}: {n}: {e}")))
        })
        .collect()
}

/// The body every honest executor of `job` signs for `outputs`.
async fn job_body(
    s: &NodeState,
    job: &Digest,
    record: &ModelVersion,
    input_digest: Digest,
    outputs: &TensorMap,
) -> Option<ReceiptBody> {
    let chain = s.chain.chain();
    let j = chain.job(job)?;
    let issued_at_ms = s.chain.block_time(j.height).await?;
    // The round may have moved on (a dispute opened) while the block time was read.
    let j = chain.job(job)?;
    let executors = if j.status == JobStatus::Disputed { j.dispute_set.clone() } else { j.executors.clone() };
    let rule = chain.model(&j.model)?.rule;
    Some(s.issuer_for(record).quorum_body(record.id, job.0, issued_at_ms, input_digest, outputs, executors, rule))
}

/// `POST /v1/jobs/{job}/execute` on an assigned executor (or the entry node's own share, called directly).
pub(crate) async fn execute(
    s: Arc<NodeState>,
    job: Digest,
    inputs: &serde_json::Value,
    candidates: &[TensorMap],
    min_height: Option<u64>,
) -> Result<Executed, ApiError> {
    let me = s.key.public_key();
    let chain = s.chain.chain();
    // The entry node may be ahead of this one: first wait until this node's ledger reaches the height the entry node
    // saw (so a dispute opened there is open here too), then for the job itself.
    if let Some(m) = min_height
        && m > chain.height().saturating_add(MAX_HEIGHT_AHEAD)
    {
        return Err(ApiError::new(
            Code::LedgerBehind,
            format!(
                "this node's ledger is at height {}, the request needs {m}: more than {MAX_HEIGHT_AHEAD} blocks ahead, \
                 not waited for",
                chain.height()
            ),
        ));
    }
    if let Some(m) = min_height
        && !s.chain.wait_height(m, CATCH_UP_WAIT).await
    {
        return Err(ApiError::new(
            Code::LedgerBehind,
            format!("this node's ledger is at height {}, the request needs {m}", chain.height()),
        ));
    }
    let unknown = || ApiError::new(Code::UnknownJob, format!("job {job} is not on this node's ledger"));
    let j = match chain.job(&job) {
        Some(j) => j,
        None if min_height.is_some() => return Err(unknown()),
        None => s.chain.wait_job(&job, |_| true, EXECUTOR_WAIT).await.ok_or_else(unknown)?,
    };
    let round = if j.status == JobStatus::Disputed { &j.dispute_set } else { &j.executors };
    if !round.contains(&me) {
        return Err(ApiError::new(Code::NotAssigned, format!("this node is not assigned to job {job}")));
    }
    let record = replicate::ensure_model(&s, &j.model.to_string()).await?;
    let inputs = parse_inputs(&record, inputs)?;
    if digest_map(&inputs) != j.input_digest {
        return Err(ApiError::new(Code::InputMismatch, "the inputs do not hash to the job's input digest"));
    }
    let mut outputs = run_model(&s, &record, &inputs).await?;
    if s.config.fault_flip_outputs {
        flip_first_bit(&mut outputs);
    }
    // The rule comes from the ledger, never from the caller.
    let outputs = choose_output(chain.rule(&j.model), outputs, candidates);
    let body = job_body(&s, &job, &record, j.input_digest, &outputs)
        .await
        .ok_or_else(|| ApiError::new(Code::JobClosed, format!("job {job} is no longer open")))?;
    let signature = s.issuer_for(&record).sign(&body);
    let kind = TxKind::SubmitResult { job, node: me, body: body.to_bytes(), signature };
    s.chain.sign_submit(&s.key, kind).map_err(|e| ApiError::new(Code::LedgerUnavailable, e.to_string()))?;
    // The first assigned executor settles the receipt its round signs (so exactly one settlement per receipt), in its
    // next batch.
    if body.executors.first() == Some(&me) {
        s.receipts.owe_settlement(body.id()).await?;
    }
    Ok(Executed { body, signature, outputs })
}

/// What an executor signs: under a tolerance, the first output another executor of the round signed that its own
/// `outputs` agree with (so honest executors on different hardware sign one digest); otherwise, and always under
/// the exact rule, its own outputs.
fn choose_output(rule: AgreementRule, outputs: TensorMap, candidates: &[TensorMap]) -> TensorMap {
    if rule == AgreementRule::Exact {
        return outputs;
    }
    candidates.iter().find(|c| rule.agrees_on(c, &outputs)).cloned().unwrap_or(outputs)
}

/// Fault injection for tests (`fault_flip_outputs`): a lying executor flips the lowest bit of the first element of
/// the first numeric output (a language model's first generated token).
fn flip_first_bit(outputs: &mut TensorMap) {
    use vouch_codec::{Tensor, TensorData};
    for t in outputs.values_mut() {
        let mut data = t.data().clone();
        let flipped = match &mut data {
            TensorData::F32(v) => v.iter_mut().take(1).map(|x| *x = f32::from_bits(x.to_bits() ^ 1)).count(),
            TensorData::F64(v) => v.iter_mut().take(1).map(|x| *x = f64::from_bits(x.to_bits() ^ 1)).count(),
            TensorData::I64(v) => v.iter_mut().take(1).map(|x| *x ^= 1).count(),
            TensorData::I32(v) => v.iter_mut().take(1).map(|x| *x ^= 1).count(),
            TensorData::I16(v) => v.iter_mut().take(1).map(|x| *x ^= 1).count(),
            TensorData::U32(v) => v.iter_mut().take(1).map(|x| *x ^= 1).count(),
            _ => 0,
        };
        if flipped > 0
            && let Ok(t2) = Tensor::new(t.shape().to_vec(), data)
        {
            *t = t2;
            return;
        }
    }
}

/// One executor's answer, checked.
struct Answer {
    node: Address,
    body: ReceiptBody,
    signature: [u8; 64],
    outputs: TensorMap,
}

/// Asks one executor of `job`: this node directly, another over HTTP (its answer checked: its key, its signature over
/// the body, the outputs against the signed digest).
async fn ask(
    s: &Arc<NodeState>,
    node: Address,
    job: Digest,
    inputs: &serde_json::Value,
    candidates: &[TensorMap],
) -> Result<Answer, String> {
    let min_height = Some(s.chain.chain().height());
    if node == s.key.public_key() {
        let e = execute(s.clone(), job, inputs, candidates, min_height).await.map_err(|e| e.message)?;
        return Ok(Answer { node, body: e.body, signature: e.signature, outputs: e.outputs });
    }
    let candidates = candidates
        .iter()
        .map(|c| serde_json::to_value(map_to_json(c)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let req = ExecuteRequest { inputs: inputs.clone(), candidates, min_height };
    let endpoint = s.chain.chain().node(&node).map(|n| n.endpoint).ok_or("executor not registered")?;
    let resp = vouch_api::Client::new(&endpoint).execute(&job.to_hex(), &req).await.map_err(|e| e.to_string())?;
    let pk: [u8; 32] = hex::decode(&resp.public_key).ok().and_then(|v| v.try_into().ok()).ok_or("bad public key")?;
    if pk != node {
        return Err("answered by another node".into());
    }
    let body_bytes = hex::decode(&resp.body).map_err(|e| e.to_string())?;
    let mut r = vouch_codec::Reader::new(&body_bytes);
    let body = ReceiptBody::decode(&mut r).map_err(|e| e.to_string())?;
    r.finish("receipt body").map_err(|e| e.to_string())?;
    let signature: [u8; 64] =
        hex::decode(&resp.signature).ok().and_then(|v| v.try_into().ok()).ok_or("bad signature")?;
    vouch_crypto::verify(domain::RECEIPT_SIGNATURE, &node, &body.id().0, &signature).map_err(|e| e.to_string())?;
    let outputs: BTreeMap<String, TensorJson> = serde_json::from_value(resp.outputs).map_err(|e| e.to_string())?;
    let outputs = map_from_json(&outputs).map_err(|(n, e)| format!("output {n}: {e}"))?;
    if digest_map(&outputs) != body.output_digest {
        return Err("outputs do not match the signed digest".into());
    }
    Ok(Answer { node, body, signature, outputs })
}

/// Adds `outputs` to the candidates offered to the next executors, unless an identical one is there.
fn offer(candidates: &mut Vec<TensorMap>, outputs: &TensorMap) {
    let d = digest_map(outputs);
    if !candidates.iter().any(|c| digest_map(c) == d) {
        candidates.push(outputs.clone());
    }
}

/// Asks a round of executors. Exact rule: all at once. Tolerance: one after another, each offered the distinct
/// outputs signed so far (in order) so it can sign one it agrees with.
async fn ask_round(
    s: &Arc<NodeState>,
    round: &[Address],
    job: Digest,
    doc: &serde_json::Value,
    rule: AgreementRule,
    mut candidates: Vec<TensorMap>,
) -> Vec<Result<Answer, String>> {
    if rule == AgreementRule::Exact {
        return futures_util::future::join_all(round.iter().map(|n| ask(s, *n, job, doc, &[]))).await;
    }
    let mut out = Vec::with_capacity(round.len());
    for n in round {
        let a = ask(s, *n, job, doc, &candidates).await;
        if let Ok(a) = &a {
            offer(&mut candidates, &a.outputs);
        }
        out.push(a);
    }
    out
}

/// `POST /v1/jobs/prepare`: the requester's unsigned `SubmitJob` for these inputs. The model is resolved (replicated
/// if needed) and recorded on the ledger first, so the job can name it and the nonce is read after that.
pub(crate) async fn prepare(s: Arc<NodeState>, req: vouch_api::PrepareJobRequest) -> Result<PreparedJob, ApiError> {
    let mut from = [0u8; 32];
    hex::decode_to_slice(&req.from, &mut from)
        .map_err(|_| ApiError::new(Code::InvalidId, "from is an account address (64 hex characters)"))?;
    if req.quorum < 2 {
        return Err(ApiError::new(Code::InvalidQuorum, "quorum mode needs at least 2 executors"));
    }
    let record = replicate::ensure_model(&s, &req.model).await?;
    let inputs = parse_inputs(&record, &req.inputs)?;
    if let Some(id) = models::register(&s, &record)? {
        s.chain.wait_tx(&id, LEDGER_WAIT).await;
    }
    let chain = s.chain.chain();
    let tx = Tx {
        chain: chain.chain_id(),
        from,
        nonce: chain.next_nonce(&from),
        fee: s.chain.spec.params.min_fee,
        kind: TxKind::SubmitJob {
            model: record.id,
            input_digest: digest_map(&inputs),
            mode: Mode::Quorum,
            quorum: req.quorum,
            fee_per_executor: req.fee_per_executor,
        },
    };
    Ok(PreparedJob { tx: hex::encode(tx.to_bytes()), id: tx.id().to_hex() })
}

/// Checks a requester's signed `SubmitJob` against the request: this model, these inputs, quorum mode, and the
/// quorum asked for (if any). Returns the transaction bytes.
fn check_job_tx(
    hex_tx: &str,
    model: &vouch_codec::ModelId,
    inputs: &Digest,
    quorum: Option<u8>,
) -> Result<(Bytes, SignedTx), ApiError> {
    let bad = |m: String| ApiError::new(Code::InvalidJobTx, m);
    let bytes = hex::decode(hex_tx).map_err(|e| bad(format!("job_tx is not hex: {e}")))?;
    let stx = SignedTx::from_bytes(&bytes).map_err(|e| bad(format!("job_tx: {e}")))?;
    let TxKind::SubmitJob { model: m, input_digest, mode, quorum: k, .. } = &stx.tx.kind else {
        return Err(bad("job_tx is not a SubmitJob transaction".into()));
    };
    let mismatch = |what: String| ApiError::new(Code::JobMismatch, what);
    if m != model {
        return Err(mismatch(format!("job_tx is for model {m}, the request for {model}")));
    }
    if input_digest != inputs {
        return Err(mismatch(format!("job_tx is for inputs {input_digest}, the request's inputs are {inputs}")));
    }
    if *mode != Mode::Quorum {
        return Err(mismatch(format!("job_tx asks for mode {}, not quorum", mode.name())));
    }
    if quorum.is_some_and(|q| q != *k) {
        return Err(mismatch(format!("job_tx asks for {k} executors, the request for {}", quorum.unwrap_or(0))));
    }
    Ok((Bytes::from(bytes), stx))
}

/// The entry node's side of a quorum inference. The requester's account pays: `job_tx` is its signed `SubmitJob`.
pub(crate) async fn infer(
    s: Arc<NodeState>,
    record: ModelVersion,
    doc: serde_json::Value,
    quorum: Option<u8>,
    job_tx: Option<String>,
) -> Result<Receipt, ApiError> {
    let inputs = parse_inputs(&record, &doc)?;
    let input_digest = digest_map(&inputs);
    let Some(job_tx) = job_tx else {
        return Err(ApiError::new(
            Code::JobTxRequired,
            "quorum mode is paid by the requester: send job_tx, a SubmitJob transaction signed by your account \
             (`vouch infer --mode quorum --account KEY` builds it)",
        ));
    };
    let (job_bytes, stx) = check_job_tx(&job_tx, &record.id, &input_digest, quorum)?;
    if let TxKind::SubmitJob { quorum: k @ 0..2, .. } = stx.tx.kind {
        return Err(ApiError::new(Code::InvalidQuorum, format!("quorum mode needs at least 2 executors, got {k}")));
    }
    // The model must be on the ledger, with its agreement rule, before a job can name it (pushing registers it; a
    // replica of a model pushed elsewhere may still be waiting for that).
    if let Some(id) = models::register(&s, &record)? {
        s.chain.wait_tx(&id, LEDGER_WAIT).await;
    }
    let rule = s.chain.chain().rule(&record.id);
    let id = s.chain.submit(job_bytes)?;
    let rec = s
        .chain
        .wait_tx(&id, LEDGER_WAIT)
        .await
        .ok_or_else(|| ApiError::new(Code::LedgerTimeout, "the job was not finalized in time"))?;
    let events = rec.result.map_err(|e| ApiError::new(Code::JobRejected, e))?;
    let Some((job, executors)) = events.iter().find_map(|e| match e {
        Event::JobAssigned { job, executors } => Some((*job, executors.clone())),
        _ => None,
    }) else {
        return Err(ApiError::internal("job finalized without an assignment"));
    };
    let answers = ask_round(&s, &executors, job, &doc, rule, vec![]).await;
    let mut good = vec![];
    let mut failures = vec![];
    for (n, a) in executors.iter().zip(answers) {
        match a {
            Ok(a) => good.push(a),
            Err(e) => failures.push(format!("{}: {e}", hex::encode(&n[..8]))),
        }
    }
    let agreed = !good.is_empty() && good.iter().all(|a| a.body.id() == good[0].body.id());
    if agreed && good.len() == executors.len() {
        let a0 = &good[0];
        let receipt = Receipt {
            body: a0.body.clone(),
            inputs: s.config.disclose_inputs.then(|| inputs.clone()),
            outputs: a0.outputs.clone(),
            evidence: good.iter().map(|a| Evidence::Ed25519 { public_key: a.node, signature: a.signature }).collect(),
            anchor: None,
        };
        return execution::finish(&s, receipt, Settle::ByExecutor).await;
    }
    // Disagreement (or silence): the ledger decides. Hand the inputs to the dispute set once it is drawn.
    let decided = s.chain.wait_job(&job, |j| j.status != JobStatus::Pending, LEDGER_WAIT).await;
    let mut resolution = None;
    if let Some(j) = decided.filter(|j| j.status == JobStatus::Disputed) {
        // Under a tolerance the re-executors are offered every distinct output the round signed.
        let mut offered = vec![];
        if rule != AgreementRule::Exact {
            good.iter().for_each(|a| offer(&mut offered, &a.outputs));
        }
        let _ = ask_round(&s, &j.dispute_set, job, &doc, rule, offered).await;
        let resolved = s.chain.wait_job(&job, |j| matches!(j.status, JobStatus::Resolved(_)), LEDGER_WAIT).await;
        if let Some(JobStatus::Resolved(d)) = resolved.map(|j| j.status) {
            resolution = Some(d);
        }
    }
    Err(ApiError::new(
        Code::QuorumDisagreement,
        format!("the {} executors of job {job} did not agree; the ledger decides by re-execution", executors.len()),
    )
    .details(serde_json::json!({
        "job": job.to_hex(),
        "answers": good.iter().map(|a| serde_json::json!({"node": hex::encode(a.node), "output_digest": a.body.output_digest.to_hex()})).collect::<Vec<_>>(),
        "failures": failures,
        "resolved_output_digest": resolution.map(|d| d.to_hex()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_codec::{Tensor, TensorData};

    fn out(v: &[f32]) -> TensorMap {
        TensorMap::from([("y".to_owned(), Tensor::new(vec![v.len() as u64], TensorData::F32(v.to_vec())).unwrap())])
    }

    fn json(m: &TensorMap) -> serde_json::Value {
        serde_json::to_value(map_to_json(m)).unwrap()
    }

    #[test]
    fn an_executor_signs_the_first_candidate_within_tolerance_or_else_its_own_output() {
        let tol = AgreementRule::Tolerance { abs: 1e-3, rel: 0.0 };
        let own = out(&[1.0, 2.0]);
        let far = out(&[1.5, 2.0]);
        let near = out(&[1.0004, 2.0]);
        let nearer = out(&[1.0, 2.0001]);
        let offered = |c: &[&TensorMap]| parse_candidates(&c.iter().map(|m| json(m)).collect::<Vec<_>>()).unwrap();
        // The first agreeing candidate in the offered order, not the closest.
        let chosen = choose_output(tol, own.clone(), &offered(&[&far, &near, &nearer]));
        assert_eq!(chosen, near);
        // Nothing within tolerance: its own output (which then disagrees, and the ledger opens a dispute).
        assert_eq!(choose_output(tol, own.clone(), &offered(&[&far])), own);
        assert_eq!(choose_output(tol, own.clone(), &[]), own);
        // The exact rule never adopts another output, however close.
        assert_eq!(choose_output(AgreementRule::Exact, own.clone(), &offered(&[&nearer])), own);
        // A candidate that is not an output map is refused with its position.
        let e = parse_candidates(&[json(&far), serde_json::json!({"y": "nope"})]).unwrap_err();
        assert_eq!((e.status(), e.code), (axum::http::StatusCode::BAD_REQUEST, Code::InvalidCandidate));
        assert!(e.message.starts_with("candidate 1"), "{}", e.message);
    }
}
