//! The node's TEE: the platform detected at start, its attestation on the ledger (submitted after registration and
//! again before it expires), and the evidence `tee` receipts carry.
//!
//! The receipt key is the node key, generated inside the machine at first start; the evidence's report data binds
//! it with the chain id and the latest finalized block. Before submitting an attestation the node verifies it with
//! the chain's own policy, and before issuing a `tee` receipt it verifies the receipt: nothing it could not verify
//! itself leaves the node.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use vouch_codec::tx::TxKind;
use vouch_codec::{Receipt, TeeEvidence};
use vouch_tee::attest::{DetectOptions, detect};
use vouch_tee::{Attester, NoTee, Platform};

use crate::error::{ApiError, Code};
use crate::{NodeConfig, NodeState, now_ms};

/// Attempts to attest are at least this far apart.
const RETRY: Duration = Duration::from_secs(10);

/// The node's TEE state.
pub(crate) struct Tee {
    attester: Result<Box<dyn Attester>, NoTee>,
    /// The attestation the ledger holds for this node (if this process made it) and the newest one submitted: the
    /// ledger's record names which one serves, so the current one keeps serving until a renewal is recorded.
    submitted: Mutex<Vec<TeeEvidence>>,
    last_try: Mutex<Option<Instant>>,
    /// The last attestation transaction until its outcome is seen, the refusals in a row since the last accepted
    /// one (each doubles the wait before the next try, up to 64x), and the last refusal's reason.
    outcome: Mutex<Outcome>,
}

#[derive(Default)]
struct Outcome {
    pending: Option<vouch_codec::Digest>,
    refusals: u32,
    last_error: Option<String>,
}

impl Tee {
    /// Detects the platform (the simulated one when configured).
    pub fn detect(config: &NodeConfig) -> Self {
        let opts = DetectOptions {
            simulate: config.tee_simulate_root.clone(),
            collateral: config.tee_collateral.clone(),
            ..DetectOptions::default()
        };
        let attester = detect(&opts);
        match &attester {
            Ok(a) => tracing::info!(platform = %a.platform(), "tee.detected"),
            Err(e) => tracing::info!(reason = %e, "tee.none"),
        }
        Self {
            attester,
            submitted: Mutex::new(Vec::new()),
            last_try: Mutex::new(None),
            outcome: Mutex::new(Outcome::default()),
        }
    }

    fn refused(&self, why: String) {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        o.refusals += 1;
        o.last_error = Some(why);
    }

    /// The submitted attestation with this digest.
    fn submitted(&self, digest: &[u8; 32]) -> Option<TeeEvidence> {
        self.submitted.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|e| e.digest() == *digest).cloned()
    }

    fn latest_digest(&self) -> Option<[u8; 32]> {
        self.submitted.lock().unwrap_or_else(|p| p.into_inner()).last().map(TeeEvidence::digest)
    }
}

/// The simulated root's public key when the node runs with `--tee-simulate` (what a `--dev` genesis lists).
pub(crate) fn simulated_root(config: &NodeConfig) -> Result<Option<[u8; 32]>, String> {
    config
        .tee_simulate_root
        .as_deref()
        .map(|p| vouch_tee::simulated::SimulatedRoot::load_or_create(p).map(|r| r.public_key()))
        .transpose()
}

/// Attests on the ledger when this node has a TEE, is registered, and holds no attestation the ledger accepted
/// that stays valid for another third of the chain's attestation lifetime. At most once per [`RETRY`], doubled after
/// each refusal in a row (by the ledger or by the node's own check), up to 64x.
pub(crate) fn ensure_attested(st: &NodeState) {
    let Ok(attester) = &st.tee.attester else { return };
    let me = st.key.public_key();
    let chain = st.chain.chain();
    let Some(record) = chain.node(&me) else { return };
    let refusals = {
        let mut o = st.tee.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = o.pending.and_then(|id| chain.tx_record(&id)) {
            o.pending = None;
            match r.result {
                Ok(_) => {
                    o.refusals = 0;
                    o.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger.attest refused");
                    o.refusals += 1;
                    o.last_error = Some(e);
                }
            }
        }
        o.refusals
    };
    let params = chain.genesis().params.tee.clone();
    let now = now_ms();
    let margin = params.attestation_ttl_s.saturating_mul(1000) / 3;
    let latest = st.tee.latest_digest();
    let fine = record
        .attestation
        .as_ref()
        .is_some_and(|a| Some(a.evidence) == latest && a.expires_at_ms > now.saturating_add(margin));
    if fine {
        return;
    }
    {
        let mut last = st.tee.last_try.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < RETRY * 2u32.pow(refusals.min(6))) {
            return;
        }
        *last = Some(Instant::now());
    }
    match attest(st, attester.as_ref(), &params.policy()) {
        Ok(ev) => match st.chain.sign_submit(&st.key, TxKind::Attest { node: me, evidence: ev.clone() }) {
            Ok(id) => {
                tracing::info!(tx = %id, platform = %attester.platform(), "ledger.attest submitted");
                st.tee.outcome.lock().unwrap_or_else(|p| p.into_inner()).pending = Some(id);
                // Keep the one the ledger holds now (it serves until the renewal is recorded) and the new one.
                let on_ledger = record.attestation.as_ref().map(|a| a.evidence);
                let mut submitted = st.tee.submitted.lock().unwrap_or_else(|p| p.into_inner());
                submitted.retain(|e| Some(e.digest()) == on_ledger);
                submitted.push(ev);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ledger.attest failed");
                st.tee.refused(e.to_string());
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "tee.attest failed");
            st.tee.refused(e);
        }
    }
}

/// A fresh attestation for this node's key, this chain and the newest block its ledger records for freshness, at
/// this machine's time, verified with the chain's policy before it is used.
fn attest(st: &NodeState, attester: &dyn Attester, policy: &vouch_tee::Policy) -> Result<TeeEvidence, String> {
    let chain = st.chain.chain();
    let (_, freshness, _) = chain.freshness().ok_or("the ledger records no block to attest against yet")?;
    let mut ev = TeeEvidence {
        key: st.key.public_key(),
        chain: chain.chain_id(),
        freshness,
        attested_at_ms: now_ms(),
        reports: vec![],
    };
    let report = attester.attest(&ev.report_data())?;
    ev.reports.push(report);
    let expect = vouch_tee::Expect { key: Some(&ev.key), chain: Some(&ev.chain) };
    vouch_tee::verify_evidence(&ev, expect, policy, now_ms() / 1000)
        .map_err(|e| format!("the node's own verifier refused its attestation: {e}"))?;
    Ok(ev)
}

/// The evidence for a `tee` receipt issued now: this node's attestation as the ledger recorded it, still valid.
pub(crate) fn evidence(st: &NodeState) -> Result<TeeEvidence, ApiError> {
    let unavailable = |m: String| ApiError::new(Code::TeeUnavailable, m);
    if let Err(no) = &st.tee.attester {
        return Err(unavailable(format!("this node cannot serve tee mode: {no}")));
    }
    let me = st.key.public_key();
    let record = st.chain.chain().node(&me).and_then(|n| n.attestation);
    let Some(record) = record else {
        return Err(unavailable("this node has no attestation on the ledger yet (it attests once registered)".into()));
    };
    if !record.valid_at(now_ms()) {
        return Err(unavailable(format!(
            "this node's attestation on the ledger expired at {} ms (it re-attests)",
            record.expires_at_ms
        )));
    }
    st.tee
        .submitted(&record.evidence)
        .ok_or_else(|| unavailable("the ledger has not yet recorded this node's current attestation".into()))
}

/// The node's own verification of a `tee` receipt before it is issued, with the chain's policy.
pub(crate) fn self_check(st: &NodeState, receipt: &Receipt) -> Result<(), ApiError> {
    let opts = vouch_receipt::VerifyOptions {
        tee_policy: Some(st.chain.chain().genesis().params.tee.policy()),
        ..Default::default()
    };
    vouch_receipt::verify(receipt, &opts).map(|_| ()).map_err(|e| {
        tracing::error!(error = %e, "tee.self_check_failed");
        ApiError::new(Code::TeeSelfCheckFailed, format!("the node's own verifier refused the receipt: {e}"))
    })
}

/// What `/v1/node` says about the TEE.
pub(crate) fn status(st: &NodeState) -> serde_json::Value {
    let record = st.chain.chain().node(&st.key.public_key()).and_then(|n| n.attestation);
    match &st.tee.attester {
        Err(no) => serde_json::json!({"platform": null, "reason": no.to_string()}),
        Ok(a) => serde_json::json!({
            "platform": a.platform().name(),
            "last_refusal": st.tee.outcome.lock().unwrap_or_else(|p| p.into_inner()).last_error.clone(),
            "simulated": a.platform() == Platform::Simulated,
            "attestation": record.map(|r| serde_json::json!({
                "measurement": hex::encode(&r.measurement), "tcb_status": r.tcb_status,
                "expires_at_ms": r.expires_at_ms, "height": r.height, "evidence": hex::encode(r.evidence),
                "valid": r.valid_at(now_ms()),
            })),
        }),
    }
}
