//! The simulated platform: evidence produced through the same code path as a real TEE's, but signed by a
//! per-installation root key instead of a vendor's hardware. It exists to test the plumbing without confidential
//! hardware and is reported as simulated everywhere: verifiers refuse it unless told otherwise
//! ([`crate::Policy::allow_simulated`]), and a chain accepts it only if its genesis lists the root.
//!
//! Report bytes: `VOUCHSIM`, version 1, root public key (32), measurement (48), report data (64), timestamp and
//! validity end (u64 LE Unix s), then the root's ed25519 signature over everything before it
//! (domain `VOUCH_TEE_SIMULATED_V1`).

use std::path::Path;

use vouch_crypto::NodeKey;

use crate::{Claims, Platform, Tcb, TeeError};

const MAGIC: &[u8; 8] = b"VOUCHSIM";
const VERSION: u8 = 1;
const DOMAIN: &str = "VOUCH_TEE_SIMULATED_V1";
const SIGNED_LEN: usize = 8 + 1 + 32 + 48 + 64 + 8 + 8;
/// Length of a simulated report.
pub const REPORT_LEN: usize = SIGNED_LEN + 64;
/// How long a simulated report is valid (it plays the role of a certificate's validity).
pub const VALIDITY_S: u64 = 30 * 24 * 3600;

/// A simulated attestation root.
pub struct SimulatedRoot {
    key: NodeKey,
}

impl SimulatedRoot {
    /// Loads the root key at `path`, creating it (0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        NodeKey::load_or_create(path)
            .map(|key| Self { key })
            .map_err(|e| format!("simulated TEE root {}: {e}", path.display()))
    }

    /// The root's public key (what a genesis or policy lists).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// Produces a report binding `report_data` for a machine with `measurement`, at `now_s`.
    pub fn report(&self, measurement: &[u8; 48], report_data: &[u8; 64], now_s: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPORT_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.key.public_key());
        out.extend_from_slice(measurement);
        out.extend_from_slice(report_data);
        out.extend_from_slice(&now_s.to_le_bytes());
        out.extend_from_slice(&now_s.saturating_add(VALIDITY_S).to_le_bytes());
        let sig = self.key.sign(DOMAIN, &out);
        out.extend_from_slice(&sig);
        out
    }
}

/// The simulated measurement of the running program: a 48-byte hash of its executable.
pub fn measure_self() -> Result<[u8; 48], String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the running executable: {e}"))?;
    let mut h = blake3::Hasher::new_derive_key("VOUCH_TEE_SIMULATED_MEASUREMENT_V1");
    std::fs::File::open(&exe)
        .and_then(|mut f| std::io::copy(&mut f, &mut h))
        .map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
    let mut m = [0u8; 48];
    h.finalize_xof().fill(&mut m);
    Ok(m)
}

fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

/// Verifies a simulated report's signature by the root it names and its validity window.
pub(crate) fn verify(report: &[u8], now_s: u64) -> Result<Claims, TeeError> {
    let p = Platform::Simulated;
    if report.len() != REPORT_LEN {
        return Err(TeeError::malformed(p, format!("{} bytes, a simulated report has {REPORT_LEN}", report.len())));
    }
    if &report[..8] != MAGIC || report[8] != VERSION {
        return Err(TeeError::malformed(p, "bad magic or version"));
    }
    let root: [u8; 32] = arr(report, 9);
    let measurement: [u8; 48] = arr(report, 41);
    let report_data: [u8; 64] = arr(report, 89);
    let produced = u64::from_le_bytes(arr(report, 153));
    let not_after = u64::from_le_bytes(arr(report, 161));
    let sig: [u8; 64] = arr(report, SIGNED_LEN);
    vouch_crypto::verify(DOMAIN, &root, &report[..SIGNED_LEN], &sig)
        .map_err(|_| TeeError::BadSignature { platform: p, reason: "the root's signature does not verify".into() })?;
    if now_s > not_after || now_s.saturating_add(crate::policy::CLOCK_SKEW_S) < produced {
        return Err(TeeError::Expired {
            platform: p,
            now_s,
            reason: format!("the simulated report is valid from {produced} to {not_after}"),
        });
    }
    Ok(Claims {
        platform: p,
        measurement: measurement.to_vec(),
        report_data,
        tcb: Tcb::NotReported,
        not_after_s: not_after,
        produced_at_s: Some(produced),
        simulated_root: Some(root),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, TeeError};

    #[test]
    fn verifies_and_refuses_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = SimulatedRoot::load_or_create(&dir.path().join("root.key")).unwrap();
        let r = root.report(&[7; 48], &[9; 64], 1_000);
        let c = verify(&r, 1_000).unwrap();
        assert_eq!((c.measurement, c.report_data, c.simulated_root), (vec![7; 48], [9; 64], Some(root.public_key())));
        for at in [9, 41, 89, 153, SIGNED_LEN] {
            let mut bad = r.clone();
            bad[at] ^= 1;
            assert!(matches!(verify(&bad, 1_000), Err(TeeError::BadSignature { .. })), "byte {at}");
        }
        assert!(matches!(verify(&r, 1_000 + VALIDITY_S + 1), Err(TeeError::Expired { .. })));
        assert!(matches!(verify(&r[..100], 1_000), Err(TeeError::Malformed { .. })));
        // Refused as simulated unless the policy allows it, and then only from a listed root if roots are listed.
        let c = verify(&r, 1_000).unwrap();
        assert_eq!(Policy::default().check(&c), Err(TeeError::Simulated));
        let allow = Policy { allow_simulated: true, ..Policy::default() };
        assert_eq!(allow.check(&c).unwrap(), "NotReported");
        let listed = Policy { simulated_roots: vec![hex::encode([1u8; 32])], ..allow };
        assert!(matches!(listed.check(&c), Err(TeeError::UnknownSimulatedRoot { .. })));
    }
}
