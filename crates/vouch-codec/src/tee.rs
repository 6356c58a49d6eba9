//! TEE attestation evidence: what a node running in a confidential machine carries in a `tee` receipt and submits
//! to the ledger. The platform reports are the vendors' own bytes (opaque here); `vouch-tee` produces and checks them.
//!
//! The evidence is a list of platform reports so a device attestation (e.g. a confidential GPU) can join the CPU's:
//! the first report is the CPU's, and its 64-byte report data is [`report_data`], which commits to the node's receipt
//! key, the chain, a recent finalized block hash, the attestation time and the digest of every further report.

use crate::canon::{Canonical, DecodeError, Reader, Writer};

/// One platform's report and the collateral needed to check it offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformReport {
    /// `tdx`, `sev-snp`, `nitro` or `simulated`.
    pub platform: String,
    /// The vendor's report or quote, byte-exact.
    pub report: Vec<u8>,
    /// What verifies it offline (TDX: the DCAP collateral JSON; SEV-SNP: the VCEK certificate; Nitro and the
    /// simulated platform: empty, the report carries its chain).
    pub collateral: Vec<u8>,
}

/// A node's attestation: the key and context its report data binds, and the platform reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeeEvidence {
    /// The node's receipt-signing public key, born in the confidential machine.
    pub key: [u8; 32],
    /// The chain id the attestation is for.
    pub chain: [u8; 32],
    /// A recent finalized block hash of that chain (freshness).
    pub freshness: [u8; 32],
    /// When the node attested (Unix ms, the freshness block's time as the node saw it).
    pub attested_at_ms: u64,
    /// The CPU's report first, then any device reports.
    pub reports: Vec<PlatformReport>,
}

/// The most platform reports one evidence may carry.
pub const MAX_TEE_REPORTS: usize = 8;

impl TeeEvidence {
    /// The 64 bytes the first (CPU) report must carry as its report data.
    pub fn report_data(&self) -> [u8; 64] {
        report_data(&self.key, &self.chain, &self.freshness, self.attested_at_ms, &self.device_digest())
    }

    /// Digest of the reports after the first (all zero when there are none).
    pub fn device_digest(&self) -> [u8; 32] {
        if self.reports.len() <= 1 {
            return [0; 32];
        }
        let mut w = Writer::new();
        w.len(self.reports.len() - 1);
        for r in &self.reports[1..] {
            r.encode(&mut w);
        }
        *blake3::Hasher::new_derive_key("VOUCH_TEE_DEVICE_REPORTS_V1").update(&w.finish()).finalize().as_bytes()
    }

    /// The evidence's id (what the ledger records).
    pub fn digest(&self) -> [u8; 32] {
        *blake3::Hasher::new_derive_key("VOUCH_TEE_EVIDENCE_V1").update(&self.to_canonical()).finalize().as_bytes()
    }
}

/// The domain-separated report data: `blake3_xof("VOUCH_TEE_REPORT_DATA_V1", key ‖ chain ‖ freshness ‖ time ‖
/// device digest)`, 64 bytes. A quote with it cannot be replayed for another key, chain or time.
pub fn report_data(
    key: &[u8; 32],
    chain: &[u8; 32],
    freshness: &[u8; 32],
    attested_at_ms: u64,
    device_digest: &[u8; 32],
) -> [u8; 64] {
    let mut h = blake3::Hasher::new_derive_key("VOUCH_TEE_REPORT_DATA_V1");
    h.update(key).update(chain).update(freshness).update(&attested_at_ms.to_le_bytes()).update(device_digest);
    let mut out = [0u8; 64];
    h.finalize_xof().fill(&mut out);
    out
}

impl Canonical for PlatformReport {
    const WHAT: &'static str = "platform report";

    fn encode(&self, w: &mut Writer) {
        w.str(&self.platform);
        w.bytes(&self.report);
        w.bytes(&self.collateral);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            platform: r.str("tee platform")?.to_owned(),
            report: r.bytes("tee report")?.to_vec(),
            collateral: r.bytes("tee collateral")?.to_vec(),
        })
    }
}

/// Key, chain, freshness, time, then the reports (count-prefixed).
impl Canonical for TeeEvidence {
    const WHAT: &'static str = "tee evidence";

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.key);
        w.raw(&self.chain);
        w.raw(&self.freshness);
        w.u64(self.attested_at_ms);
        w.len(self.reports.len());
        for r in &self.reports {
            r.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key = r.array("tee key")?;
        let chain = r.array("tee chain")?;
        let freshness = r.array("tee freshness")?;
        let attested_at_ms = r.u64("tee attestation time")?;
        let n = r.count("tee reports")?;
        if n == 0 || n > MAX_TEE_REPORTS {
            return Err(DecodeError::NonCanonical {
                what: "tee evidence",
                reason: format!("{n} platform reports (1 to {MAX_TEE_REPORTS} allowed)"),
            });
        }
        let reports = (0..n).map(|_| PlatformReport::decode(r)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { key, chain, freshness, attested_at_ms, reports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TeeEvidence {
        TeeEvidence {
            key: [1; 32],
            chain: [2; 32],
            freshness: [3; 32],
            attested_at_ms: 42,
            reports: vec![PlatformReport { platform: "simulated".into(), report: vec![9; 10], collateral: vec![] }],
        }
    }

    #[test]
    fn round_trips_and_binds_every_field() {
        let e = sample();
        assert_eq!(TeeEvidence::from_canonical(&e.to_canonical()).unwrap(), e);
        let base = e.report_data();
        let mut k = e.clone();
        k.key[0] ^= 1;
        let mut c = e.clone();
        c.chain[0] ^= 1;
        let mut f = e.clone();
        f.freshness[0] ^= 1;
        let mut t = e.clone();
        t.attested_at_ms += 1;
        let mut d = e.clone();
        d.reports.push(PlatformReport { platform: "gpu".into(), report: vec![1], collateral: vec![] });
        for changed in [k, c, f, t, d] {
            assert_ne!(changed.report_data(), base);
        }
    }

    #[test]
    fn refuses_no_reports_and_truncation() {
        let mut e = sample();
        e.reports.clear();
        assert!(TeeEvidence::from_canonical(&e.to_canonical()).is_err());
        let bytes = sample().to_canonical();
        for cut in 0..bytes.len() {
            assert!(TeeEvidence::from_canonical(&bytes[..cut]).is_err());
        }
    }
}
