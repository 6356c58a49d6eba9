//! `POST /v1/infer`: a request in its mode (signed, zk, quorum) to a stored receipt.

use std::sync::Arc;

use vouch_api::InferRequest;
use vouch_codec::{Mode, Receipt};

use crate::NodeState;
use crate::error::{ApiError, Code};
use crate::service::execution::{ProgressTx, Settle, finish, parse_inputs, run_model};
use crate::service::{blocking, quorum, replicate, tee, zk};

/// `POST /v1/infer`: runs the request in its mode and returns the stored receipt.
pub(crate) async fn infer(
    s: Arc<NodeState>,
    req: InferRequest,
    progress: Option<ProgressTx>,
) -> Result<Receipt, ApiError> {
    let mode: Mode = req.mode.parse().map_err(|e: String| ApiError::new(Code::InvalidMode, e))?;
    let record = replicate::ensure_model(&s, &req.model).await?;
    if mode == Mode::Quorum && record.zk.as_ref().is_some_and(|z| z.hidden_weights) {
        return Err(ApiError::new(
            Code::ModelPrivate,
            "the model was pushed with private weights: no other node can re-execute it, so it has no quorum mode",
        ));
    }
    if mode == Mode::Quorum {
        return quorum::infer(s, record, req.inputs, req.quorum, req.job_tx).await;
    }
    if req.job_tx.is_some() {
        return Err(ApiError::new(Code::InvalidJobTx, "job_tx is for quorum mode"));
    }
    let salt = match (&req.private_input, mode) {
        (None, _) => None,
        (Some(p), Mode::Zk) => Some(
            vouch_zk::private::Salt::from_hex(&p.salt)
                .map_err(|e| ApiError::new(Code::InvalidPrivateInput, e.to_string()))?,
        ),
        (Some(_), _) => return Err(ApiError::new(Code::InvalidPrivateInput, "private_input is for zk mode")),
    };
    // A node that cannot serve tee mode says so before doing any work.
    let evidence = if mode == Mode::Tee { Some(tee::evidence(&s)?) } else { None };
    let inputs = parse_inputs(&record, &req.inputs)?;
    let receipt = if mode == Mode::Zk {
        let _permit = s.infer_slots.acquire().await.map_err(ApiError::internal)?;
        let st = s.clone();
        blocking(move || zk::prove(&st, &record, &inputs, salt, progress.as_ref())).await?
    } else if let Some(evidence) = evidence {
        let outputs = run_model(&s, &record, &inputs).await?;
        let r =
            s.issuer_for(&record).tee(record.id, rand::random(), inputs, s.config.disclose_inputs, outputs, evidence);
        tee::self_check(&s, &r)?;
        r
    } else {
        let outputs = run_model(&s, &record, &inputs).await?;
        s.issuer_for(&record).signed(record.id, rand::random(), inputs, s.config.disclose_inputs, outputs)
    };
    finish(&s, receipt, Settle::Here).await
}
