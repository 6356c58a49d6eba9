//! The verification policy: which TCB levels, measurements, evidence ages and simulated roots are accepted.
//! It is a TOML/JSON document (`vouch verify --tee-policy FILE`) and the chain parameters' `tee` section.

use crate::{Claims, Platform, Tcb, TeeError};

/// Clock skew tolerated between an attestation's stated time and the verifier's clock.
pub const CLOCK_SKEW_S: u64 = 300;

/// An SEV-SNP TCB level (security version numbers of the PSP bootloader, the PSP OS, the SNP firmware and the
/// microcode). A report is up to date when every component is at least the policy's minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode patch level SVN.
    pub microcode: u8,
}

impl SnpTcb {
    /// Whether every component is at least `min`'s.
    pub fn at_least(&self, min: &SnpTcb) -> bool {
        self.bootloader >= min.bootloader
            && self.tee >= min.tee
            && self.snp >= min.snp
            && self.microcode >= min.microcode
    }
}

impl std::fmt::Display for SnpTcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bootloader={} tee={} snp={} microcode={}", self.bootloader, self.tee, self.snp, self.microcode)
    }
}

/// What a verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Accepted Intel TCB statuses (default: `UpToDate` only). The SEV-SNP level is judged against `snp_min_tcb`
    /// and reported as `UpToDate` or `OutOfDate`, so listing `OutOfDate` accepts an old SNP TCB too.
    pub accepted_tcb: Vec<String>,
    /// Allowed launch measurements (hex). Empty: any measurement is accepted and reported.
    pub measurements: Vec<String>,
    /// The oldest evidence accepted, in seconds since its attestation time.
    pub max_age_s: u64,
    /// Whether simulated evidence is accepted at all.
    pub allow_simulated: bool,
    /// Simulated roots accepted (hex ed25519 keys); empty with `allow_simulated`: any simulated root.
    pub simulated_roots: Vec<String>,
    /// The SEV-SNP minimum TCB. Vouch's default is the level of the reference Milan report it is tested with
    /// (bootloader 3, tee 0, snp 8, microcode 115); an operator sets AMD's current bulletin values here.
    pub snp_min_tcb: SnpTcb,
}

/// The TCB status name that is accepted by default.
pub const UP_TO_DATE: &str = "UpToDate";

impl Default for Policy {
    fn default() -> Self {
        Self {
            accepted_tcb: vec![UP_TO_DATE.into()],
            measurements: Vec::new(),
            max_age_s: 7 * 24 * 3600,
            allow_simulated: false,
            simulated_roots: Vec::new(),
            snp_min_tcb: SnpTcb { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
        }
    }
}

impl Policy {
    /// Checks a verified report's claims: simulated evidence, TCB level, measurement. Returns the TCB status name.
    pub fn check(&self, claims: &Claims) -> Result<String, TeeError> {
        if let Some(root) = &claims.simulated_root {
            if !self.allow_simulated {
                return Err(TeeError::Simulated);
            }
            let hex_root = hex::encode(root);
            if !self.simulated_roots.is_empty()
                && !self.simulated_roots.iter().any(|r| r.eq_ignore_ascii_case(&hex_root))
            {
                return Err(TeeError::UnknownSimulatedRoot { root: hex_root });
            }
        }
        let status = match &claims.tcb {
            Tcb::Status { status, advisories } => {
                if !self.accepted_tcb.iter().any(|a| a == status) {
                    let status = if advisories.is_empty() {
                        status.clone()
                    } else {
                        format!("{status} (advisories {})", advisories.join(", "))
                    };
                    return Err(TeeError::TcbNotAccepted {
                        platform: claims.platform,
                        status,
                        accepted: self.accepted_tcb.join(", "),
                    });
                }
                status.clone()
            }
            Tcb::Snp(tcb) => {
                let status = if tcb.at_least(&self.snp_min_tcb) { UP_TO_DATE } else { "OutOfDate" };
                if !self.accepted_tcb.iter().any(|a| a == status) {
                    return Err(TeeError::TcbNotAccepted {
                        platform: Platform::SevSnp,
                        status: format!("{status} (reported {tcb})"),
                        accepted: format!("{} with minimum {}", self.accepted_tcb.join(", "), self.snp_min_tcb),
                    });
                }
                status.to_owned()
            }
            Tcb::NotReported => "NotReported".to_owned(),
        };
        let m = hex::encode(&claims.measurement);
        if !self.measurements.is_empty() && !self.measurements.iter().any(|a| a.eq_ignore_ascii_case(&m)) {
            return Err(TeeError::MeasurementNotAllowed { platform: claims.platform, measurement: m });
        }
        Ok(status)
    }
}
