//! AWS Nitro Enclaves: the NSM's attestation document, a COSE_Sign1 whose payload carries the PCRs, the user data and
//! the certificate chain (`cabundle`, root first, then the signing `certificate`). `nitro_attest` checks it: the first
//! certificate is AWS's Nitro root (by its SHA-256 fingerprint, pinned in `nitro_attest` and checked at its build
//! against AWS's published root), each certificate is signed by the one before (ECDSA P-384, SHA-384) and valid at
//! the verification time, and the last one's key signs the COSE_Sign1. The evidence carries no collateral.
//!
//! This module adds: size limits, the SHA-384 PCR bank, the refusal of debug-mode enclaves (whose PCRs the NSM
//! zeroes), and the chain's earliest expiry, which `nitro_attest` does not return.

use aws_nitro_enclaves_nsm_api::api::{AttestationDoc, Digest};
use coset::{CborSerializable, CoseSign1};
use nitro_attest::{Error as NitroError, UnparsedAttestationDoc};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::{Claims, Platform, Tcb, TeeError};

const P: Platform = Platform::Nitro;

/// The largest document accepted (the NSM writes at most 16 KiB; AWS's are about 5 KiB).
const MAX_DOCUMENT_BYTES: usize = 16 * 1024;

/// A SHA-384 PCR.
const PCR_BYTES: usize = 48;

/// Verifies a Nitro attestation document at `now_s` (Unix s) against AWS's root (pinned by `nitro_attest`).
pub(crate) fn verify(report: &[u8], collateral: &[u8], now_s: u64) -> Result<Claims, TeeError> {
    if !collateral.is_empty() {
        return Err(malformed(format!(
            "a Nitro document carries its own chain; the collateral must be empty, it is {} bytes",
            collateral.len()
        )));
    }
    if report.len() > MAX_DOCUMENT_BYTES {
        return Err(malformed(format!(
            "the attestation document is {} bytes, more than the {MAX_DOCUMENT_BYTES} allowed",
            report.len()
        )));
    }
    let now = i64::try_from(now_s).ok().and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()).ok_or_else(|| {
        TeeError::Expired {
            platform: P,
            now_s,
            reason: "the verification time is outside the certificates' range".into(),
        }
    })?;
    let verified = UnparsedAttestationDoc::from(report).parse_and_verify(now).map_err(|e| map_error(e, now_s))?;

    // nitro_attest returns neither the certificates nor the zero PCRs: read them from the same (now verified) payload.
    let doc = decode_payload(report)?;
    if doc.digest != Digest::SHA384 {
        return Err(malformed(format!("the PCRs are {:?}; Nitro's are SHA-384", doc.digest)));
    }
    let mut measurement = Vec::with_capacity(3 * PCR_BYTES);
    for index in 0..3 {
        match doc.pcrs.get(&index) {
            Some(pcr) if pcr.len() == PCR_BYTES => measurement.extend_from_slice(pcr),
            Some(pcr) => {
                return Err(malformed(format!("PCR{index} is {} bytes, a SHA-384 PCR is {PCR_BYTES}", pcr.len())));
            }
            None => measurement.extend_from_slice(&[0; PCR_BYTES]),
        }
    }
    check_confidential(&measurement)?;

    let mut not_after_s = u64::MAX;
    for (index, der) in doc.cabundle.iter().chain([&doc.certificate]).enumerate() {
        let cert =
            Certificate::from_der(der).map_err(|e| malformed(format!("certificate {index} does not parse: {e}")))?;
        not_after_s = not_after_s.min(cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs());
    }

    Ok(Claims {
        platform: P,
        measurement,
        report_data: report_data(verified.user_data.as_deref().map(|d| d.as_slice())),
        tcb: Tcb::NotReported,
        not_after_s,
        produced_at_s: Some(doc.timestamp / 1000),
        simulated_root: None,
    })
}

/// The document's `user_data` when it is the 64 bytes Vouch binds; otherwise all zeros, which no evidence's
/// [`vouch_codec::tee::report_data`] equals, so the binding check refuses it as `ReportDataMismatch`.
fn report_data(user_data: Option<&[u8]>) -> [u8; 64] {
    user_data.and_then(|d| <[u8; 64]>::try_from(d).ok()).unwrap_or([0; 64])
}

/// The NSM zeroes PCR0-2 of an enclave started in debug mode, whose memory and console its parent can read.
fn check_confidential(measurement: &[u8]) -> Result<(), TeeError> {
    if measurement.iter().take(PCR_BYTES).all(|&b| b == 0) {
        return Err(TeeError::NotConfidential {
            platform: P,
            reason: "PCR0 is all zeros: the enclave runs in debug mode".into(),
        });
    }
    Ok(())
}

fn decode_payload(report: &[u8]) -> Result<AttestationDoc, TeeError> {
    let sign1 = CoseSign1::from_slice(report).map_err(|e| malformed(format!("not a COSE_Sign1: {e}")))?;
    let payload = sign1.payload.ok_or_else(|| malformed("the COSE_Sign1 has no payload"))?;
    AttestationDoc::from_binary(&payload)
        .map_err(|e| malformed(format!("the payload is not an attestation document: {e:?}")))
}

/// Maps `nitro_attest`'s errors to the check that failed.
fn map_error(error: NitroError, now_s: u64) -> TeeError {
    let reason = error.to_string();
    match error {
        NitroError::CertificateExpired { cn, idx, then, .. } => TeeError::Expired {
            platform: P,
            now_s,
            reason: format!("certificate {idx} ({cn}) expired at {} (Unix s)", then.unix_timestamp()),
        },
        NitroError::CertificateNotYetValid { cn, idx, then, .. } => TeeError::Expired {
            platform: P,
            now_s,
            reason: format!("certificate {idx} ({cn}) is valid from {} (Unix s)", then.unix_timestamp()),
        },
        NitroError::CertificateRootInvalid { have, want } => TeeError::UntrustedRoot {
            platform: P,
            reason: format!("the chain's first certificate has SHA-256 {have}, AWS's Nitro root is {want}"),
        },
        NitroError::CertificateSignatureInvalid { .. } | NitroError::CertificateUnexpectedAlgorithm { .. } => {
            TeeError::BadChain { platform: P, reason }
        }
        NitroError::CoseSignatureVerificationFailed() => TeeError::BadSignature {
            platform: P,
            reason: "the COSE_Sign1 signature does not verify under the signing certificate's key".into(),
        },
        NitroError::CommonNameMalformed(_)
        | NitroError::CommonNameMissing
        | NitroError::CoseSignatureMalformed(_)
        | NitroError::CosePayloadMissing
        | NitroError::CosePayloadMalformed { .. }
        | NitroError::CertificateMalformed { .. }
        | NitroError::CertificateMalformedStructure { .. }
        | NitroError::NoCertificatesFound
        | NitroError::CoseTimestampInvalid { .. } => malformed(reason),
    }
}

fn malformed(reason: impl std::fmt::Display) -> TeeError {
    TeeError::malformed(P, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_debug_enclave() {
        let mut measurement = vec![0; 3 * PCR_BYTES];
        assert!(matches!(check_confidential(&measurement), Err(TeeError::NotConfidential { .. })));
        measurement[0] = 1;
        assert!(check_confidential(&measurement).is_ok());
    }

    #[test]
    fn report_data_is_user_data_of_64_bytes_only() {
        assert_eq!(report_data(Some(&[7; 64])), [7; 64]);
        assert_eq!(report_data(Some(&[7; 32])), [0; 64]);
        assert_eq!(report_data(Some(&[7; 65])), [0; 64]);
        assert_eq!(report_data(None), [0; 64]);
    }
}
