//! TEE attestation for Vouch's `tee` mode.
//!
//! A node in a confidential machine generates its receipt key there and asks the hardware for a report whose
//! 64-byte report data is [`vouch_codec::tee::report_data`] over that key, the chain id, a recent finalized block
//! hash and the time ([`attest`]). Anyone then checks the evidence offline ([`verify_evidence`]):
//!
//! 1. the platform report against the vendor's root pinned in this binary, at a given time ([`verify_report`]:
//!    Intel TDX through `dcap-qvl`, AMD SEV-SNP through `sev`, AWS Nitro through `nitro_attest`; the `simulated`
//!    platform against its per-installation root);
//! 2. that its report data binds the key, chain and freshness the evidence names;
//! 3. the [`Policy`]: accepted TCB levels, allowed measurements, the maximum evidence age, simulated evidence.
//!
//! Every refusal is a [`TeeError`] variant naming the check that failed.

use vouch_codec::tee::{PlatformReport, TeeEvidence};

pub mod attest;
mod nitro;
pub mod policy;
pub mod simulated;
mod snp;
mod tdx;

pub use attest::{Attester, NoTee, detect};
pub use policy::{Policy, SnpTcb};

/// A confidential-computing platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// Intel TDX (a DCAP quote).
    Tdx,
    /// AMD SEV-SNP (an attestation report signed by the chip's VCEK).
    SevSnp,
    /// AWS Nitro Enclaves (an NSM attestation document).
    Nitro,
    /// Vouch's simulated platform: the plumbing without hardware, never a TEE.
    Simulated,
}

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 4] = [Platform::Tdx, Platform::SevSnp, Platform::Nitro, Platform::Simulated];

    /// The name evidence carries.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Tdx => "tdx",
            Platform::SevSnp => "sev-snp",
            Platform::Nitro => "nitro",
            Platform::Simulated => "simulated",
        }
    }

    /// Parses a platform name.
    pub fn parse(s: &str) -> Result<Self, TeeError> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| TeeError::UnsupportedPlatform(s.to_owned()))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The TCB level a platform report establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tcb {
    /// Intel's TCB status for the platform and QE (`UpToDate`, `SWHardeningNeeded`, `OutOfDate`, ...) with advisories.
    Status {
        /// The status name as Intel's TCB info spells it.
        status: String,
        /// Security advisories that apply.
        advisories: Vec<String>,
    },
    /// SEV-SNP's reported TCB (security version numbers), judged against the policy's minimum.
    Snp(SnpTcb),
    /// The platform reports no TCB level (Nitro: the hypervisor is AWS-managed; the simulated platform).
    NotReported,
}

/// What a platform report establishes once its signature and chain verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The platform.
    pub platform: Platform,
    /// The launch measurement (TDX: MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2; SEV-SNP: MEASUREMENT; Nitro: PCR0 ‖ PCR1 ‖ PCR2;
    /// simulated: a hash of the running executable).
    pub measurement: Vec<u8>,
    /// The 64 bytes of report data (Nitro: the document's `user_data`).
    pub report_data: [u8; 64],
    /// The TCB level.
    pub tcb: Tcb,
    /// The end of the evidence's validity (Unix s): the earliest expiry among its certificates and collateral.
    pub not_after_s: u64,
    /// The report's own timestamp when the platform signs one (Nitro, simulated; Unix s).
    pub produced_at_s: Option<u64>,
    /// For the simulated platform: the root that signed it.
    pub simulated_root: Option<[u8; 32]>,
}

/// Verification roots. [`Roots::pinned`] are the vendors' roots compiled into this binary; tests swap one to show
/// that evidence chaining to another root is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// Intel's SGX/TDX root CA (DER).
    pub intel_root_der: Vec<u8>,
    /// AMD's ARK per product (`Milan`, `Genoa`, `Turin`; DER).
    pub amd_arks: Vec<(String, Vec<u8>)>,
}

/// Why evidence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    /// A platform name this build does not know.
    #[error("unsupported TEE platform {0:?}")]
    UnsupportedPlatform(String),
    /// The evidence carries no platform report.
    #[error("the TEE evidence carries no platform report")]
    NoReports,
    /// A further (device) report this build cannot check.
    #[error("device report {index} ({platform}) cannot be verified by this build")]
    UnsupportedDeviceReport {
        /// Its position.
        index: usize,
        /// Its platform name.
        platform: String,
    },
    /// The report or its collateral does not parse.
    #[error("{platform} evidence is malformed: {reason}")]
    Malformed {
        /// Platform.
        platform: Platform,
        /// What is wrong.
        reason: String,
    },
    /// The report's signature does not verify under the key its chain certifies.
    #[error("{platform} report signature invalid: {reason}")]
    BadSignature {
        /// Platform.
        platform: Platform,
        /// Which signature.
        reason: String,
    },
    /// The certificate chain or collateral does not verify up to the pinned root.
    #[error("{platform} certificate chain invalid: {reason}")]
    BadChain {
        /// Platform.
        platform: Platform,
        /// Which link.
        reason: String,
    },
    /// The chain ends at a root other than the vendor's pinned one.
    #[error("{platform} evidence chains to a root other than the pinned vendor root: {reason}")]
    UntrustedRoot {
        /// Platform.
        platform: Platform,
        /// Detail.
        reason: String,
    },
    /// A certificate or the collateral is not valid at the verification time.
    #[error("{platform} evidence not valid at {now_s} (Unix s): {reason}")]
    Expired {
        /// Platform.
        platform: Platform,
        /// The verification time.
        now_s: u64,
        /// Which item and its window.
        reason: String,
    },
    /// The report is genuine but from a configuration that is not confidential: a debug TD, guest or enclave, a
    /// migratable TD. Refused whatever the policy.
    #[error("{platform} report is from a configuration that is not confidential: {reason}")]
    NotConfidential {
        /// Platform.
        platform: Platform,
        /// Which setting.
        reason: String,
    },
    /// The TCB level is not one the policy accepts.
    #[error("{platform} TCB not accepted: {status} (policy accepts {accepted})")]
    TcbNotAccepted {
        /// Platform.
        platform: Platform,
        /// The report's status (with advisories or SVNs).
        status: String,
        /// What the policy accepts.
        accepted: String,
    },
    /// The measurement is not one the policy allows.
    #[error("{platform} measurement {measurement} is not allowed by the policy")]
    MeasurementNotAllowed {
        /// Platform.
        platform: Platform,
        /// Hex measurement.
        measurement: String,
    },
    /// The report data is not the binding of the evidence's key, chain, freshness and time.
    #[error(
        "report data mismatch: the {platform} report binds {found}, the evidence's key, chain and freshness give {expected}"
    )]
    ReportDataMismatch {
        /// Platform.
        platform: Platform,
        /// Hex of what the evidence requires.
        expected: String,
        /// Hex of what the report carries.
        found: String,
    },
    /// The evidence binds another key than the one that signed.
    #[error("the TEE evidence binds key {bound}, not the signer {signer}")]
    KeyMismatch {
        /// Hex key in the evidence.
        bound: String,
        /// Hex key expected.
        signer: String,
    },
    /// The evidence is for another chain.
    #[error("the TEE evidence is for chain {found}, not {expected}")]
    ChainMismatch {
        /// Hex chain expected.
        expected: String,
        /// Hex chain in the evidence.
        found: String,
    },
    /// The evidence is older than the policy allows (or claims a time in the future).
    #[error("TEE evidence age {age} exceeds the policy's maximum of {max_s} s")]
    TooOld {
        /// Age description (seconds, or "in the future").
        age: String,
        /// Maximum age.
        max_s: u64,
    },
    /// Simulated evidence where it is not allowed.
    #[error(
        "simulated TEE evidence: produced without confidential hardware (accept it for testing with --allow-simulated-tee)"
    )]
    Simulated,
    /// Simulated evidence signed by a root the policy does not list.
    #[error("simulated TEE evidence signed by root {root}, which the policy does not list")]
    UnknownSimulatedRoot {
        /// Hex root public key.
        root: String,
    },
}

impl TeeError {
    fn malformed(platform: Platform, reason: impl std::fmt::Display) -> Self {
        TeeError::Malformed { platform, reason: reason.to_string() }
    }
}

/// Verifies one platform report's signature, chain and validity windows at `now_s` (Unix s) against the pinned
/// vendor roots; no policy and no report-data binding yet.
pub fn verify_report(report: &PlatformReport, now_s: u64) -> Result<Claims, TeeError> {
    verify_report_with(report, &Roots::pinned(), now_s)
}

/// [`verify_report`] with explicit roots.
pub fn verify_report_with(report: &PlatformReport, roots: &Roots, now_s: u64) -> Result<Claims, TeeError> {
    match Platform::parse(&report.platform)? {
        Platform::Tdx => tdx::verify(&report.report, &report.collateral, roots, now_s),
        Platform::SevSnp => snp::verify(&report.report, &report.collateral, roots, now_s),
        Platform::Nitro => nitro::verify(&report.report, &report.collateral, now_s),
        Platform::Simulated => simulated::verify(&report.report, now_s),
    }
}

/// What verified evidence establishes about the attested node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// The CPU platform.
    pub platform: Platform,
    /// Its launch measurement.
    pub measurement: Vec<u8>,
    /// The TCB status the policy judged (e.g. `UpToDate`).
    pub tcb_status: String,
    /// When the attestation stops being valid (Unix s): the evidence's own expiry or its age limit, whichever first.
    pub expires_at_s: u64,
    /// The attested key.
    pub key: [u8; 32],
    /// Whether it is simulated evidence (never a TEE).
    pub simulated: bool,
}

/// What [`verify_evidence`] expects besides the policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    /// The key the evidence must bind (the receipt's executor, the transaction's node).
    pub key: Option<&'a [u8; 32]>,
    /// The chain it must be for.
    pub chain: Option<&'a [u8; 32]>,
}

/// Verifies evidence at `now_s` (Unix s): the CPU report against the pinned roots, its report data against the
/// evidence's key, chain, freshness and time, what `expect` requires, then the policy.
pub fn verify_evidence(
    ev: &TeeEvidence,
    expect: Expect<'_>,
    policy: &Policy,
    now_s: u64,
) -> Result<Attestation, TeeError> {
    verify_evidence_with(ev, expect, policy, &Roots::pinned(), now_s)
}

/// [`verify_evidence`] with explicit roots.
pub fn verify_evidence_with(
    ev: &TeeEvidence,
    expect: Expect<'_>,
    policy: &Policy,
    roots: &Roots,
    now_s: u64,
) -> Result<Attestation, TeeError> {
    let cpu = ev.reports.first().ok_or(TeeError::NoReports)?;
    if let Some((index, r)) = ev.reports.iter().enumerate().nth(1) {
        return Err(TeeError::UnsupportedDeviceReport { index, platform: r.platform.clone() });
    }
    let claims = verify_report_with(cpu, roots, now_s)?;
    let expected = ev.report_data();
    if claims.report_data != expected {
        return Err(TeeError::ReportDataMismatch {
            platform: claims.platform,
            expected: hex::encode(expected),
            found: hex::encode(claims.report_data),
        });
    }
    if let Some(key) = expect.key
        && *key != ev.key
    {
        return Err(TeeError::KeyMismatch { bound: hex::encode(ev.key), signer: hex::encode(key) });
    }
    if let Some(chain) = expect.chain
        && *chain != ev.chain
    {
        return Err(TeeError::ChainMismatch { expected: hex::encode(chain), found: hex::encode(ev.chain) });
    }
    let tcb_status = policy.check(&claims)?;
    let attested_s = ev.attested_at_ms / 1000;
    if attested_s > now_s.saturating_add(policy::CLOCK_SKEW_S) {
        return Err(TeeError::TooOld {
            age: format!("{} s in the future", attested_s - now_s),
            max_s: policy.max_age_s,
        });
    }
    let age = now_s.saturating_sub(attested_s);
    if age > policy.max_age_s {
        return Err(TeeError::TooOld { age: format!("{age} s"), max_s: policy.max_age_s });
    }
    Ok(Attestation {
        platform: claims.platform,
        measurement: claims.measurement,
        tcb_status,
        expires_at_s: claims.not_after_s.min(attested_s.saturating_add(policy.max_age_s)),
        key: ev.key,
        simulated: claims.simulated_root.is_some(),
    })
}

impl Roots {
    /// The vendors' roots compiled into this binary: Intel's SGX/TDX root CA (as shipped by `dcap-qvl`) and AMD's
    /// ARKs for Milan, Genoa and Turin (as shipped by `sev`). AWS's Nitro root is pinned by `nitro_attest` itself
    /// (by its SHA-256 fingerprint, checked at build time against AWS's published value).
    pub fn pinned() -> Self {
        Roots { intel_root_der: tdx::pinned_root(), amd_arks: snp::pinned_arks() }
    }
}
