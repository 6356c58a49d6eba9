//! `Attest`: a node's TEE attestation, verified by every validator with the block's time as "now".

use vouch_codec::tee::TeeEvidence;
use vouch_codec::tx::Address;

use crate::error::TxError;
use crate::state::{State, TxCtx, short};
use crate::types::{AttestationRecord, Event};

impl State {
    /// `Attest`: sent by the node's operator or the node key. The evidence must bind the node's key and this chain,
    /// name one of the recent finalized blocks for freshness, not claim a time before that block or after this one,
    /// and pass the chain's TEE policy at this block's time. The record replaces the node's previous one.
    pub(crate) fn attest(
        &mut self,
        c: &TxCtx<'_>,
        node: &Address,
        evidence: &TeeEvidence,
    ) -> Result<Vec<Event>, TxError> {
        let n = self.nodes.get(node).ok_or_else(|| TxError::UnknownNode(short(node)))?;
        if n.operator != c.tx.from && *node != c.tx.from {
            return Err(TxError::NotOperator(short(node)));
        }
        let refuse = |why: String| TxError::Attestation(why);
        let (_, (_, fresh_ms)) =
            self.blocks.iter().find(|(_, (hash, _))| *hash == evidence.freshness).ok_or_else(|| {
                refuse(format!(
                    "freshness {} is not one of the last {} finalized blocks",
                    hex::encode(&evidence.freshness[..8]),
                    self.params.tee.freshness_blocks
                ))
            })?;
        let skew_ms = vouch_tee::policy::CLOCK_SKEW_S * 1000;
        if evidence.attested_at_ms + skew_ms < *fresh_ms || evidence.attested_at_ms > c.block.time_ms + skew_ms {
            return Err(refuse(format!(
                "attestation time {} is outside [freshness block {fresh_ms}, this block {}]",
                evidence.attested_at_ms, c.block.time_ms
            )));
        }
        let policy = self.params.tee.policy();
        let expect = vouch_tee::Expect { key: Some(node), chain: Some(&self.chain) };
        let a = vouch_tee::verify_evidence(evidence, expect, &policy, c.block.time_ms / 1000)
            .map_err(|e| refuse(e.to_string()))?;
        let record = AttestationRecord {
            platform: a.platform.name().to_owned(),
            measurement: a.measurement,
            tcb_status: a.tcb_status,
            expires_at_ms: a.expires_at_s.saturating_mul(1000),
            evidence: evidence.digest(),
            height: c.block.height,
        };
        self.charge(c.tx.from, c.spend(0)?, c.tx.fee);
        self.nodes.get_mut(node).expect("checked").attestation = Some(record);
        Ok(vec![])
    }
}
